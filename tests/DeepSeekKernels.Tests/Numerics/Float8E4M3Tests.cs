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

    /// <summary>The 254 finite codes in increasing order of value (-0 before +0).</summary>
    static Float8E4M3[] FiniteCodesAscending() => Enumerable.Range(0, 256).Select(b => Float8E4M3.FromBits((byte)b))
        .Where(f => !f.IsNaN).OrderBy(f => f.ToSingle()).ThenBy(f => f.Bits >= 0x80 ? 0 : 1).ToArray();

    [Fact]
    public void SaturatingEncoderRoundTripsAll256Codes()
    {
        for (int b = 0; b < 256; b++)
        {
            var code = Float8E4M3.FromBits((byte)b);
            var back = Float8E4M3.FromSingleSaturating(code.ToSingle());
            if (code.IsNaN)
                Assert.True(back.IsNaN, $"NaN code 0x{b:X2} -> 0x{back.Bits:X2}"); // a NaN's sign is not kept by the decoder
            else
                Assert.True(back.Bits == b, $"code 0x{b:X2} ({code}) -> 0x{back.Bits:X2}");
        }
    }

    [Fact]
    public void SaturatingEncoderRoundsEveryMidpointToEvenAndEverythingElseToTheNearest()
    {
        var codes = FiniteCodesAscending();
        for (int i = 0; i + 1 < codes.Length; i++)
        {
            float a = codes[i].ToSingle(), b = codes[i + 1].ToSingle();
            if (a == b)
                continue; // -0 and +0
            float mid = (a + b) / 2; // exact: e4m3 values have few bits
            // ties to even: the code whose last mantissa bit is 0 (for 0 and the subnormals too)
            var even = (codes[i].Bits & 1) == 0 ? codes[i] : codes[i + 1];
            Assert.True(Float8E4M3.FromSingleSaturating(mid).Bits == even.Bits, $"midpoint {mid} of {a} and {b}: expected 0x{even.Bits:X2}, got 0x{Float8E4M3.FromSingleSaturating(mid).Bits:X2}");
            Assert.Equal(NonZero(codes[i + 1]), NonZero(Float8E4M3.FromSingleSaturating(MathF.BitIncrement(mid))));
            Assert.Equal(NonZero(codes[i]), NonZero(Float8E4M3.FromSingleSaturating(MathF.BitDecrement(mid))));
        }
        static float NonZero(Float8E4M3 f) => f.ToSingle() + 0f; // +0 and -0 are one value
    }

    [Theory]
    [InlineData(448f, 0x7E)]
    [InlineData(448.00003f, 0x7E)] // just past the largest code (a block's amax / (amax / 448) can be): still 448
    [InlineData(465f, 0x7E)]       // where the plain cast gives NaN
    [InlineData(1e30f, 0x7E)]
    [InlineData(float.PositiveInfinity, 0x7E)]
    [InlineData(-1e30f, 0xFE)]
    [InlineData(float.NegativeInfinity, 0xFE)]
    [InlineData(-0f, 0x80)]
    [InlineData(0f, 0x00)]
    public void SaturatingEncoderClampsToTheLargestFiniteCode(float value, int expected) =>
        Assert.Equal((byte)expected, Float8E4M3.FromSingleSaturating(value).Bits);

    [Fact]
    public void SaturatingEncoderKeepsNaN()
    {
        Assert.True(Float8E4M3.FromSingleSaturating(float.NaN).IsNaN);
        Assert.True(Float8E4M3.FromSingleSaturating(-float.NaN).IsNaN);
    }
}
