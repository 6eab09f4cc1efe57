using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Runtime;

// dotnet run -c Release --project bench/DeepSeekKernels.Bench -- [--cpu] [BenchmarkDotNet args, e.g. --filter '*RmsNorm*']
// --cpu runs the CPU benchmarks (classes marked [CpuBenchmark]: the reference backend, the op API's own cost), which
// need no GPU; without it, the kernel benchmarks, which need one.
// DSK_BENCH_SMOKE=1 runs small shapes on ILGPU's CPU accelerator (no GPU): proves the benchmarks run, measures nothing.
bool cpu = args.Contains("--cpu");
args = [.. args.Where(a => a != "--cpu")];
bool list = args.Contains("--list"); // listing the cases (--list flat|tree) needs no GPU
if (!cpu && !list && !BenchEnvironment.Smoke && !DeviceRuntime.IsCudaAvailable())
{
    Console.WriteLine("No CUDA GPU found: the kernel benchmarks need one (see scripts/gpu-check.sh). Nothing was measured.");
    Console.WriteLine("Set DSK_BENCH_SMOKE=1 to run them on ILGPU's CPU accelerator at small shapes, as a check that they run;");
    Console.WriteLine("--cpu runs the reference backend's benchmarks, which need no GPU.");
    return BenchEnvironment.GpuRequired ? 1 : 0; // DSK_REQUIRE_GPU=1 (scripts/gpu-check.sh): no GPU is a failure

}
if (!args.Contains("--filter"))
    args = [.. args, "--filter", .. BenchEnvironment.Smoke && !cpu ? new[] { "*.Copy", "*.Ilgpu" } : ["*"]];
var benchmarks = typeof(BenchConfig).Assembly.GetTypes()
    .Where(t => t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkAttribute))))
    .Where(t => t.IsDefined(typeof(CpuBenchmarkAttribute), false) == cpu)
    .Where(t => !(BenchEnvironment.Smoke && t.IsDefined(typeof(CudaOnlyAttribute), false)))
    .ToArray();
if (!cpu && !list && !BenchEnvironment.Smoke)
    DeepSeekKernels.Bench.RmsNorm.HostPathWarmUp.Run(TimeSpan.FromSeconds(1));
var summaries = BenchmarkSwitcher.FromTypes(benchmarks).Run(args, new BenchConfig());
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
