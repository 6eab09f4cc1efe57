using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// LinearSiluMul (the fused gate|up projection with SiLU-and-mul in the epilogue) over every weight form at odd shapes,
/// into a column block of a wider destination from strided rows, with bf16 activations; and, on the reference, bitwise
/// equal to Linear followed by SiluAndMul with f32 activations (the op's definition).
/// </summary>
public abstract class LinearSiluMulConformance : ConformanceTest
{
    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        // rows, half (out features = 2 * half), in features
        foreach (string form in new[] { "f32", "bf16", "fp8", "fp8/16x32" })
        {
            data.Add(form, 1, 1, 1);
            data.Add(form, 3, 33, 129);
            data.Add(form, 17, 9, 40);
        }
        data.Add("int4", 1, 17, 64);
        data.Add("int4/g128", 5, 20, 256);
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void LinearSiluMulMatchesFloat64(string form, int rows, int half, int inFeatures)
    {
        using var weight = Weight(form, 1, 2 * half, inFeatures, seed: 13 * half + inFeatures);
        var x = RandomValues(rows * inFeatures, 5);
        using var dx = Upload(x);
        using var dy = Poisoned(rows * half + Guard);
        if (!Runs(Weighted("LinearSiluMul", weight.Matrix), ops => ops.LinearSiluMul(dx.View, weight.Matrix, dy.View), dy))
            return;

        var (expected, scale) = Oracle(x, weight.Values, rows, inFeatures, half);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"LinearSiluMul {form}", ConformanceTolerance.Weight(form), ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    [DeviceTheory]
    [InlineData("bf16"), InlineData("fp8"), InlineData("int4")]
    public void LinearSiluMulReadsAndWritesColumnBlocksOfWiderBuffers(string form)
    {
        const int rows = 4, half = 11, yColumns = half + 5, yStart = 2, xStart = 3;
        int inFeatures = form == "int4" ? 64 : 35, xColumns = inFeatures + 6;
        using var weight = Weight(form, 1, 2 * half, inFeatures, seed: 43);
        var wide = RandomValues(rows * xColumns, 6);
        using var dx = Upload(wide);
        using var dy = Poisoned(rows * yColumns);
        var x = dx.AsTensor(rows, xColumns).Columns(xStart, inFeatures);
        var y = dy.AsTensor(rows, yColumns).Columns(yStart, half);
        if (!Runs(Weighted("LinearSiluMul", weight.Matrix, stridedRows: true), ops => ops.LinearSiluMul(x, weight.Matrix, y), dy))
            return;

        var (expected, scale) = Oracle(ColumnBlock(wide, rows, xColumns, xStart, inFeatures), weight.Values, rows, inFeatures, half);
        BlockMatches(expected, scale, dy.ToArray(), rows, yColumns, yStart, half, $"strided LinearSiluMul {form}", ConformanceTolerance.Weight(form));
    }

    [DeviceTheory]
    [InlineData("bf16", 3, 24, 64), InlineData("fp8", 17, 40, 256)]
    public void LinearSiluMulWithBf16ActivationsRoundsOnce(string form, int rows, int half, int inFeatures)
    {
        using var weight = Weight(form, 1, 2 * half, inFeatures, seed: 47);
        var xb = RandomValues(rows * inFeatures, 7).Select(v => (BFloat16)v).ToArray();
        var x = xb.Select(v => (float)v).ToArray(); // the values the op reads, exactly
        using var dx = Upload(xb);
        using var dy = PoisonedBf16(rows * half + Guard);
        var signature = Weighted("LinearSiluMul", weight.Matrix) with { X = ElementType.BF16 };
        if (!Runs(signature, ops => ops.LinearSiluMul(dx.View, weight.Matrix, dy.View), dy))
            return;

        var (expected, scale) = Oracle(x, weight.Values, rows, inFeatures, half);
        var actual = dy.ToArray().Select(v => (float)v).ToArray();
        // One rounding of the result to bf16 (2^-9 relative) on top of the float32 sums.
        for (int i = 0; i < expected.Length; i++)
            scale[i] += Math.Abs(expected[i]) * 0.5;
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"bf16 LinearSiluMul {form}", 2 * Math.Pow(2, -9), ConformanceTolerance.Absolute);
        Assert.All(actual.AsSpan(expected.Length).ToArray(), v => Assert.True(float.IsNaN(v), "guard after the output was written"));
    }

    [Fact]
    public void AnOddOrStackedWeightIsRefusedByValidation()
    {
        using var odd = Weight("bf16", 1, 5, 8, seed: 1);
        using var stack = Weight("bf16", 2, 4, 8, seed: 2);
        using var dx = Upload(RandomValues(8, 3));
        using var dy = Poisoned(8);
        Assert.Contains("even number", Assert.Throws<ArgumentException>(() => Ops.LinearSiluMul(dx.View, odd.Matrix, dy.View)).Message);
        Assert.Contains("stack of 2", Assert.Throws<ArgumentException>(() => Ops.LinearSiluMul(dx.View, stack.Matrix, dy.View)).Message);
        AllNaN(dy.ToArray(), "destination");
    }

    /// <summary>silu(g) * u with g, u the float64 dot products of x's rows with W's rows j and half + j; the error scale carries both sums' scales through the product.</summary>
    static (double[] Expected, double[] Scale) Oracle(float[] x, float[] w, int rows, int inFeatures, int half)
    {
        var (gu, guScale) = Float64Linear(x, w, new float[2 * half], rows, inFeatures, 2 * half);
        var expected = new double[rows * half];
        var scale = new double[expected.Length];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < half; j++)
            {
                double g = gu[r * 2 * half + j], u = gu[r * 2 * half + half + j];
                double sigmoid = 1 / (1 + Math.Exp(-g)), silu = g * sigmoid;
                int at = r * half + j;
                expected[at] = silu * u;
                // |d silu / d g| <= 1.1; plus the float32 evaluation of silu and the product (a few ulps of the result)
                scale[at] = 1.1 * Math.Abs(u) * guScale[r * 2 * half + j] + Math.Abs(silu) * guScale[r * 2 * half + half + j] + 4 * Math.Abs(expected[at]);
            }
        return (expected, scale);
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class LinearSiluMulReferenceConformance : LinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;

    [Fact]
    public void WithF32ActivationsItIsBitwiseLinearThenSiluAndMul()
    {
        const int rows = 5, half = 19, inFeatures = 70;
        using var weight = Weight("fp8", 1, 2 * half, inFeatures, seed: 9);
        using var dx = Upload(RandomValues(rows * inFeatures, 10));
        using var fused = Poisoned(rows * half);
        using var gu = Poisoned(rows * 2 * half);
        using var unfused = Poisoned(rows * half);
        Ops.LinearSiluMul(dx.View, weight.Matrix, fused.View);
        Ops.Linear(dx.View, weight.Matrix, default, gu.View);
        Ops.SiluAndMul(gu.View, unfused.View, half);
        Assert.Equal(unfused.ToArray(), fused.ToArray());
    }
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class LinearSiluMulIlgpuCpuConformance : LinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class LinearSiluMulCpuConformance : LinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class LinearSiluMulIlgpuCudaConformance : LinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class LinearSiluMulNativeConformance : LinearSiluMulConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
