using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>
/// A compute-bound benchmark: says how many floating-point operations one operation of a method does, so the
/// report can give TFLOP/s (and, through <see cref="BandwidthColumn"/>, its share of the baseline in the
/// same run).
/// </summary>
public interface IComputeBenchmark
{
    /// <summary>Floating-point operations (a multiply-add counts two) of one operation of <paramref name="method"/>.</summary>
    double FloatingPointOperations(string method);
}

/// <summary>TFLOP/s of a compute-bound benchmark: operations per operation / mean time.</summary>
public sealed class TeraflopsColumn : IColumn
{
    public string Id => "TFLOPs";
    public string ColumnName => "TFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 2;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "floating-point operations per operation / mean time, in 10^12 per second";

    public bool IsAvailable(Summary summary) => summary.BenchmarksCases.Any(c => typeof(IComputeBenchmark).IsAssignableFrom(c.Descriptor.Type));
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats || stats.Mean <= 0)
            return "-";
        if (CaseInstance.Of<IComputeBenchmark>(benchmarkCase) is not { } instance)
            return "-";
        double flops = instance.FloatingPointOperations(benchmarkCase.Descriptor.WorkloadMethod.Name);
        return flops > 0 ? (flops / stats.Mean / 1000).ToString("F1") : "-"; // per ns / 1000 = TFLOP/s
    }

    public override string ToString() => ColumnName;
}
