using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;

namespace DeepSeekKernels.Tests.Quantization;

/// <summary>
/// INT4 group-wise quantisation: the documented bound <c>|w - deq(q(w))| &lt;= scale / 2 + |deq| * 2^-8</c> per element on
/// normal-ish, constant, one-signed, huge and tiny groups; the parameters it promises (smallest bf16 scale covering the
/// range, integer zero point in 0..15); the packing; and its refusals.
/// </summary>
public class Int4GroupQuantizerTests
{
    /// <summary>Normal-ish weights (Box-Muller), standard deviation <paramref name="sigma"/>, seeded.</summary>
    internal static float[] Gaussian(int length, int seed, float sigma = 0.02f)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            double u = 1 - random.NextDouble(), v = random.NextDouble();
            values[i] = (float)(sigma * Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v));
        }
        return values;
    }

    /// <summary>Quantises, dequantises on the host, and checks the bound and the group parameters element by element.</summary>
    static void AssertRoundTripWithinBound(float[] w, int rows, int cols, int groupSize, string what)
    {
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, rows, cols, groupSize);
        Assert.Equal((long)rows * cols / 2, packed.Length);
        Assert.Equal((long)rows * (cols / groupSize), scales.Length);
        Assert.Equal(scales.Length, zeros.Length);
        var deq = Int4GroupQuantizer.Dequantize(packed, scales, zeros, rows, cols, groupSize);
        int groups = cols / groupSize;
        for (int g = 0; g < scales.Length; g++)
        {
            float scale = scales[g].ToSingle(), zero = zeros[g].ToSingle();
            Assert.True(scale > 0 && float.IsFinite(scale), $"{what}: group {g} scale {scale}");
            Assert.True(zero == MathF.Round(zero) && zero >= 0 && zero <= 15, $"{what}: group {g} zero {zero} is not an integer in 0..15");
            // the scale is the smallest bf16 at least (hi - lo) / 15, the range including 0 (1 for an all-zero group)
            var group = w.AsSpan(g * groupSize, groupSize);
            double lo = Math.Min(0, group.ToArray().Min()), hi = Math.Max(0, group.ToArray().Max()), exact = (hi - lo) / 15;
            if (hi == lo)
                Assert.Equal(1f, scale);
            else
                Assert.True(scale >= exact && (scales[g].Bits == 1 || BFloat16.FromBits((ushort)(scales[g].Bits - 1)).ToSingle() < exact),
                    $"{what}: group {g} scale {scale} is not the smallest bf16 >= {exact}");
        }
        for (long i = 0; i < w.Length; i++)
        {
            long g = i / cols * groups + i % cols / groupSize;
            double scale = scales[g].ToSingle();
            // half a step, bf16's rounding of the result, and float64 slack for the rounding of w / scale + zero
            double bound = scale / 2 * (1 + 1e-12) + Math.Abs(deq[i]) * Math.ScaleB(1, -8);
            double error = Math.Abs((double)w[i] - deq[i]);
            Assert.True(error <= bound, $"{what}: w[{i}] = {w[i]:R} dequantised to {deq[i]:R}: |error| {error:g4} > {bound:g4} (scale {scale:R})");
        }
    }

    [Theory]
    [InlineData(1, 32, 32)]
    [InlineData(3, 256, 128)]
    [InlineData(17, 192, 64)]
    [InlineData(64, 512, 128)]
    [InlineData(5, 96, 96)]
    public void NormalWeightsRoundTripWithinHalfAStep(int rows, int cols, int groupSize) =>
        AssertRoundTripWithinBound(Gaussian(rows * cols, rows * 1000 + cols), rows, cols, groupSize, $"[{rows}, {cols}] g{groupSize}");

    public static TheoryData<string, float[]> SpecialGroups()
    {
        var data = new TheoryData<string, float[]>();
        float[] Fill(float value) => Enumerable.Repeat(value, 32).ToArray();
        float[] Map(Func<int, float> f) => Enumerable.Range(0, 32).Select(f).ToArray();
        data.Add("all zero", Fill(0f));
        data.Add("all -0", Fill(-0f));
        data.Add("constant positive", Fill(0.37f));
        data.Add("constant negative", Fill(-1.5e-3f));
        data.Add("all negative", Map(i => -0.01f - 0.003f * i));
        data.Add("all positive, far from 0", Map(i => 100f + i / 32f));
        data.Add("one outlier", Map(i => i == 7 ? 3f : 0.001f * (i - 16)));
        data.Add("exact levels 0..15", Map(i => i % 16));
        data.Add("ties", Map(i => (i % 16) + 0.5f));
        data.Add("huge", Map(i => (i - 13) * 4e36f));
        data.Add("near the limit", Map(i => i == 0 ? MathF.BitDecrement(MathF.ScaleB(1f, 126)) : -MathF.ScaleB(1f, 125)));
        data.Add("small", Map(i => (i - 20) * 3e-31f));
        data.Add("subnormal scale", Map(i => (i - 4) * 1e-40f));
        data.Add("smallest subnormals", Map(i => i % 3 == 0 ? float.Epsilon : 0f));
        return data;
    }

    [Theory, MemberData(nameof(SpecialGroups))]
    public void SpecialGroupsRoundTripWithinHalfAStep(string what, float[] group)
    {
        // the special group beside a normal one, in two rows, so a group's parameters never leak into its neighbour's
        var normal = Gaussian(32, 5);
        var w = group.Concat(normal).Concat(normal).Concat(group).ToArray();
        AssertRoundTripWithinBound(w, 2, 64, 32, what);
    }

    [Fact]
    public void AllZeroGroupsGetScaleOneZeroZeroAndDequantiseToZero()
    {
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(new float[64], 1, 64, 32);
        Assert.All(scales, s => Assert.Equal(BFloat16.One, s));
        Assert.All(zeros, z => Assert.Equal(BFloat16.Zero, z));
        Assert.All(packed, p => Assert.Equal(0, p.Bits));
    }

    [Fact]
    public void ZeroDequantisesExactlyToZero()
    {
        // 0 lies in every group's range, and the integer zero point is its code
        var w = Gaussian(4 * 128, 9);
        for (int i = 0; i < w.Length; i += 5)
            w[i] = 0f;
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, 4, 128, 32);
        var deq = Int4GroupQuantizer.Dequantize(packed, scales, zeros, 4, 128, 32);
        for (int i = 0; i < w.Length; i += 5)
            Assert.True(deq[i] == 0f, $"w[{i}] = 0 dequantised to {deq[i]}");
    }

    [Fact]
    public void CodesArePackedLowNibbleFirstAlongTheRow()
    {
        // values that are exactly the levels of scale 1, zero 0: element c of the row gets code c % 16
        var w = Enumerable.Range(0, 2 * 32).Select(i => (float)(i % 16)).ToArray();
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, 2, 32, 32);
        Assert.All(scales, s => Assert.Equal(1f, s.ToSingle()));
        Assert.All(zeros, z => Assert.Equal(0f, z.ToSingle()));
        for (int i = 0; i < packed.Length; i++)
        {
            int c = 2 * i % 32;
            Assert.Equal(((c % 16) | ((c + 1) % 16) << 4), packed[i].Bits);
            Assert.Equal((c % 16, (c + 1) % 16), (packed[i].LowUnsigned, packed[i].HighUnsigned));
        }
        // row r starts at byte r * cols / 2: a multiple of 16, as cols is a multiple of the group, itself of 32
        Assert.Equal(0x10, packed[0].Bits);
        Assert.Equal(0x10, packed[16].Bits);
    }

    [Fact]
    public void DequantizeFollowsTheDefinitionInFloat32ThenBf16()
    {
        // scale 0.1 (bf16 0.10009765625) and zero 3: (q - 3) * s in float32, then rounded to bf16
        var scale = BFloat16.FromSingle(0.1f);
        var zero = BFloat16.FromSingle(3f);
        for (int q = 0; q < 16; q++)
        {
            float expected = BFloat16.FromSingle(((float)q - 3f) * scale.ToSingle()).ToSingle();
            Assert.Equal(expected, Int4GroupQuantizer.Dequantize(q, scale, zero));
        }
        // a fractional zero point is read as it is
        Assert.Equal(BFloat16.FromSingle((5f - 2.5f) * 0.25f).ToSingle(), Int4GroupQuantizer.Dequantize(5, BFloat16.FromSingle(0.25f), BFloat16.FromSingle(2.5f)));
    }

    [Fact]
    public void StacksQuantiseAsRowsOfOneMatrix()
    {
        // a stack of 3 [4, 64] matrices is [12, 64] rows: the same bytes as quantising each matrix alone
        var w = Gaussian(3 * 4 * 64, 21);
        var (all, allScales, allZeros) = Int4GroupQuantizer.Quantize(w, 12, 64, 32);
        for (int m = 0; m < 3; m++)
        {
            var (one, scales, zeros) = Int4GroupQuantizer.Quantize(w.AsSpan(m * 256, 256), 4, 64, 32);
            Assert.Equal(one, all.AsSpan(m * 128, 128).ToArray());
            Assert.Equal(scales, allScales.AsSpan(m * 8, 8).ToArray());
            Assert.Equal(zeros, allZeros.AsSpan(m * 8, 8).ToArray());
        }
    }

    [Fact]
    public void LargeMatricesQuantiseTheSameInParallel()
    {
        // above the parallel threshold (2^20 weights): each group's bytes equal a one-row quantisation of that row
        const int rows = 520, cols = 2048;
        var w = Gaussian(rows * cols, 33);
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, rows, cols, 128);
        foreach (int r in new[] { 0, 1, 257, rows - 1 })
        {
            var (one, s, z) = Int4GroupQuantizer.Quantize(w.AsSpan(r * cols, cols), 1, cols, 128);
            Assert.Equal(one, packed.AsSpan(r * cols / 2, cols / 2).ToArray());
            Assert.Equal(s, scales.AsSpan(r * 16, 16).ToArray());
            Assert.Equal(z, zeros.AsSpan(r * 16, 16).ToArray());
        }
    }

    [Fact]
    public void BadShapesAndValuesAreRefusedNamingTheParameter()
    {
        var w = new float[4 * 96];
        var e = Assert.Throws<ArgumentException>(() => Int4GroupQuantizer.Quantize(w, 4, 96, 64));
        Assert.Equal("cols", e.ParamName);
        Assert.Contains("96", e.Message);
        Assert.Contains("64", e.Message);
        Assert.Equal("groupSize", Assert.Throws<ArgumentOutOfRangeException>(() => Int4GroupQuantizer.Quantize(w, 4, 96, 48)).ParamName);
        Assert.Equal("groupSize", Assert.Throws<ArgumentOutOfRangeException>(() => Int4GroupQuantizer.Quantize(w, 4, 96, 0)).ParamName);
        Assert.Equal("groupSize", Assert.Throws<ArgumentOutOfRangeException>(() => Int4GroupQuantizer.Quantize(w, 4, 96, -32)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentOutOfRangeException>(() => Int4GroupQuantizer.Quantize(w, 0, 96, 32)).ParamName);
        var length = Assert.Throws<ArgumentException>(() => Int4GroupQuantizer.Quantize(w, 3, 96, 32));
        Assert.Equal("w", length.ParamName);
        Assert.Contains("rows * cols = 3 * 96 = 288", length.Message);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, MathF.ScaleB(1f, 126), -3e38f })
        {
            var values = Gaussian(4 * 96, 2);
            values[101] = bad;
            var nonFinite = Assert.Throws<ArgumentException>(() => Int4GroupQuantizer.Quantize(values, 4, 96, 32));
            Assert.Equal("w", nonFinite.ParamName);
            Assert.Contains("w[101]", nonFinite.Message);
        }
    }

    [Fact]
    public void DequantizeChecksItsLengths()
    {
        var packed = new Int4x2[2 * 32];
        var groups = new BFloat16[4];
        Assert.Equal(2 * 64, Int4GroupQuantizer.Dequantize(packed, groups, groups, 2, 64, 32).Length);
        Assert.Equal("packed", Assert.Throws<ArgumentException>(() => Int4GroupQuantizer.Dequantize(packed.AsSpan(1), groups, groups, 2, 64, 32)).ParamName);
        var scales = Assert.Throws<ArgumentException>(() => Int4GroupQuantizer.Dequantize(packed, groups.AsSpan(1), groups, 2, 64, 32));
        Assert.Equal("scales", scales.ParamName);
        Assert.Contains("rows * (cols / groupSize) = 2 * (64 / 32) = 4", scales.Message);
        Assert.Equal("zeros", Assert.Throws<ArgumentException>(() => Int4GroupQuantizer.Dequantize(packed, groups, new BFloat16[5], 2, 64, 32)).ParamName);
    }
}
