using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>
/// Columns for compute-bound CPU benchmarks (<see cref="IComputeBenchmark"/>): GFLOP/s (TFLOP/s with one decimal says
/// nothing at CPU rates) and that as a share of the class's <see cref="PeakMethod"/> benchmark with the same parameters,
/// a loop of independent fused multiply-adds on every thread measured in the same run: the machine's real FMA peak.
/// </summary>
public sealed class CpuComputeColumn(bool shareOfPeak) : IColumn
{
    public const string PeakMethod = "FmaPeak";

    public string Id => shareOfPeak ? "FmaPeakShare" : "GFLOPs";
    public string ColumnName => shareOfPeak ? "% of FMA peak" : "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => shareOfPeak ? 4 : 3;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => shareOfPeak
        ? "GFLOP/s as a share of the FMA-loop peak (FmaPeak) measured in the same run with the same parameters"
        : "floating-point operations per operation (a multiply-add counts two) / mean time, in 10^9 per second";

    public bool IsAvailable(Summary summary) => summary.BenchmarksCases.Any(c => typeof(IComputeBenchmark).IsAssignableFrom(c.Descriptor.Type));
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? gflops = Gigaflops(summary, benchmarkCase);
        if (gflops is null)
            return "-";
        if (!shareOfPeak)
            return gflops.Value.ToString("F1");
        var peak = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.WorkloadMethod.Name == PeakMethod &&
            c.Descriptor.Type == benchmarkCase.Descriptor.Type &&
            c.Parameters.DisplayInfo == benchmarkCase.Parameters.DisplayInfo);
        double? peakGflops = peak is null ? null : Gigaflops(summary, peak);
        return peakGflops is > 0 ? (100 * gflops.Value / peakGflops.Value).ToString("F0") + "%" : "-";
    }

    static double? Gigaflops(Summary summary, BenchmarkCase benchmarkCase)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats || stats.Mean <= 0)
            return null;
        if (CaseInstance.Of<IComputeBenchmark>(benchmarkCase) is not { } instance)
            return null;
        double flops = instance.FloatingPointOperations(benchmarkCase.Descriptor.WorkloadMethod.Name);
        return flops > 0 ? flops / stats.Mean : null; // per ns = GFLOP/s
    }

    public override string ToString() => ColumnName;
}

/// <summary>Adds the <see cref="CpuComputeColumn"/>s to a class's report (<c>[Config(typeof(CpuComputeConfig))]</c>).</summary>
public sealed class CpuComputeConfig : ManualConfig
{
    public CpuComputeConfig() => AddColumn(new CpuComputeColumn(shareOfPeak: false), new CpuComputeColumn(shareOfPeak: true));
}
