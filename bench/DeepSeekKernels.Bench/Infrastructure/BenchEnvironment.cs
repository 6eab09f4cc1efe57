namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>How the benchmarks were asked to run.</summary>
public static class BenchEnvironment
{
    /// <summary>
    /// DSK_BENCH_SMOKE=1: small shapes on ILGPU's CPU accelerator, to check on a machine without a GPU that
    /// the benchmarks run before spending GPU time on them. Its numbers mean nothing.
    /// </summary>
    public static bool Smoke => Environment.GetEnvironmentVariable("DSK_BENCH_SMOKE") == "1";
}

/// <summary>A benchmark that needs a CUDA GPU even in smoke mode (cuBLAS, say): smoke runs leave it out.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class CudaOnlyAttribute : Attribute;

/// <summary>A benchmark of the CPU side (the reference backend, the op API's own cost): runs with --cpu, needs no GPU.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class CpuBenchmarkAttribute : Attribute;
