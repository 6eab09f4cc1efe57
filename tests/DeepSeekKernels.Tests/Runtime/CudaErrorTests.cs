using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// CUDA errors become exceptions that name the operation, and leave the runtime usable. This class provokes
/// API errors on purpose, so scripts/gpu-check.sh leaves it out of the compute-sanitizer run (which counts
/// API errors).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class CudaErrorTests
{
    [Fact]
    public void CudaErrorsSurfaceAsExceptionsNamingTheOperation()
    {
        var runtime = TestDevices.RequireCuda();
        runtime.Bind();
        // A copy from and to address 0 is refused by the driver up front (not a sticky fault), so the context
        // stays usable for the tests after this one.
        var e = Assert.Throws<CudaException>(() =>
            CudaDriver.CopyDeviceToDeviceAsync(0, 0, 16, runtime.CudaStreamHandle));
        Assert.Contains("cuMemcpyDtoDAsync: CUDA_ERROR_", e.Message);
        runtime.Synchronize();
    }

    [Fact]
    public void WaitingForTheStreamDuringAGraphCaptureFailsRunsNothingAndLeavesTheStreamUsable()
    {
        var runtime = TestDevices.RequireNative();
        var native = Ops.Create(runtime, Backend.Native);
        const int cols = 4096;
        using var x = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Activations(cols, 1)));
        using var w = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Weights(cols, 2)));
        using var y = runtime.Upload<BFloat16>(TestData.Poison<BFloat16>(cols));
        native.RmsNorm(x.View, w.View, y.View, cols, 1e-6f);
        runtime.Synchronize();
        y.CopyFromHost(TestData.Poison<BFloat16>(cols));

        // A copy to the host waits for the stream, which a capturing stream refuses (the driver's error).
        var e = Assert.ThrowsAny<Exception>(() => runtime.CaptureGraph(() =>
        {
            native.RmsNorm(x.View, w.View, y.View, cols, 1e-6f);
            _ = y.ToArray();
        }));
        Assert.Contains("captur", e.Message, StringComparison.OrdinalIgnoreCase);
        runtime.Synchronize();
        Assert.All(y.ToArray(), v => Assert.True(float.IsNaN(v.ToSingle()), "the failed capture ran an op"));

        native.RmsNorm(x.View, w.View, y.View, cols, 1e-6f);
        var expected = new BFloat16[cols];
        Ops.Reference.RmsNorm<BFloat16, BFloat16>(x.ToArray(), w.ToArray(), expected, cols, 1e-6f);
        Compare.Close<BFloat16>(expected, y.ToArray(), "y after the failed capture");
    }
}
