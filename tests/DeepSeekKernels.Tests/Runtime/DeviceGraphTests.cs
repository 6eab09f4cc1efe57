using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// CUDA graphs: ops captured once from the runtime's stream (hand-CUDA and ILGPU kernels chained on one
/// buffer) and replayed; a replay reads the buffers' current contents; a capture that fails or records
/// nothing runs nothing and leaves the stream usable. None of these provoke a CUDA API error, so the class
/// also runs under compute-sanitizer (scripts/gpu-check.sh); the failures that do are in CudaErrorTests.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class DeviceGraphTests
{
    const int Cols = 7168;
    const float Eps = 1e-6f;

    [Fact]
    public void CapturingOnTheCpuAcceleratorIsRefused()
    {
        var e = Assert.Throws<NotSupportedException>(() => TestDevices.Cpu.CaptureGraph(() => { }));
        Assert.Contains("CUDA graphs need a CUDA GPU", e.Message);
    }

    [Fact]
    public void ReplaysRunTheCapturedChainOnTheBuffersCurrentContents()
    {
        var runtime = TestDevices.RequireNative();
        var native = Ops.Create(runtime, Backend.Native);
        var ilgpu = Ops.Create(runtime, Backend.Ilgpu);
        using var x = runtime.Allocate<BFloat16>(Cols);
        using var residual = runtime.Allocate<BFloat16>(Cols);
        using var r = runtime.Allocate<BFloat16>(Cols);
        using var y = runtime.Allocate<BFloat16>(Cols);
        using var z = runtime.Allocate<BFloat16>(Cols);
        using var w = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Weights(Cols, 3)));

        // One decode-step-like chain: the hand kernel's add + RMSNorm, then ILGPU's RMSNorm of its output.
        void Step()
        {
            native.AddRmsNorm(x.View, residual.View, w.View, r.View, y.View, Cols, Eps);
            ilgpu.RmsNorm(y.View, w.View, z.View, Cols, Eps);
        }

        Load(x, residual, seed: 1);
        Step(); // compiles and loads both kernels before the capture
        runtime.Synchronize();
        using var graph = runtime.CaptureGraph(Step);
        Assert.Equal(2, graph.NodeCount);

        foreach (int seed in new[] { 10, 20 })
        {
            var (hx, hres) = Load(x, residual, seed);
            var poison = TestData.Poison<BFloat16>(Cols);
            r.CopyFromHost(poison);
            y.CopyFromHost(poison);
            z.CopyFromHost(poison);
            graph.Replay();

            var (er, ez) = Expected(hx, hres, w.ToArray());
            Compare.Exact<BFloat16>(er, r.ToArray(), $"r (seed {seed})");
            Compare.Close<BFloat16>(ez, z.ToArray(), $"z (seed {seed})");
        }
    }

    [Fact]
    public void AnOpRefusedDuringTheCaptureThrowsRunsNothingAndLeavesTheStreamUsable()
    {
        var runtime = TestDevices.RequireNative();
        using var op = new CaptureFailureCase(runtime, Cols);
        var e = Assert.Throws<ArgumentException>(() => runtime.CaptureGraph(() =>
        {
            op.Enqueue(); // captured, never run
            op.Native.RmsNorm(op.X.View, op.W.View.Slice(0, Cols - 1), op.Y.View, Cols, Eps); // wrong weight length
        }));
        Assert.Contains("weight", e.Message);
        op.AssertNothingRanAndTheStreamWorks();
    }

    [Fact]
    public void ACaptureThatRecordsNothingIsAnError()
    {
        var runtime = TestDevices.RequireCuda();
        var e = Assert.Throws<InvalidOperationException>(() => runtime.CaptureGraph(() => { }));
        Assert.Contains("no device work", e.Message);
        runtime.Synchronize();
    }

    [Fact]
    public void ADisposedGraphCannotBeReplayed()
    {
        var runtime = TestDevices.RequireNative();
        var native = Ops.Create(runtime, Backend.Native);
        using var x = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Activations(Cols, 6)));
        using var w = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Weights(Cols, 7)));
        native.RmsNorm(x.View, w.View, x.View, Cols, Eps);
        var graph = runtime.CaptureGraph(() => native.RmsNorm(x.View, w.View, x.View, Cols, Eps));
        graph.Dispose();
        graph.Dispose(); // twice is harmless
        Assert.Throws<ObjectDisposedException>(graph.Replay);
        runtime.Synchronize();
    }

    static (BFloat16[] X, BFloat16[] Residual) Load(DeviceBuffer<BFloat16> x, DeviceBuffer<BFloat16> residual, int seed)
    {
        var hx = TestData.As<BFloat16>(TestData.Activations(Cols, seed));
        var hres = TestData.As<BFloat16>(TestData.Activations(Cols, seed + 1));
        x.CopyFromHost(hx);
        residual.CopyFromHost(hres);
        return (hx, hres);
    }

    static (BFloat16[] R, BFloat16[] Z) Expected(BFloat16[] x, BFloat16[] residual, BFloat16[] w)
    {
        var r = new BFloat16[Cols];
        var y = new BFloat16[Cols];
        var z = new BFloat16[Cols];
        Ops.Reference.AddRmsNorm<BFloat16, BFloat16>(x, residual, w, r, y, Cols, Eps);
        Ops.Reference.RmsNorm<BFloat16, BFloat16>(y, w, z, Cols, Eps);
        return (r, z);
    }
}
