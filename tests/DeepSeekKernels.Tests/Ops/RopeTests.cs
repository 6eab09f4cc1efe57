using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// RopeTable against a float64 transcription of transformers 5.x <c>modeling_rope_utils.py</c> (default, linear,
/// yarn, llama3) plus hand-checked values; Rope in both layouts, inside a head (ropeOffset, headStride), and
/// transformers' DeepSeek-V3 interleave form, which is a permutation of ours with the same dot products.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class RopeTests
{
    /// <summary>transformers' formulas in float64 (the functions named in RopeReference), for the tables' oracle.</summary>
    static double[] InverseFrequencies64(RopeScaling s, int dim, out double attention)
    {
        attention = 1;
        int half = dim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
            inv[i] = 1.0 / Math.Pow(s.Theta, 2.0 * i / dim);
        switch (s.Kind)
        {
            case RopeKind.Linear:
                for (int i = 0; i < half; i++)
                    inv[i] /= s.Factor!.Value;
                break;
            case RopeKind.Yarn:
            {
                int original = s.OriginalMaxPositions ?? s.MaxPositions;
                double factor = s.Factor ?? (double)s.MaxPositions / original;
                static double Mscale(double scale, double m = 1) => scale <= 1 ? 1 : 0.1 * m * Math.Log(scale) + 1;
                attention = s.AttentionFactor
                    ?? (s.Mscale is double m && m != 0 && s.MscaleAllDim is double a && a != 0 ? Mscale(factor, m) / Mscale(factor, a) : Mscale(factor));
                double fast = s.BetaFast == 0 ? 32 : s.BetaFast, slow = s.BetaSlow == 0 ? 1 : s.BetaSlow;
                double CorrectionDim(double rotations) => dim * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(s.Theta));
                double low = CorrectionDim(fast), high = CorrectionDim(slow);
                if (s.Truncate)
                    (low, high) = (Math.Floor(low), Math.Ceiling(high));
                low = Math.Max(low, 0);
                high = Math.Min(high, dim - 1);
                if (low == high)
                    high += 0.001;
                for (int i = 0; i < half; i++)
                {
                    double extrapolation = inv[i], interpolation = inv[i] / factor;
                    double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
                    inv[i] = interpolation * ramp + extrapolation * (1 - ramp);
                }
                break;
            }
            case RopeKind.Llama3:
            {
                double factor = s.Factor!.Value, old = s.OriginalMaxPositions ?? s.MaxPositions;
                double lowWavelength = old / s.LowFreqFactor, highWavelength = old / s.HighFreqFactor;
                for (int i = 0; i < half; i++)
                {
                    double wavelength = 2 * Math.PI / inv[i];
                    if (wavelength < highWavelength)
                        continue;
                    if (wavelength > lowWavelength)
                    {
                        inv[i] /= factor;
                        continue;
                    }
                    double smooth = (old / wavelength - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
                }
                break;
            }
        }
        return inv;
    }

    static readonly RopeScaling DeepSeekV3 = new()
    {
        Kind = RopeKind.Yarn, Theta = 10000, Factor = 40, OriginalMaxPositions = 4096, MaxPositions = 163840,
        BetaFast = 32, BetaSlow = 1, Mscale = 1, MscaleAllDim = 1,
    };

    public static TheoryData<string, int> Configs() => new()
    {
        { "default", 64 }, { "qwen2", 128 }, { "linear", 32 }, { "deepseek-v3", 64 }, { "yarn-mscale-only", 64 },
        { "yarn-implicit-factor", 64 }, { "qwen2-yarn", 128 }, { "yarn-no-truncate", 32 }, { "yarn-attention-factor", 16 },
        { "llama3", 128 },
    };

    static RopeScaling Config(string name) => name switch
    {
        "default" => RopeScaling.Plain(10000),
        "qwen2" => RopeScaling.Plain(1_000_000),
        "linear" => new RopeScaling { Kind = RopeKind.Linear, Theta = 10000, Factor = 4 },
        "deepseek-v3" => DeepSeekV3,
        "yarn-mscale-only" => DeepSeekV3 with { MscaleAllDim = 0 },
        "yarn-implicit-factor" => DeepSeekV3 with { Factor = null, Mscale = 0.707, MscaleAllDim = 1 },
        "qwen2-yarn" => new RopeScaling { Kind = RopeKind.Yarn, Theta = 1_000_000, Factor = 4, OriginalMaxPositions = 32768, MaxPositions = 131072 },
        "yarn-no-truncate" => new RopeScaling { Kind = RopeKind.Yarn, Theta = 50000, Factor = 8, MaxPositions = 2048, Truncate = false, BetaFast = 16, BetaSlow = 2 },
        "yarn-attention-factor" => DeepSeekV3 with { AttentionFactor = 0.75 },
        "llama3" => new RopeScaling { Kind = RopeKind.Llama3, Theta = 500000, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositions = 8192, MaxPositions = 131072 },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory, MemberData(nameof(Configs))]
    public void TablesMatchTheTransformersFormulas(string name, int rotaryDim)
    {
        const int positions = 300;
        var scaling = Config(name);
        using var table = RopeTable.Create(CpuRuntime, scaling, rotaryDim, positions);
        var inv = InverseFrequencies64(scaling, rotaryDim, out double attention);
        Assert.Equal(attention, table.AttentionFactor, 6);
        Close(inv, table.InverseFrequencies, "inv_freq", relative: 1e-6, absolute: 0);

        int half = rotaryDim / 2;
        var cos = table.Cos.ToArray();
        var sin = table.Sin.ToArray();
        Assert.Equal(positions * half, cos.Length);
        var expectedCos = new double[cos.Length];
        var expectedSin = new double[cos.Length];
        var scale = new double[cos.Length];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = p * inv[i];
                expectedCos[p * half + i] = Math.Cos(angle) * attention;
                expectedSin[p * half + i] = Math.Sin(angle) * attention;
                scale[p * half + i] = attention * (1 + angle); // float32 inv_freq: the angle's error grows with it
            }
        Close(expectedCos, scale, cos, "cos", relative: 1e-6);
        Close(expectedSin, scale, sin, "sin", relative: 1e-6);
    }

    [Fact]
    public void HandCheckedValues()
    {
        using (var plain = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 8, 2))
        {
            var inv = plain.InverseFrequencies;
            RelativelyEqual(1, inv[0], 1e-7);
            RelativelyEqual(0.1, inv[1], 1e-7);
            RelativelyEqual(0.01, inv[2], 1e-7);
            RelativelyEqual(0.001, inv[3], 1e-7);
            var cos = plain.Cos.ToArray();
            var sin = plain.Sin.ToArray();
            Assert.Equal([1f, 1f, 1f, 1f], cos[..4]);  // position 0
            Assert.Equal(0.54030231, cos[4], 1e-7);    // cos(1)
            Assert.Equal(0.84147098, sin[4], 1e-7);    // sin(1)
            Assert.Equal(0.99500417, cos[5], 1e-7);    // cos(0.1)
        }

        // DeepSeek-V3: correction range [floor(10.47), ceil(22.51)] = [10, 23]; mscale = mscale_all_dim, so factor 1
        using (var v3 = RopeTable.Create(CpuRuntime, DeepSeekV3, 64, 1))
        {
            var inv = v3.InverseFrequencies;
            Assert.Equal(1f, v3.AttentionFactor);
            Assert.Equal(1f, inv[0]);                                                  // below low: extrapolated (unchanged)
            RelativelyEqual(1 / Math.Pow(10000, 20.0 / 64), inv[10], 1e-6);            // still unchanged at low
            RelativelyEqual(1 / (40 * Math.Pow(10000, 46.0 / 64)), inv[23], 1e-6);     // from high on: interpolated (/ 40)
            double ramp = 6.0 / 13;                                                    // i = 16
            double mixed = ramp / (40 * Math.Pow(10000, 32.0 / 64)) + (1 - ramp) / Math.Pow(10000, 32.0 / 64);
            RelativelyEqual(mixed, inv[16], 1e-6);
        }

        // mscale without mscale_all_dim: attention factor get_mscale(40) = 0.1 ln 40 + 1, folded into the tables
        using (var scaled = RopeTable.Create(CpuRuntime, DeepSeekV3 with { MscaleAllDim = null }, 64, 1))
        {
            Assert.Equal(1.3688879454113936, scaled.AttentionFactor, 6);
            Assert.All(scaled.Cos.ToArray(), c => Assert.Equal(1.3688879454113936, c, 1e-6));
            Assert.All(scaled.Sin.ToArray(), s => Assert.Equal(0f, s));
        }

        // Llama 3.1: high frequencies kept, low frequencies divided by 8
        using (var llama = RopeTable.Create(CpuRuntime, Config("llama3"), 128, 1))
        {
            var inv = llama.InverseFrequencies;
            Assert.Equal(1f, inv[0]);
            RelativelyEqual(1 / Math.Pow(500000, 126.0 / 128) / 8, inv[63], 1e-6);
        }
    }

    static void RelativelyEqual(double expected, float actual, double relative) =>
        Assert.True(Math.Abs(actual - expected) <= relative * Math.Abs(expected), $"expected {expected}, got {actual}");

    [Theory]
    [InlineData(RopeLayout.HalfSplit), InlineData(RopeLayout.Interleaved)]
    public void RopeRotatesTheRotaryPartOfEveryHead(RopeLayout layout)
    {
        const int heads = 3, headStride = 11, ropeOffset = 3, rotaryDim = 6, half = 3;
        int[] positions = [0, 7, 3, 63, 7];
        int tokens = positions.Length;
        using var table = RopeTable.Create(CpuRuntime, DeepSeekV3 with { MscaleAllDim = null }, rotaryDim, 64);
        var cos = table.Cos.ToArray();
        var sin = table.Sin.ToArray();
        var x = RandomValues(tokens * heads * headStride, 31);
        using var dx = Upload(x);
        using var dp = Upload(positions);

        ReferenceOps.Rope(dx.View, dp.View, table, heads, headStride, ropeOffset, layout);

        var actual = dx.ToArray();
        var expected = x.Select(v => (double)v).ToArray();
        var scale = x.Select(v => (double)Math.Abs(v)).ToArray();
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int head = (t * heads + h) * headStride + ropeOffset;
                for (int i = 0; i < half; i++)
                {
                    int a = head + (layout == RopeLayout.HalfSplit ? i : 2 * i);
                    int b = head + (layout == RopeLayout.HalfSplit ? i + half : 2 * i + 1);
                    double c = cos[positions[t] * half + i], s = sin[positions[t] * half + i];
                    expected[a] = x[a] * c - x[b] * s;
                    expected[b] = x[b] * c + x[a] * s;
                    scale[a] = scale[b] = Math.Abs(x[a] * c) + Math.Abs(x[b] * s) + Math.Abs(x[b] * c) + Math.Abs(x[a] * s);
                }
            }
        Close(expected, scale, actual, $"rope {layout}", relative: 1e-6);
        // everything outside the rotary parts is untouched, bit for bit
        for (int i = 0; i < x.Length; i++)
        {
            int inHead = i % headStride;
            if (inHead < ropeOffset || inHead >= ropeOffset + rotaryDim)
                Assert.Equal(BitConverter.SingleToUInt32Bits(x[i]), BitConverter.SingleToUInt32Bits(actual[i]));
        }
    }

    /// <summary>
    /// transformers' DeepSeek-V3 <c>apply_rotary_pos_emb_interleave</c>: de-interleave, then rotate_half with the
    /// cos/sin halves repeated. Its output is ours permuted, so q.k is the same.
    /// </summary>
    [Fact]
    public void InterleavedEqualsTheTransformersDeepSeekV3FormPermuted()
    {
        const int d = 64, half = 32;
        int[] positions = [5, 200, 4095];
        using var table = RopeTable.Create(CpuRuntime, DeepSeekV3, d, 4096);
        var cos = table.Cos.ToArray();
        var sin = table.Sin.ToArray();
        var q = RandomValues(positions.Length * d, 41);
        var k = RandomValues(positions.Length * d, 42);
        using var dq = Upload(q);
        using var dk = Upload(k);
        using var dp = Upload(positions);
        ReferenceOps.Rope(dq.View, dp.View, table, 1, d, 0, RopeLayout.Interleaved);
        ReferenceOps.Rope(dk.View, dp.View, table, 1, d, 0, RopeLayout.Interleaved);
        var ourQ = dq.ToArray();
        var ourK = dk.ToArray();

        double[] HuggingFace(float[] v, int t)
        {
            var deinterleaved = new double[d]; // view(d/2, 2).transpose(-1, -2).reshape(d)
            for (int i = 0; i < half; i++)
            {
                deinterleaved[i] = v[t * d + 2 * i];
                deinterleaved[half + i] = v[t * d + 2 * i + 1];
            }
            var output = new double[d]; // q * cos + rotate_half(q) * sin, cos = cat(freqs, freqs).cos()
            for (int j = 0; j < d; j++)
            {
                int i = j % half;
                double c = cos[positions[t] * half + i], s = sin[positions[t] * half + i];
                double rotated = j < half ? -deinterleaved[j + half] : deinterleaved[j - half];
                output[j] = deinterleaved[j] * c + rotated * s;
            }
            return output;
        }

        for (int t = 0; t < positions.Length; t++)
        {
            var hfQ = HuggingFace(q, t);
            var hfK = HuggingFace(k, t);
            // ours[2i] = hf[i], ours[2i + 1] = hf[half + i]
            var permuted = new double[d];
            for (int i = 0; i < half; i++)
            {
                permuted[2 * i] = hfQ[i];
                permuted[2 * i + 1] = hfQ[half + i];
            }
            Close(permuted, Enumerable.Repeat(6.0, d).ToArray(), ourQ.AsSpan(t * d, d), $"q at {positions[t]}", relative: 1e-6);
            double ours = 0, theirs = 0, magnitude = 0;
            for (int j = 0; j < d; j++)
            {
                ours += (double)ourQ[t * d + j] * ourK[t * d + j];
                theirs += hfQ[j] * hfK[j];
                magnitude += Math.Abs(hfQ[j] * hfK[j]);
            }
            Assert.True(Math.Abs(ours - theirs) <= 1e-5 * magnitude, $"q.k at {positions[t]}: ours {ours}, transformers' {theirs}");
        }
    }

    [Fact]
    public void PositionsOutsideTheTableAreNamedAndNothingIsWritten()
    {
        using var table = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 4, 64);
        var x = RandomValues(3 * 4, 51);
        using var dx = Upload(x);
        using var dp = Upload(new[] { 1, 63, 64 });
        var e = DeviceIndexError(CpuRuntime, () => ReferenceOps.Rope(dx.View, dp.View, table, 1, 4, 0, RopeLayout.HalfSplit),
            "Rope", "positions", "positions[2] = 64");
        Assert.Contains("[0, 64)", e.Message);
        Assert.Equal((2L, 64L, 64L), (e.Index, e.Value, e.Bound));
        Assert.Equal(x, dx.ToArray());
        using var negative = Upload(new[] { 0, -3, 1 });
        DeviceIndexError(CpuRuntime, () => ReferenceOps.Rope(dx.View, negative.View, table, 1, 4, 0, RopeLayout.HalfSplit),
            "Rope", "positions", "positions[1] = -3");
    }

    [Fact]
    public void TableConfigurationErrorsAreNamed()
    {
        Throws<ArgumentOutOfRangeException>(() => RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 7, 4), "rotaryDim", "even");
        Throws<ArgumentOutOfRangeException>(() => RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 8, 0), "maxPositions", "at least 1");
        Throws<ArgumentException>(() => RopeTable.Create(CpuRuntime, new RopeScaling { Kind = RopeKind.Linear }, 8, 4), "scaling", "needs Factor");
        Throws<ArgumentException>(() => RopeTable.Create(CpuRuntime, new RopeScaling { Kind = RopeKind.Yarn, Factor = 4 }, 8, 4), "scaling", "OriginalMaxPositions");
        Throws<ArgumentException>(() => RopeTable.Create(CpuRuntime, RopeScaling.Plain(0), 8, 4), "scaling", "Theta");
        Throws<ArgumentNullException>(() => RopeTable.Create(CpuRuntime, null!, 8, 4), "scaling", "null");
        var table = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 4, 4);
        table.Dispose();
        using var dx = Upload(RandomValues(4, 1));
        using var dp = Upload(new[] { 0 });
        Assert.Throws<ObjectDisposedException>(() => ReferenceOps.Rope(dx.View, dp.View, table, 1, 4, 0, RopeLayout.HalfSplit));
    }
}
