using System.Diagnostics.CodeAnalysis;
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
    static readonly Lazy<bool> CudaFound = new(DeviceRuntime.IsCudaAvailable);
    static readonly Lazy<DeviceRuntime?> CudaRuntime = new(() =>
        CudaFound.Value ? DeviceRuntime.Create(DevicePreference.Cuda) : null);

    /// <summary>The reason a GPU test does not run where no CUDA GPU is found.</summary>
    public const string NoCudaReason = "No CUDA GPU found: this test runs on a GPU machine (scripts/gpu-check.sh).";

    /// <summary>Added to a reason when DSK_REQUIRE_GPU=1 turns a skip into a failure.</summary>
    public const string GpuRequiredNote = "DSK_REQUIRE_GPU=1: a GPU test that cannot run fails.";

    /// <summary>
    /// Whether a CUDA GPU is found, asked once per process without creating a runtime (test discovery asks it
    /// for every <see cref="DeviceTheoryAttribute"/> theory of a <see cref="NeedsCudaGpuAttribute"/> class).
    /// </summary>
    public static bool HasCuda => CudaFound.Value;

    /// <summary>DSK_REQUIRE_GPU=1 (a GPU machine's run): a GPU test that would skip fails instead.</summary>
    public static bool GpuRequired => Environment.GetEnvironmentVariable("DSK_REQUIRE_GPU") == "1";

    /// <summary>ILGPU's CPU accelerator.</summary>
    public static DeviceRuntime Cpu => CpuRuntime.Value;

    /// <summary>The CUDA GPU, or null where none is found.</summary>
    public static DeviceRuntime? Cuda => CudaRuntime.Value;

    /// <summary>The CUDA runtime, or skips the test with the reason (fails under DSK_REQUIRE_GPU=1).</summary>
    public static DeviceRuntime RequireCuda()
    {
        if (Cuda is null)
            SkipOrFail(NoCudaReason);
        return Cuda;
    }

    /// <summary>The CUDA runtime with the native kernels loaded, or skips the test with the reason (fails under DSK_REQUIRE_GPU=1).</summary>
    public static DeviceRuntime RequireNative()
    {
        var cuda = RequireCuda();
        if (!cuda.IsNativeAvailable(out string reason))
            SkipOrFail("CUDA GPU found but the native kernels are not usable: " + reason);
        return cuda;
    }

    /// <summary>
    /// The Ops of a span-form test by name, on this machine's CPU: "reference", "cpu" (the CPU backend, 2 threads) or
    /// "ilgpu" (ILGPU's CPU accelerator).
    /// </summary>
    public static Ops CpuOps(string name) => name switch
    {
        "reference" => Ops.Reference,
        "cpu" => Ops.CreateCpu(Cpu, 2),
        "ilgpu" => Ops.Create(Cpu, Backend.Ilgpu),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "reference, cpu or ilgpu"),
    };

    /// <summary>The Ops of a GPU test by backend name: "native" or "ilgpu" (ILGPU on CUDA); skips without them (fails under DSK_REQUIRE_GPU=1).</summary>
    public static Ops GpuOps(string name) => name switch
    {
        "native" => Ops.Create(RequireNative(), Backend.Native),
        "ilgpu" => Ops.Create(RequireCuda(), Backend.Ilgpu),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "native or ilgpu"),
    };

    [DoesNotReturn]
    static void SkipOrFail(string reason)
    {
        if (GpuRequired)
            Assert.Fail(reason + " " + GpuRequiredNote);
        Assert.Skip(reason);
    }
}

/// <summary>Tests that use a shared device runtime; run one at a time.</summary>
[CollectionDefinition(nameof(DeviceCollection), DisableParallelization = true)]
public sealed class DeviceCollection;
