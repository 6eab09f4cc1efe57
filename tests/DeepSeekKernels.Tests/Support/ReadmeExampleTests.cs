using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Tests.Support;

/// <summary>The README's API example, as written there, runs and agrees with the reference.</summary>
[Collection(nameof(DeviceCollection))]
public class ReadmeExampleTests
{
    [Fact]
    public void TheReadmeExampleRuns()
    {
        const int tokens = 2;
        var hidden = TestData.As<BFloat16>(TestData.Activations(tokens * 7168, 1));
        var stream = TestData.As<BFloat16>(TestData.Activations(tokens * 7168, 2));
        var normWeight = TestData.As<BFloat16>(TestData.Weights(7168, 3));

        var x = hidden; var weight = normWeight; var y = new BFloat16[hidden.Length];
        Ops.Reference.RmsNorm<BFloat16, BFloat16>(x, weight, y, rowLength: 7168, epsilon: 1e-6f);

        // The span dequant-GEMM line, as written there (2 rows of x), against the reference's device-resident Linear.
        var cpuRuntime = TestDevices.Cpu;
        var (fp8Codes, scaleInv) = DeepSeekKernels.Quantization.Fp8BlockQuantizer.Quantize(TestData.Weights(2048 * 7168, 4), 2048, 7168);
        var xs = TestData.Activations(2 * 7168, 5);
        var ys = new float[2 * 2048];
        SpanLinear(xs, ys);
        void SpanLinear(float[] x, float[] y) => // the README's line, with its names
            Ops.CreateCpu(cpuRuntime, threads: 8).Linear<float>(x, HostWeightMatrix.Fp8(fp8Codes, scaleInv, rows: 2048, cols: 7168), bias: [], y);
        using (var dCodes = cpuRuntime.Upload<Float8E4M3>(fp8Codes))
        using (var dScales = cpuRuntime.Upload<float>(scaleInv))
        using (var dx = cpuRuntime.Upload<float>(xs))
        using (var dy = cpuRuntime.Allocate<float>(2 * 2048))
        {
            Ops.Reference.Linear(DeviceTensor.Of(dx.View, 2, 7168), WeightMatrix.Fp8(dCodes.View, dScales.View, 2048, 7168), default,
                DeviceTensor.Of(dy.View, 2, 2048));
            var expected = dy.ToArray();
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - ys[i]) <= 1e-4f * (1 + Math.Abs(expected[i])), $"y[{i}] = {ys[i]}, the reference {expected[i]}");
        }

        // As in the README, but on the CPU accelerator so that it runs everywhere.
        var runtime = TestDevices.Cpu;
        var ops = Ops.Create(runtime, runtime.IsCuda ? Backend.Native : Backend.Ilgpu);
        using var h = runtime.Upload<BFloat16>(hidden);
        using var residual = runtime.Upload<BFloat16>(stream);
        using var w = runtime.Upload<BFloat16>(normWeight);
        ops.AddRmsNorm(h.View, residual.View, w.View, residualOut: residual.View, destination: h.View, 7168, 1e-6f);
        var result = h.ToArray();

        var expectedR = new BFloat16[hidden.Length];
        var expectedY = new BFloat16[hidden.Length];
        Ops.Reference.AddRmsNorm<BFloat16, BFloat16>(hidden, stream, normWeight, expectedR, expectedY, 7168, 1e-6f);
        Compare.Close<BFloat16>(expectedY, result, "y");
        Compare.Exact<BFloat16>(expectedR, residual.ToArray(), "r");
        Assert.NotEqual(y, result); // the plain and the fused norm differ: the test is not vacuous
    }
}
