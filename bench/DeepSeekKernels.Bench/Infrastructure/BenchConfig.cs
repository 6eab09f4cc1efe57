using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>
/// In-process (no SDK needed on the GPU machine), short iterations (each benchmark invocation launches many
/// kernels and synchronises once, so an iteration of 100 ms holds thousands of launches), mean and median
/// per operation, GB/s and share of copy bandwidth (TFLOP/s for compute-bound ones), GitHub markdown and CSV
/// reports, one per benchmark class.
/// </summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        // DSK_BENCH_QUICK=1 (scripts/gpu-check.sh): the short job, about a third of the time per case.
        AddJob(BenchEnvironment.Quick
            ? Job.Default
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithLaunchCount(1)
                .WithWarmupCount(1)
                .WithIterationCount(5)
                .WithIterationTime(TimeInterval.FromMilliseconds(50))
                .WithEvaluateOverhead(false)
                .WithId("Quick")
            : Job.Default
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithLaunchCount(1)
                .WithWarmupCount(3)
                .WithIterationCount(12)
                .WithIterationTime(TimeInterval.FromMilliseconds(100)));
        AddColumnProvider(DefaultColumnProviders.Descriptor, DefaultColumnProviders.Params);
        AddColumn(StatisticColumn.Mean, StatisticColumn.Median, StatisticColumn.StdDev);
        AddColumn(new BandwidthColumn(shareOfCopy: false), new BandwidthColumn(shareOfCopy: true), new TeraflopsColumn());
        AddExporter(MarkdownExporter.GitHub, CsvExporter.Default);
        AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default);
        WithSummaryStyle(BenchmarkDotNet.Reports.SummaryStyle.Default.WithTimeUnit(TimeUnit.Microsecond));
    }
}
