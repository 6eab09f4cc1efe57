using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Attention;

/// <summary>
/// A bf16 paged KV cache and the metadata of a batch of equal sequences over it, in <see cref="Rotations"/> disjoint copies
/// (each its own pages of one pool, its own block table), so that successive calls read at least
/// <see cref="AttentionWorkload.RotationBytes"/> of distinct cache between two uses of one page (the H200's L2 is 60 MB).
/// Pages are handed out in a shuffled order (a real pool's pages are not in position order). Every sequence has
/// <see cref="Context"/> keys and <see cref="QueriesPerSequence"/> queries (its last positions).
/// </summary>
internal sealed class PagedCache : IDisposable
{
    readonly List<IDisposable> _owned = [];

    public PagedCache(DeviceRuntime runtime, int batch, int context, int queriesPerSequence, int pageSize, int keyWidth, int valueWidth,
        long minimumRotationBytes)
    {
        Batch = batch;
        Context = context;
        QueriesPerSequence = queriesPerSequence;
        PageSize = pageSize;
        KeyWidth = keyWidth;
        ValueWidth = valueWidth;
        MaxPages = (context + pageSize - 1) / pageSize;
        PagesPerRotation = batch * MaxPages;
        Rotations = (int)Math.Max(1, (minimumRotationBytes + CacheBytes - 1) / CacheBytes);
        Pages = PagesPerRotation * Rotations;
        long keyElements = (long)Pages * pageSize * keyWidth, valueElements = (long)Pages * pageSize * valueWidth;
        KeyPages = Keep(Upload(runtime, keyElements));
        ValuePages = valueWidth == 0 ? null : Keep(Upload(runtime, valueElements));

        var random = new Random(7);
        var lengths = Enumerable.Repeat(context, batch).ToArray();
        var starts = Enumerable.Range(0, batch + 1).Select(b => b * queriesPerSequence).ToArray();
        SequenceLengths = Keep(runtime.Upload<int>(lengths));
        QueryStarts = Keep(runtime.Upload<int>(starts));
        BlockTables = new DeviceBuffer<int>[Rotations];
        for (int r = 0; r < Rotations; r++)
        {
            var table = Enumerable.Range(r * PagesPerRotation, PagesPerRotation).ToArray();
            random.Shuffle(table);
            BlockTables[r] = Keep(runtime.Upload<int>(table));
        }
    }

    /// <summary>A pool of random bf16 values in [-2, 2), filled in slices of at most 2^30 elements.</summary>
    static DeviceBuffer<BFloat16> Upload(DeviceRuntime runtime, long elements)
    {
        var buffer = runtime.Allocate<BFloat16>(elements);
        const long chunk = 1L << 28;
        var values = BenchData.RandomBf16(Math.Min(elements, chunk));
        for (long at = 0; at < elements; at += chunk)
        {
            long n = Math.Min(chunk, elements - at);
            buffer.View.Slice(at, n).CopyFromHost(values[..(int)n]);
        }
        return buffer;
    }

    public int Batch { get; }
    public int Context { get; }
    public int QueriesPerSequence { get; }
    public int PageSize { get; }
    public int KeyWidth { get; }
    public int ValueWidth { get; }
    public int MaxPages { get; }
    public int PagesPerRotation { get; }
    public int Rotations { get; }
    public int Pages { get; }
    public int Tokens => Batch * QueriesPerSequence;

    /// <summary>Bytes of keys and values one call reads: every sequence's keys (and values), bf16.</summary>
    public long CacheBytes => (long)Batch * Context * (KeyWidth + ValueWidth) * 2;

    /// <summary>Bytes of one rotation's pages (what the copy baseline moves per call, read and written).</summary>
    public long RotationPageBytes => (long)PagesPerRotation * PageSize * (KeyWidth + ValueWidth) * 2;

    public DeviceBuffer<BFloat16> KeyPages { get; }
    public DeviceBuffer<BFloat16>? ValuePages { get; }
    public DeviceBuffer<int> SequenceLengths { get; }
    public DeviceBuffer<int> QueryStarts { get; }
    public DeviceBuffer<int>[] BlockTables { get; }

    /// <summary>The op API's view of rotation <paramref name="r"/>'s metadata.</summary>
    public PagedBatch Metadata(int r) => new(BlockTables[r].View, SequenceLengths.View, QueryStarts.View);

    public DeviceTensor KeyTensor => DeviceTensor.Of(KeyPages.View, Pages, PageSize, KeyWidth);
    public DeviceTensor ValueTensor => DeviceTensor.Of(ValuePages!.View, Pages, PageSize, ValueWidth);

    /// <summary>The device address of the first key (or value) element of rotation <paramref name="r"/>'s pages.</summary>
    public IntPtr KeyRotation(int r) => KeyPages.View.Pointer + (nint)((long)r * PagesPerRotation * PageSize * KeyWidth * 2);
    public IntPtr ValueRotation(int r) => ValuePages!.View.Pointer + (nint)((long)r * PagesPerRotation * PageSize * ValueWidth * 2);

    T Keep<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    public void Dispose()
    {
        foreach (var item in _owned)
            item.Dispose();
        _owned.Clear();
    }
}

/// <summary>What the attention benchmarks share: rotation size, the dsk_paged_attention params, the GEMM ceiling.</summary>
internal static class AttentionWorkload
{
    /// <summary>Distinct bytes touched between two uses of one input: more than twice the H200's 60 MB L2.</summary>
    public const long RotationBytes = 128L << 20;

    /// <summary>The cuBLAS bf16 GEMM the compute-bound cases are measured against: 8192^3, bf16 in and out, fp32 accumulation.</summary>
    public const int GemmSize = 8192;

    public static double GemmFlops => 2.0 * GemmSize * GemmSize * GemmSize;

    /// <summary>dsk_paged_attention params for <paramref name="cache"/> rotation 0, all bf16, path AUTO; workspace not set.</summary>
    public static DskPagedAttentionParams Params(DeviceRuntime runtime, PagedCache cache, IntPtr q, IntPtr output, int qHeads, int kvHeads,
        int headDim, int vHeadDim, float scale, bool mla) => new()
    {
        Q = q,
        KeyPages = cache.KeyPages.View.Pointer,
        ValuePages = mla ? IntPtr.Zero : cache.ValuePages!.View.Pointer,
        BlockTable = cache.BlockTables[0].View.Pointer,
        SequenceLengths = cache.SequenceLengths.View.Pointer,
        QueryStarts = cache.QueryStarts.View.Pointer,
        Out = output,
        ErrorWord = runtime.Errors.Word.View.Pointer,
        Tokens = cache.Tokens,
        Batch = cache.Batch,
        MaxPages = cache.MaxPages,
        Pages = cache.Pages,
        PageSize = cache.PageSize,
        QHeads = qHeads,
        KvHeads = kvHeads,
        HeadDim = headDim,
        VHeadDim = vHeadDim,
        Scale = scale,
        QDType = (int)DskDType.BF16,
        PageDType = (int)DskDType.BF16,
        OutDType = (int)DskDType.BF16,
        Path = (int)DskAttentionPath.Auto,
        ErrorSiteBlockTable = DeviceErrorSite.AttentionBlockTable.Id,
        ErrorSiteLengths = DeviceErrorSite.AttentionLengths.Id,
        ErrorSiteQueryStarts = DeviceErrorSite.AttentionQueryStarts.Id,
        Stream = runtime.CudaStreamHandle,
    };

    /// <summary>Sizes and allocates the split-K workspace of <paramref name="p"/> (kept in <paramref name="owned"/>).</summary>
    public static void AddWorkspace(DeviceRuntime runtime, ref DskPagedAttentionParams p, bool mla, List<IDisposable> owned)
    {
        long bytes = DskNative.PagedAttentionWorkspaceSize(p, mla);
        if (bytes == 0)
            return;
        var buffer = runtime.Allocate<int>((bytes + 3) / 4);
        owned.Add(buffer);
        p.Workspace = buffer.View.Pointer;
        p.WorkspaceBytes = buffer.Length * 4;
    }

    /// <summary>Throws (the case is reported as not run) unless <paramref name="ops"/> runs <paramref name="signature"/>.</summary>
    public static void RequireSupport(Ops ops, OpSignature signature)
    {
        if (!ops.Supports(signature, out string? reason))
            throw new NotSupportedException($"{ops.Backend} does not run {signature}: {reason}");
    }
}

/// <summary>The cuBLAS bf16 GEMM ceiling: <see cref="AttentionWorkload.GemmSize"/>^3, random bf16 operands, bf16 out.</summary>
internal sealed class GemmCeiling : IDisposable
{
    readonly DeviceBuffer<BFloat16> _a, _b, _c;
    readonly Cublas _cublas;

    public GemmCeiling(DeviceRuntime runtime)
    {
        long n = AttentionWorkload.GemmSize;
        _a = runtime.Upload<BFloat16>(BenchData.RandomBf16(n * n));
        _b = runtime.Upload<BFloat16>(BenchData.RandomBf16(n * n));
        _c = runtime.Allocate<BFloat16>(n * n);
        runtime.Bind();
        _cublas = new Cublas(runtime.CudaStreamHandle);
        Run();
    }

    /// <summary>Enqueues one GEMM.</summary>
    public void Run()
    {
        int n = AttentionWorkload.GemmSize;
        _cublas.GemmNT(n, n, n, _a.View.Pointer, _b.View.Pointer, _c.View.Pointer, CudaDataType.R16BF, CudaDataType.R16BF);
    }

    public void Dispose()
    {
        _cublas.Dispose();
        _a.Dispose();
        _b.Dispose();
        _c.Dispose();
    }
}

/// <summary>
/// A column relative to another method of the same class with the same parameters: "% of GEMM" (this case's TFLOP/s over
/// the cuBLAS GEMM ceiling's, <see cref="IComputeBenchmark"/>) or "x native" (the native kernel's mean time over this
/// case's: below 1 is slower than native). "-" for the reference method itself, the copy and the GEMM.
/// </summary>
public sealed class RelativeToMethodColumn(string id, string name, string reference, bool rate, string legend) : IColumn
{
    public const string GemmMethod = "CublasBf16"; // not "*Gemm*": a filter on that would also pick CublasGemmBenchmarks
    public const string NativeMethod = "Native";

    public string Id => id;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 4;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => legend;

    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        string method = benchmarkCase.Descriptor.WorkloadMethod.Name;
        if (method == reference || method == BandwidthColumn.CopyMethod || method == GemmMethod)
            return "-";
        var other = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.WorkloadMethod.Name == reference && c.Descriptor.Type == benchmarkCase.Descriptor.Type &&
            c.Parameters.DisplayInfo == benchmarkCase.Parameters.DisplayInfo);
        double? mine = summary[benchmarkCase]?.ResultStatistics?.Mean;
        double? theirs = other is null ? null : summary[other]?.ResultStatistics?.Mean;
        if (mine is not > 0 || theirs is not > 0)
            return "-";
        if (!rate)
            return (theirs.Value / mine.Value).ToString("F2");
        if (CaseInstance.Of<IComputeBenchmark>(benchmarkCase) is not { } instance)
            return "-";
        double myRate = instance.FloatingPointOperations(method) / mine.Value;
        double theirRate = instance.FloatingPointOperations(reference) / theirs.Value;
        return myRate > 0 && theirRate > 0 ? (100 * myRate / theirRate).ToString("F0") + "%" : "-";
    }

    public override string ToString() => ColumnName;
}

/// <summary>Adds "% of GEMM" (TFLOP/s over the cuBLAS bf16 GEMM's, measured in the same run) to a benchmark class.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class ShareOfGemmColumnAttribute : Attribute, IConfigSource
{
    public IConfig Config { get; } = ManualConfig.CreateEmpty().AddColumn(new RelativeToMethodColumn("GemmShare", "% of GEMM",
        RelativeToMethodColumn.GemmMethod, rate: true,
        "TFLOP/s as a share of cuBLAS bf16 GEMM's (8192^3, random data), measured in the same run"));
}

/// <summary>Adds "x native" (the native kernel's time over this case's, same parameters) to a benchmark class.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RatioToNativeColumnAttribute : Attribute, IConfigSource
{
    public IConfig Config { get; } = ManualConfig.CreateEmpty().AddColumn(new RelativeToMethodColumn("NativeRatio", "x native",
        RelativeToMethodColumn.NativeMethod, rate: false,
        "the native kernel's mean time with the same parameters / this case's mean time (below 1: slower than native)"));
}
