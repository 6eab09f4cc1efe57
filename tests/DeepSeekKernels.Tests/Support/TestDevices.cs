using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// The device runtimes tests share, created once per process: ILGPU's CPU accelerator (always) and the
/// first CUDA GPU (where there is one). Tests that use them join <see cref="DeviceCollection"/>, which runs
/// them one at a time, since they share one stream.
/// </summary>
public static class TestDevices
{
    static readonly Lazy<DeviceRuntime> CpuRuntime = new(() => DeviceRuntime.Create(DevicePreference.Cpu));
    static readonly Lazy<DeviceRuntime?> CudaRuntime = new(() =>
        DeviceRuntime.IsCudaAvailable() ? DeviceRuntime.Create(DevicePreference.Cuda) : null);

    /// <summary>ILGPU's CPU accelerator.</summary>
    public static DeviceRuntime Cpu => CpuRuntime.Value;

    /// <summary>The CUDA GPU, or null where none is found.</summary>
    public static DeviceRuntime? Cuda => CudaRuntime.Value;

    /// <summary>The CUDA runtime, or skips the test with the reason.</summary>
    public static DeviceRuntime RequireCuda()
    {
        Assert.SkipWhen(Cuda is null, "No CUDA GPU found: this test runs on a GPU machine (scripts/gpu-check.sh).");
        return Cuda!;
    }

    /// <summary>The CUDA runtime with the native kernels loaded, or skips the test with the reason.</summary>
    public static DeviceRuntime RequireNative()
    {
        var cuda = RequireCuda();
        Assert.SkipUnless(cuda.IsNativeAvailable(out string reason), "CUDA GPU found but the native kernels are not usable: " + reason);
        return cuda;
    }
}

/// <summary>Tests that use a shared device runtime; run one at a time.</summary>
[CollectionDefinition(nameof(DeviceCollection), DisableParallelization = true)]
public sealed class DeviceCollection;
