using BenchmarkDotNet.Running;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Runtime;

// dotnet run -c Release --project bench/DeepSeekKernels.Bench -- [BenchmarkDotNet args, e.g. --filter '*RmsNorm*']
if (!DeviceRuntime.IsCudaAvailable())
{
    Console.WriteLine("No CUDA GPU found: the kernel benchmarks need one (see scripts/gpu-check.sh). Nothing was measured.");
    return 0;
}
var summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args.Length == 0 ? ["--filter", "*"] : args, new BenchConfig());
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
