using System.Diagnostics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.RmsNorm;

/// <summary>
/// Runs the op API's launch path (native and ILGPU, plain and fused, and the copy baseline) for about a
/// second before BenchmarkDotNet starts, so the .NET tiered JIT has promoted it to optimised code by the
/// first measured case. Without it the first case (1 x 4096, plain) looked unsettled: on the H100 run of
/// 2026-11-23 (05:20 UTC) the native kernel's per-call figure fell from 5.4 to 4.3 µs across its measured
/// iterations. New JIT work (BenchmarkDotNet's own, early in a run) restarts the runtime's delay before
/// promoting methods, so a case's own three warm-up iterations need not cover it.
/// </summary>
internal static class HostPathWarmUp
{
    public static void Run(TimeSpan duration)
    {
        foreach (bool fused in new[] { false, true })
        {
            using var work = new RmsNormWorkload(fused, 1, 4096, DevicePreference.Cuda);
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < duration / 2)
            {
                for (int i = 0; i < 64; i++)
                {
                    work.Launch(work.Native!);
                    work.Launch(work.Ilgpu);
                    work.Copy();
                }
                work.Runtime.Synchronize();
            }
        }
    }
}
