using DeepSeekKernels.Bindings;
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
        using var op = new CaptureFailureCase(runtime, 4096);
        // A copy to the host waits for the stream, which a capturing stream refuses (the driver's error).
        var e = Assert.ThrowsAny<Exception>(() => runtime.CaptureGraph(() =>
        {
            op.Enqueue();
            _ = op.Y.ToArray();
        }));
        Assert.Contains("captur", e.Message, StringComparison.OrdinalIgnoreCase);
        op.AssertNothingRanAndTheStreamWorks();
    }
}
