using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Numerics;

public class BFloat16Tests
{
    [Fact]
    public void EveryNonNaNValueRoundTripsExactly()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            var b = BFloat16.FromBits((ushort)bits);
            var back = BFloat16.FromSingle(b.ToSingle());
            if (b.IsNaN)
                Assert.True(back.IsNaN, $"0x{bits:X4} must stay NaN");
            else
                Assert.Equal(b.Bits, back.Bits);
        }
    }

    [Theory]
    [InlineData(1f, 0x3F80)]
    [InlineData(1f + 1f / 256, 0x3F80)]              // exactly halfway between 1 and 1+2^-7: ties to even (down)
    [InlineData(1f + 3f / 256, 0x3F82)]              // halfway between 1+2^-7 and 1+2^-6: ties to even (up)
    [InlineData(1f + 1f / 256 + 1f / 65536, 0x3F81)] // just above halfway: up
    [InlineData(-2.5f, 0xC020)]
    [InlineData(3.4e38f, 0x7F80)]                    // rounds past the largest bf16: infinity
    [InlineData(float.PositiveInfinity, 0x7F80)]
    [InlineData(float.NegativeInfinity, 0xFF80)]
    [InlineData(1e-40f, 0x0001)]                     // subnormals keep their top bits, rounded
    [InlineData(-0f, 0x8000)]
    public void RoundsToNearestEven(float value, int expectedBits) =>
        Assert.Equal((ushort)expectedBits, BFloat16.FromSingle(value).Bits);

    [Fact]
    public void NaNStaysQuietNaNWithItsSign()
    {
        var negativeSignalling = BitConverter.UInt32BitsToSingle(0xFF80_0001); // payload only in the low bits
        var b = BFloat16.FromSingle(negativeSignalling);
        Assert.True(b.IsNaN);
        Assert.Equal(0x8000, b.Bits & 0x8000);
    }

    [Fact]
    public void VectorisedConversionsMatchScalarOnAllKindsOfBits()
    {
        var random = new Random(42);
        var floats = new float[1000 + 13];
        for (int i = 0; i < floats.Length; i++)
            floats[i] = BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32));
        floats[3] = float.NaN; floats[4] = float.PositiveInfinity; floats[5] = -0f; floats[6] = float.Epsilon;

        var vectorised = new BFloat16[floats.Length];
        BFloat16Conversions.FromSingle(floats, vectorised);
        for (int i = 0; i < floats.Length; i++)
            Assert.Equal(BFloat16.FromSingle(floats[i]).Bits, vectorised[i].Bits);

        var widened = new float[floats.Length];
        BFloat16Conversions.ToSingle(vectorised, widened);
        for (int i = 0; i < floats.Length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits(vectorised[i].ToSingle()), BitConverter.SingleToUInt32Bits(widened[i]));
    }
}
