namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>How the benchmarks were asked to run.</summary>
public static class BenchEnvironment
{
    /// <summary>
    /// DSK_BENCH_SMOKE=1: small shapes on ILGPU's CPU accelerator, to check on a machine without a GPU that
    /// the benchmarks run before spending GPU time on them. Its numbers mean nothing.
    /// </summary>
    public static bool Smoke => Environment.GetEnvironmentVariable("DSK_BENCH_SMOKE") == "1";

    /// <summary>
    /// DSK_BENCH_HEADLINE=1 (scripts/gpu-check.sh): each class runs only the cases its headline figures need (the goals'
    /// shapes), so every issue's figures fit one short GPU call; without it, every case of the issue.
    /// </summary>
    public static bool Headline => Environment.GetEnvironmentVariable("DSK_BENCH_HEADLINE") == "1";

    /// <summary>
    /// DSK_BENCH_QUICK=1 (scripts/gpu-check.sh): the short job of <see cref="BenchConfig"/> (1 warm-up and 5 measured
    /// iterations of 50 ms, no overhead evaluation) instead of 3 and 12 of 100 ms: about a third of the time per case.
    /// A GPU kernel's time per launch varies by a few percent between iterations, so medians of 5 hold; the report says
    /// which job ran.
    /// </summary>
    public static bool Quick => Environment.GetEnvironmentVariable("DSK_BENCH_QUICK") == "1";

    /// <summary>DSK_REQUIRE_GPU=1 (scripts/gpu-check.sh): finding no GPU is a failure, not a note.</summary>
    public static bool GpuRequired => Environment.GetEnvironmentVariable("DSK_REQUIRE_GPU") == "1";
}

/// <summary>A benchmark that needs a CUDA GPU even in smoke mode (cuBLAS, say): smoke runs leave it out.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class CudaOnlyAttribute : Attribute;

/// <summary>A benchmark of the CPU side (the reference backend, the op API's own cost): runs with --cpu, needs no GPU.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class CpuBenchmarkAttribute : Attribute;
