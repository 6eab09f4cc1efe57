using BenchmarkDotNet.Running;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Runtime;

// dotnet run -c Release --project bench/DeepSeekKernels.Bench -- [BenchmarkDotNet args, e.g. --filter '*RmsNorm*']
// DSK_BENCH_SMOKE=1 runs small shapes on ILGPU's CPU accelerator (no GPU): proves the benchmarks run, measures nothing.
if (!BenchEnvironment.Smoke && !DeviceRuntime.IsCudaAvailable())
{
    Console.WriteLine("No CUDA GPU found: the kernel benchmarks need one (see scripts/gpu-check.sh). Nothing was measured.");
    Console.WriteLine("Set DSK_BENCH_SMOKE=1 to run them on ILGPU's CPU accelerator at small shapes, as a check that they run.");
    return 0;
}
if (!args.Contains("--filter"))
    args = [.. args, "--filter", .. BenchEnvironment.Smoke ? new[] { "*.Copy", "*.Ilgpu" } : ["*"]];
var summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, new BenchConfig());
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
