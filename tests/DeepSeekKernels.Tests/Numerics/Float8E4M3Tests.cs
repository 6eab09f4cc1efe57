using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Numerics;

public class Float8E4M3Tests
{
    [Theory]
    [InlineData(0x00, 0f)]
    [InlineData(0x01, 1f / 512)]   // smallest subnormal, 2^-9
    [InlineData(0x07, 7f / 512)]   // largest subnormal
    [InlineData(0x08, 1f / 64)]    // smallest normal, 2^-6
    [InlineData(0x38, 1f)]
    [InlineData(0x3C, 1.5f)]
    [InlineData(0x7E, 448f)]       // largest finite
    [InlineData(0xFE, -448f)]
    [InlineData(0xC0, -2f)]
    public void DecodesKnownCodes(int bits, float value) =>
        Assert.Equal(value, Float8E4M3.FromBits((byte)bits).ToSingle());

    [Fact]
    public void OnlyTheTwoAllOnesCodesAreNaN()
    {
        for (int b = 0; b < 256; b++)
            Assert.Equal((b & 0x7F) == 0x7F, float.IsNaN(Float8E4M3.FromBits((byte)b).ToSingle()));
    }

    [Fact]
    public void EveryFiniteCodeRoundTrips()
    {
        for (int b = 0; b < 256; b++)
        {
            var f = Float8E4M3.FromBits((byte)b);
            if (!f.IsNaN)
                Assert.Equal(f.Bits, Float8E4M3.FromSingle(f.ToSingle()).Bits);
        }
    }

    [Theory]
    [InlineData(1.0625f, 0x38)]    // halfway between 1 and 1.125: ties to even (down)
    [InlineData(1.1875f, 0x3A)]    // halfway between 1.125 and 1.25: ties to even (up)
    [InlineData(464f, 0x7E)]       // halfway between 448 and the NaN slot: even is 448
    [InlineData(465f, 0x7F)]       // past it: no finite value, NaN (as PyTorch's cast)
    [InlineData(1e6f, 0x7F)]
    [InlineData(float.PositiveInfinity, 0x7F)]
    [InlineData(float.NegativeInfinity, 0xFF)]
    [InlineData(1f / 1024, 0x00)]  // half the smallest subnormal: ties to even (zero)
    [InlineData(3f / 1024, 0x02)]  // 1.5 subnormal steps: ties to even (2)
    [InlineData(15.5f / 1024, 0x08)] // rounds up out of the subnormals into the smallest normal
    public void RoundsToNearestEvenAndOverflowsToNaN(float value, int expected) =>
        Assert.Equal((byte)expected, Float8E4M3.FromSingle(value).Bits);

    [Fact]
    public void EveryValueRoundsToTheNearestCode()
    {
        var finite = Enumerable.Range(0, 256).Select(b => Float8E4M3.FromBits((byte)b)).Where(f => !f.IsNaN).Select(f => f.ToSingle()).ToArray();
        var random = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            float v = (random.NextSingle() * 2 - 1) * 460f * MathF.Pow(2, -random.Next(0, 12));
            float got = Float8E4M3.FromSingle(v).ToSingle();
            float best = finite.MinBy(c => MathF.Abs(c - v));
            Assert.True(MathF.Abs(got - v) <= MathF.Abs(best - v), $"{v} -> {got}, nearest is {best}");
        }
    }
}
