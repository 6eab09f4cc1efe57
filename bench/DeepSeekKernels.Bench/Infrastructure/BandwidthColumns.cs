using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>
/// GB/s of a memory-bound benchmark (bytes read + written per operation / mean time), and that as a share of
/// the copy baseline measured in the same run with the same parameters.
/// </summary>
public sealed class BandwidthColumn(bool shareOfCopy) : IColumn
{
    public const string CopyMethod = "Copy";

    public string Id => shareOfCopy ? "CopyShare" : "GBps";
    public string ColumnName => shareOfCopy ? "% of copy" : "GB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => shareOfCopy ? 1 : 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => shareOfCopy
        ? "GB/s as a share of the device copy of the same input bytes, measured in the same run"
        : "bytes read + written per operation / mean time, in 10^9 bytes per second";

    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? gbps = GigabytesPerSecond(summary, benchmarkCase);
        if (gbps is null)
            return "-";
        if (!shareOfCopy)
            return gbps.Value.ToString("F0");
        var copy = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.WorkloadMethod.Name == CopyMethod &&
            c.Descriptor.Type == benchmarkCase.Descriptor.Type &&
            c.Parameters.DisplayInfo == benchmarkCase.Parameters.DisplayInfo);
        double? copyGbps = copy is null ? null : GigabytesPerSecond(summary, copy);
        return copyGbps is > 0 ? (100 * gbps.Value / copyGbps.Value).ToString("F0") + "%" : "-";
    }

    static double? GigabytesPerSecond(Summary summary, BenchmarkCase benchmarkCase)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats || stats.Mean <= 0)
            return null;
        // A fresh instance with this case's parameters applied tells the bytes moved.
        if (CaseInstance.Of<IBandwidthBenchmark>(benchmarkCase) is not { } instance)
            return null;
        long bytes = instance.BytesMoved(benchmarkCase.Descriptor.WorkloadMethod.Name);
        return bytes / stats.Mean; // bytes per ns = GB/s
    }

    public override string ToString() => ColumnName;
}
