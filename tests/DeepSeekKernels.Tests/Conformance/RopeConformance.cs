using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// Rope in place, both layouts, with the rotary part inside wider heads (DeepSeek's q_pe at offset 128 of a 192-element
/// head, an odd head stride with an odd offset, the smallest rotary part), positions out of order and at both ends of
/// the table: the rotated pairs against float64 on the table's own cos/sin, every other element bit for bit unchanged, a
/// NaN guard after x untouched; bad positions reported through the error word.
/// </summary>
public abstract class RopeConformance : ConformanceTest
{
    const int MaxPositions = 300;

    public static TheoryData<int, int, int, int, int, RopeLayout> Cases()
    {
        var data = new TheoryData<int, int, int, int, int, RopeLayout>();
        foreach (var layout in new[] { RopeLayout.HalfSplit, RopeLayout.Interleaved })
        {
            // tokens, heads, headStride, ropeOffset, rotaryDim
            data.Add(1, 1, 2, 0, 2, layout);
            data.Add(5, 3, 17, 7, 8, layout);
            data.Add(4, 2, 192, 128, 64, layout);
            data.Add(3, 1, 65, 1, 64, layout);
        }
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void RopeRotatesThePairsAndNothingElse(int tokens, int heads, int headStride, int ropeOffset, int rotaryDim, RopeLayout layout)
    {
        using var table = RopeTable.Create(Runtime, RopeScaling.Plain(10000), rotaryDim, MaxPositions);
        var random = new Random(tokens * 131 + headStride);
        var positions = Enumerable.Range(0, tokens).Select(t => t switch { 0 => MaxPositions - 1, 1 => 0, _ => random.Next(MaxPositions) }).ToArray();
        int n = tokens * heads * headStride;
        var x = RandomValues(n, 5);
        using var dx = Upload(x.Concat(Nan(Guard)).ToArray());
        using var dp = Upload(positions);
        var view = dx.Slice(0, n);
        if (!Runs(new OpSignature("Rope", ElementType.F32), ops => ops.Rope(view, dp.View, table, heads, headStride, ropeOffset, layout), dx))
            return;

        var cos = table.Cos.ToArray();
        var sin = table.Sin.ToArray();
        var actual = dx.ToArray();
        var (expected, scale, got, rotated) = RotatedPairs(x, actual, positions, cos, sin, tokens, heads, headStride, ropeOffset, rotaryDim / 2, layout);
        Close(expected, scale, got, $"Rope {layout}", ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        var untouched = Enumerable.Range(0, n).Where(i => !rotated[i]).ToArray();
        Exact(untouched.Select(i => x[i]).ToArray(), untouched.Select(i => actual[i]).ToArray(), "elements outside the rotary parts");
        AllNaN(actual.AsSpan(n), "guard after x");
    }

    public static TheoryData<string, RopeLayout> Bf16Cases() => new()
    {
        { "yarn", RopeLayout.Interleaved },
        { "llama3", RopeLayout.HalfSplit },
        { "linear", RopeLayout.HalfSplit },
    };

    /// <summary>
    /// bf16 activations (DeepSeek's q_pe at offset 128 of 192-element heads, and a whole 64-element head), tables of the
    /// scaled kinds (YaRN with its attention factor folded into cos and sin, Llama 3, linear): each rotated element is the
    /// float64 rotation of the bf16 inputs, rounded once to bf16 (within one bf16 rounding), every other element bit for bit
    /// unchanged, the guard untouched.
    /// </summary>
    [DeviceTheory, MemberData(nameof(Bf16Cases))]
    public void RopeOfBf16ActivationsRoundsOnce(string kind, RopeLayout layout)
    {
        var scaling = kind switch
        {
            "yarn" => new RopeScaling { Kind = RopeKind.Yarn, Theta = 10000, Factor = 40, OriginalMaxPositions = 64, MaxPositions = 2560, Mscale = 1, MscaleAllDim = 0.707 },
            "llama3" => new RopeScaling { Kind = RopeKind.Llama3, Theta = 500000, Factor = 8, OriginalMaxPositions = 64, MaxPositions = 512 },
            _ => new RopeScaling { Kind = RopeKind.Linear, Theta = 10000, Factor = 4, MaxPositions = 512 },
        };
        int heads = 3, headStride = kind == "yarn" ? 192 : 64, ropeOffset = kind == "yarn" ? 128 : 0, rotaryDim = 64, tokens = 6;
        using var table = RopeTable.Create(Runtime, scaling, rotaryDim, MaxPositions);
        var positions = new[] { MaxPositions - 1, 0, 17, 255, 1, 128 };
        int n = tokens * heads * headStride;
        var x = RandomValues(n, 9).Select(v => BFloat16.FromSingle(v)).ToArray();
        using var dx = Upload(x.Concat(Enumerable.Repeat(BFloat16.NaN, Guard)).ToArray());
        using var dp = Upload(positions);
        var view = dx.Slice(0, n).AsTensor(n);
        if (!Runs(new OpSignature("Rope", ElementType.BF16), ops => ops.Rope(view, dp.View, table, heads, headStride, ropeOffset, layout), dx))
            return;

        var cos = table.Cos.ToArray();
        var sin = table.Sin.ToArray();
        var actual = dx.ToArray();
        var (expected, scale, got, rotated) = RotatedPairs(x.Select(v => v.ToSingle()).ToArray(), actual.Select(v => v.ToSingle()).ToArray(),
            positions, cos, sin, tokens, heads, headStride, ropeOffset, rotaryDim / 2, layout);
        // one bf16 rounding of the result: 2^-8 of its size, which the sum of the terms' magnitudes bounds
        Close(expected, scale, got, $"Rope {kind} {layout}, bf16", 1.0 / 256, ConformanceTolerance.Absolute);
        for (int i = 0; i < n; i++)
            if (!rotated[i])
                Assert.Equal(x[i].Bits, actual[i].Bits);
        for (int i = n; i < actual.Length; i++)
            Assert.True(actual[i].IsNaN, $"guard element {i - n} was written");
    }

    /// <summary>
    /// Every rotated pair of x [tokens, heads, headStride] against float64 on the table's cos/sin: the expected values, the
    /// magnitudes of their terms (the tolerance's scale), what the op wrote there, and which elements are rotated.
    /// </summary>
    static (double[] Expected, double[] Scale, float[] Got, bool[] Rotated) RotatedPairs(float[] x, float[] actual, int[] positions,
        float[] cos, float[] sin, int tokens, int heads, int headStride, int ropeOffset, int half, RopeLayout layout)
    {
        var rotated = new bool[x.Length];
        var expected = new List<double>();
        var scale = new List<double>();
        var got = new List<float>();
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int head = (t * heads + h) * headStride + ropeOffset;
                for (int i = 0; i < half; i++)
                {
                    // the pair (a, b) with angle index i
                    int ia = head + (layout == RopeLayout.HalfSplit ? i : 2 * i);
                    int ib = head + (layout == RopeLayout.HalfSplit ? i + half : 2 * i + 1);
                    double a = x[ia], b = x[ib], c = cos[positions[t] * half + i], s = sin[positions[t] * half + i];
                    expected.Add(a * c - b * s);
                    scale.Add(Math.Abs(a * c) + Math.Abs(b * s));
                    got.Add(actual[ia]);
                    expected.Add(b * c + a * s);
                    scale.Add(Math.Abs(b * c) + Math.Abs(a * s));
                    got.Add(actual[ib]);
                    rotated[ia] = rotated[ib] = true;
                }
            }
        return ([.. expected], [.. scale], [.. got], rotated);
    }

    [Fact]
    public void BadPositionsAreReportedAtTheNextSynchronisation()
    {
        using var table = RopeTable.Create(Runtime, RopeScaling.Plain(10000), 8, MaxPositions);
        using var dx = Upload(RandomValues(3 * 8, 6));
        using var bad = Upload(new[] { 3, MaxPositions, 0 });
        using var negative = Upload(new[] { 0, 1, -2 });
        if (!Supported(new OpSignature("Rope", ElementType.F32), ops => ops.Rope(dx.View, bad.View, table, 1, 8, 0, RopeLayout.Interleaved), dx))
            return;
        DeviceIndexError(Runtime, () => Ops.Rope(dx.View, bad.View, table, 1, 8, 0, RopeLayout.Interleaved), "Rope", "positions",
            $"positions[1] = {MaxPositions} is outside [0, {MaxPositions})");
        DeviceIndexError(Runtime, () => Ops.Rope(dx.View, negative.View, table, 1, 8, 0, RopeLayout.HalfSplit), "Rope", "positions", "positions[2] = -2");
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class RopeReferenceConformance : RopeConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class RopeIlgpuCpuConformance : RopeConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class RopeCpuConformance : RopeConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class RopeIlgpuCudaConformance : RopeConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class RopeNativeConformance : RopeConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
