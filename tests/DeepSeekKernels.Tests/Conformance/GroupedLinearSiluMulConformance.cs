using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// GroupedLinearSiluMul (each expert's fused gate|up projection with SiLU-and-mul in the epilogue) against float64 over
/// every weight form: each expert's row range, an expert with no rows, rows before the first offset and after the last left
/// NaN; more rows than a decode batch (the tiled path of a GPU backend); bf16 activations rounded once; a column block of a
/// wider destination (strided rows); bad offsets (out of range, decreasing) reported through the error word under this op.
/// </summary>
public abstract class GroupedLinearSiluMulConformance : ConformanceTest
{
    public static TheoryData<string, int, int, int, int[]> Cases()
    {
        var data = new TheoryData<string, int, int, int, int[]>();
        foreach (string form in new[] { "f32", "bf16", "fp8", "fp8/8x16", "int4" })
        {
            int inFeatures = form == "int4" ? 96 : 65;
            // M, half (outputs; the weight has 2 * half rows), in features, offsets (Count + 1 of them)
            data.Add(form, 17, 9, inFeatures, [2, 5, 5, 11, 15]);
            data.Add(form, 1, 1, form == "int4" ? 32 : 1, [0, 1]);
        }
        // past a decode batch: 70 rows, one expert with 37 of them
        data.Add("bf16", 70, 5, 24, [0, 3, 40, 40, 70]);
        data.Add("fp8", 70, 5, 32, [1, 1, 38, 69, 69]);
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void GroupedLinearSiluMulMatchesFloat64(string form, int m, int half, int inFeatures, int[] offsets)
    {
        int experts = offsets.Length - 1;
        using var weight = Weight(form, experts, 2 * half, inFeatures, seed: 31 + inFeatures + half);
        var x = RandomValues(m * inFeatures, 32);
        using var dx = Upload(x);
        using var doffsets = Upload(offsets);
        using var dy = Poisoned(m * half + Guard);
        if (!Runs(Weighted("GroupedLinearSiluMul", weight.Matrix), ops => ops.GroupedLinearSiluMul(dx.View, doffsets.View, weight.Matrix, dy.View), dy))
            return;

        var actual = dy.ToArray();
        CheckRows(weight, x, offsets, actual, m, half, inFeatures, half, 0, $"GroupedLinearSiluMul {form}", ConformanceTolerance.Weight(form), 0);
        AllNaN(actual.AsSpan(m * half), "guard after the output");
    }

    [DeviceTheory]
    [InlineData("bf16"), InlineData("fp8"), InlineData("int4")]
    public void GroupedLinearSiluMulWithBf16ActivationsRoundsOnce(string form)
    {
        const int m = 11, half = 12;
        int inFeatures = form == "int4" ? 64 : 48;
        int[] offsets = [1, 4, 10];
        using var weight = Weight(form, 2, 2 * half, inFeatures, seed: 33);
        var xb = RandomValues(m * inFeatures, 34).Select(v => (BFloat16)v).ToArray();
        var x = xb.Select(v => (float)v).ToArray(); // the values the op reads, exactly
        using var dx = Upload(xb);
        using var doffsets = Upload(offsets);
        using var dy = PoisonedBf16(m * half + Guard);
        var signature = Weighted("GroupedLinearSiluMul", weight.Matrix) with { X = ElementType.BF16 };
        if (!Runs(signature, ops => ops.GroupedLinearSiluMul(dx.View, doffsets.View, weight.Matrix, dy.View), dy))
            return;

        var actual = dy.ToArray().Select(v => (float)v).ToArray();
        // one rounding of the result to bf16 (2^-9 relative) on top of the float32 sums
        CheckRows(weight, x, offsets, actual, m, half, inFeatures, half, 0, $"bf16 GroupedLinearSiluMul {form}", 2 * Math.Pow(2, -9), 0.5);
        AllNaN(actual.AsSpan(m * half), "guard after the output");
    }

    [DeviceTheory]
    [InlineData("f32"), InlineData("bf16"), InlineData("fp8"), InlineData("int4")]
    public void GroupedLinearSiluMulWritesAColumnBlockOfAWiderDestination(string form)
    {
        const int m = 9, half = 13, yColumns = half + 6, yStart = 4;
        int inFeatures = form == "int4" ? 64 : 33;
        int[] offsets = [0, 4, 4, 9];
        using var weight = Weight(form, 3, 2 * half, inFeatures, seed: 35);
        var x = RandomValues(m * inFeatures, 36);
        using var dx = Upload(x);
        using var doffsets = Upload(offsets);
        using var dy = Poisoned(m * yColumns);
        var y = dy.AsTensor(m, yColumns).Columns(yStart, half);
        if (!Runs(Weighted("GroupedLinearSiluMul", weight.Matrix, stridedRows: true),
                ops => ops.GroupedLinearSiluMul(dx.View, doffsets.View, weight.Matrix, y), dy))
            return;
        CheckRows(weight, x, offsets, dy.ToArray(), m, half, inFeatures, yColumns, yStart, $"strided GroupedLinearSiluMul {form}",
            ConformanceTolerance.Weight(form), 0);
    }

    /// <summary>
    /// Rows in expert e's range equal silu(x[r] . W[e][j]) * (x[r] . W[e][half + j]) in the destination's columns
    /// [yStart, yStart + half); every other element of the [m, yColumns] destination is still NaN. <paramref name="rounding"/>
    /// adds that share of |expected| to each element's error scale (a final rounding).
    /// </summary>
    static void CheckRows(OpTests.OpTestSupport.TestWeight weight, float[] x, int[] offsets, float[] actual, int m, int half, int inFeatures,
        int yColumns, int yStart, string what, double relative, double rounding)
    {
        var expected = new double[m * half];
        var scale = new double[expected.Length];
        var written = new bool[m];
        int matrix = 2 * half * inFeatures;
        for (int e = 0; e + 1 < offsets.Length; e++)
        {
            int first = offsets[e], rows = offsets[e + 1] - first;
            if (rows == 0)
                continue;
            var (gu, guScale) = Float64Oracles.Linear(x.AsSpan(first * inFeatures, rows * inFeatures).ToArray(),
                weight.Values.AsSpan(e * matrix, matrix), rows, inFeatures, 2 * half);
            for (int r = 0; r < rows; r++)
            {
                written[first + r] = true;
                for (int j = 0; j < half; j++)
                {
                    double g = gu[r * 2 * half + j], u = gu[r * 2 * half + half + j];
                    double silu = g / (1 + Math.Exp(-g));
                    int at = (first + r) * half + j;
                    expected[at] = silu * u;
                    // |d silu / d g| <= 1.1; plus the float32 evaluation of silu and the product (a few ulps of the result)
                    scale[at] = 1.1 * Math.Abs(u) * guScale[r * 2 * half + j] + Math.Abs(silu) * guScale[r * 2 * half + half + j]
                        + (4 + rounding) * Math.Abs(expected[at]);
                }
            }
        }
        var rowsWritten = Enumerable.Range(0, m).Where(r => written[r]).ToArray();
        var block = ColumnBlock(actual, m, yColumns, yStart, half);
        Close(rowsWritten.SelectMany(r => expected.AsSpan(r * half, half).ToArray()).ToArray(),
            rowsWritten.SelectMany(r => scale.AsSpan(r * half, half).ToArray()).ToArray(),
            rowsWritten.SelectMany(r => block.AsSpan(r * half, half).ToArray()).ToArray(), what, relative, ConformanceTolerance.Absolute);
        for (int i = 0; i < m * yColumns; i++)
        {
            int r = i / yColumns, c = i % yColumns;
            if (!written[r] || c < yStart || c >= yStart + half)
                Assert.True(float.IsNaN(actual[i]), $"{what}: element [{r}, {c}] is outside every expert's rows and columns and was written ({actual[i]})");
        }
    }

    [Fact]
    public void BadOffsetsAreReportedAtTheNextSynchronisation()
    {
        const int m = 17;
        using var weight = Weight("bf16", 4, 6, 8, seed: 37);
        using var dx = Upload(RandomValues(m * 8, 38));
        using var dy = Poisoned(m * 3);
        using var decreasing = Upload(new[] { 0, 5, 3, 11, 17 });
        using var past = Upload(new[] { 0, 5, 5, 11, m + 1 });
        using var negative = Upload(new[] { -1, 5, 3, 11, 17 }); // out of range comes before out of order
        if (!Supported(Weighted("GroupedLinearSiluMul", weight.Matrix), ops => ops.GroupedLinearSiluMul(dx.View, decreasing.View, weight.Matrix, dy.View), dy))
            return;
        Assert.True(DeviceIndexError(Runtime, () => Ops.GroupedLinearSiluMul(dx.View, decreasing.View, weight.Matrix, dy.View), "GroupedLinearSiluMul",
            "expertOffsets", "expertOffsets[2] = 3 is out of order").OutOfOrder);
        DeviceIndexError(Runtime, () => Ops.GroupedLinearSiluMul(dx.View, past.View, weight.Matrix, dy.View), "GroupedLinearSiluMul", "expertOffsets",
            $"expertOffsets[4] = {m + 1} is outside [0, {m + 1})");
        Assert.False(DeviceIndexError(Runtime, () => Ops.GroupedLinearSiluMul(dx.View, negative.View, weight.Matrix, dy.View), "GroupedLinearSiluMul",
            "expertOffsets", "expertOffsets[0] = -1 is outside [0, 18)").OutOfOrder);
        AllNaN(dy.ToArray(), "the destination of calls with bad offsets");
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class GroupedLinearSiluMulReferenceConformance : GroupedLinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class GroupedLinearSiluMulIlgpuCpuConformance : GroupedLinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class GroupedLinearSiluMulCpuConformance : GroupedLinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class GroupedLinearSiluMulIlgpuCudaConformance : GroupedLinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class GroupedLinearSiluMulNativeConformance : GroupedLinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
