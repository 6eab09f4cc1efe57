using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Attention;

// The attention benchmarks of issue 12, each class measuring its own ceiling in the same run:
//   PagedDecodeBenchmarks      GQA decode vs a device copy of the KV bytes read (memory-bound)
//   MlaDecodeBenchmarks        MLA decode vs the cuBLAS bf16 GEMM rate (128 heads) and the copy (16 heads)
//   PrefillAttentionBenchmarks causal prefill (one long sequence and a varlen batch) vs the cuBLAS bf16 GEMM rate
//   RopeKvAppendBenchmarks     RoPE on q and k, KV append, and both, vs a copy of the same rows
// Native calls go straight through the bindings (dsk_* with the params the native backend builds), so host cost is the
// library's; the ILGPU rows go through the op API (its only entry), so theirs includes the op API's validation (a few µs).
// Each invocation enqueues the method's launches back to back and synchronises once. GPU only ([CudaOnly]): smoke runs
// and machines without a GPU leave them out (Program.cs says so and exits 0).
// DSK_BENCH_HEADLINE=1 (what scripts/gpu-check.sh sets) keeps the headline parameters only: decode at page 16, MLA at batch
// 1 and 128, RoPE + KvAppend at 4096 tokens (35 cases).

/// <summary>
/// What the attention benchmark classes share: the runtime, everything a setup allocates (<see cref="Keep{T}"/>, freed by the
/// cleanup before the runtime), and the rotation counter that walks disjoint input copies so each launch reads DRAM.
/// </summary>
public abstract class AttentionBenchmark : IDisposable
{
    protected DeviceRuntime? _runtime;
    readonly List<IDisposable> _owned = [];
    int _next;

    /// <summary>Disjoint copies of the inputs that <see cref="Next"/> cycles through (1: none).</summary>
    protected virtual int Rotations => 1;

    /// <summary>Everything a setup allocated, freed by the cleanup (the native workspace helper adds to it).</summary>
    protected List<IDisposable> Owned => _owned;

    /// <summary>The next rotation index.</summary>
    protected int Next()
    {
        int r = _next;
        _next = (_next + 1) % Rotations;
        return r;
    }

    /// <summary>Frees <paramref name="item"/> in the cleanup.</summary>
    protected T Keep<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        foreach (var item in _owned)
            item.Dispose();
        _owned.Clear();
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// Paged GQA decode: one query per sequence, 32 q / 8 kv heads of 128, bf16 q, pages and output, page 16 and 64, batch x
/// context 1 x 32768, 16 x 4096 and 64 x 2048 (128 to 512 MiB of keys and values per call, each more than twice the L2).
/// <list type="bullet">
/// <item>Copy: cuMemcpyDtoDAsync of the keys' and values' pages (the bandwidth ceiling; GB/s counts read + write);</item>
/// <item>Native: dsk_paged_attention, path AUTO (split-K + combine where one sequence must fill the GPU);</item>
/// <item>Ilgpu: Ops.PagedAttention on the ILGPU backend (not run where ILGPU has no such kernel: the case says why).</item>
/// </list>
/// GB/s is over the bytes the call must move (the KV bytes read, q, the output and the metadata); "% of copy" is that over
/// the copy's; "x native" the native time over ILGPU's. Goal: native at least 80% of copy, ILGPU within 1.5x of native.
/// </summary>
[CudaOnly, RatioToNativeColumn]
public class PagedDecodeBenchmarks : AttentionBenchmark, IBandwidthBenchmark
{
    const int Launches = 20, QHeads = 32, KvHeads = 8, HeadDim = 128;

    [ParamsSource(nameof(PageSizes))] public int PageSize = 16;

    public static IEnumerable<int> PageSizes => BenchEnvironment.Headline ? [16] : [16, 64];

    /// <summary>"batch x context".</summary>
    [Params("1x32768", "16x4096", "64x2048")] public string Shape = "1x32768";

    int Batch => int.Parse(Shape.Split('x')[0]);
    int Context => int.Parse(Shape.Split('x')[1]);

    PagedCache? _cache;
    DeviceBuffer<BFloat16>? _q, _out, _copyDestination;
    DskPagedAttentionParams _params;
    Ops? _ilgpu;

    long KvBytes => (long)Batch * Context * 2 * KvHeads * HeadDim * 2;

    public long BytesMoved(string method) => method == BandwidthColumn.CopyMethod
        ? 2 * KvBytes
        : KvBytes + 2L * Batch * QHeads * HeadDim * 2 + 4L * Batch * ((Context + PageSize - 1) / PageSize + 2);

    void Start()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _cache = Keep(new PagedCache(_runtime, Batch, Context, 1, PageSize, KvHeads * HeadDim, KvHeads * HeadDim, AttentionWorkload.RotationBytes));
        _q = Keep(_runtime.Upload<BFloat16>(BenchData.RandomBf16((long)Batch * QHeads * HeadDim)));
        _out = Keep(_runtime.Allocate<BFloat16>((long)Batch * QHeads * HeadDim));
    }

    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        Start();
        _copyDestination = Keep(_runtime!.Allocate<BFloat16>(_cache!.RotationPageBytes / 2));
        Copy();
    }

    [GlobalSetup(Target = nameof(Native))]
    public void SetupNative()
    {
        Start();
        _params = AttentionWorkload.Params(_runtime!, _cache!, _q!.View.Pointer, _out!.View.Pointer, QHeads, KvHeads, HeadDim, HeadDim,
            1 / MathF.Sqrt(HeadDim), mla: false);
        AttentionWorkload.AddWorkspace(_runtime!, ref _params, mla: false, Owned);
        Native();
    }

    [GlobalSetup(Target = nameof(Ilgpu))]
    public void SetupIlgpu()
    {
        Start();
        _ilgpu = Ops.Create(_runtime!, Backend.Ilgpu);
        AttentionWorkload.RequireSupport(_ilgpu, new OpSignature(nameof(Ops.PagedAttention), ElementType.BF16) { HeadDim = HeadDim, Pages = ElementType.BF16 });
        Ilgpu();
    }

    /// <summary>The bandwidth ceiling: a device copy of one rotation's key and value pages.</summary>
    [Benchmark(OperationsPerInvoke = Launches)]
    public void Copy()
    {
        var runtime = _runtime!;
        var cache = _cache!;
        long half = cache.RotationPageBytes / 2;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
        {
            int r = Next();
            CudaDriver.CopyDeviceToDeviceAsync(_copyDestination!.View.Pointer, cache.KeyRotation(r), half, runtime.CudaStreamHandle);
            CudaDriver.CopyDeviceToDeviceAsync(_copyDestination.View.Pointer + (nint)half, cache.ValueRotation(r), half, runtime.CudaStreamHandle);
        }
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Native()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
        {
            _params.BlockTable = _cache!.BlockTables[Next()].View.Pointer;
            DskNative.PagedAttention(_params);
        }
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Ilgpu()
    {
        var cache = _cache!;
        var q = DeviceTensor.Of(_q!.View, Batch, QHeads, HeadDim);
        var output = DeviceTensor.Of(_out!.View, Batch, QHeads, HeadDim);
        for (int i = 0; i < Launches; i++)
            _ilgpu!.PagedAttention(q, cache.KeyTensor, cache.ValueTensor, cache.Metadata(Next()), output, KvHeads, 1 / MathF.Sqrt(HeadDim));
        _runtime!.Synchronize();
    }

    protected override int Rotations => _cache!.Rotations;


}

/// <summary>
/// DeepSeek MLA decode as FlashMLA runs it: absorbed queries of 576 (512 latent + 64 rope) per head, one shared latent kv
/// head, the bf16 latent cache in pages of 64, output in latent space (512), context 4096, batch 1, 32 and 128, with 128
/// heads (V3/R1: compute-bound, about 2 x heads FLOP per cache byte) and 16 (V2-Lite: memory-bound).
/// <list type="bullet">
/// <item>CublasBf16: cuBLAS bf16 8192^3 (the compute ceiling, in "% of GEMM");</item>
/// <item>Copy: a device copy of the cache pages one call reads (the bandwidth ceiling, in "% of copy");</item>
/// <item>Native: dsk_paged_mla_attention, path AUTO; Ilgpu: Ops.PagedMlaAttention on ILGPU (where it has the kernel).</item>
/// </list>
/// FLOPs: 2 x (576 + 512) per (query head, key). Batch 1 reads 4.7 MB per call: the cache is kept in enough disjoint copies
/// (one pool, one block table each) that 128 MiB pass between two uses of one. Goals: 128 heads at least 60% of the GEMM
/// rate, 16 heads at least 80% of copy.
/// </summary>
[CudaOnly, ShareOfGemmColumn, RatioToNativeColumn]
public class MlaDecodeBenchmarks : AttentionBenchmark, IBandwidthBenchmark, IComputeBenchmark
{
    const int Launches = 20, GemmLaunches = 4, Context = 4096, PageSize = 64, LatentDim = 512, RowDim = 576;

    [Params(128, 16)] public int Heads = 128;
    [ParamsSource(nameof(Batches))] public int Batch = 1;

    public static IEnumerable<int> Batches => BenchEnvironment.Headline ? [1, 128] : [1, 32, 128];

    const float Scale = 0.0723f; // DeepSeek's 1/sqrt(192) (qk head 128 + 64), YaRN mscale aside

    PagedCache? _cache;
    DeviceBuffer<BFloat16>? _q, _out, _copyDestination;
    GemmCeiling? _gemm;
    DskPagedAttentionParams _params;
    Ops? _ilgpu;

    long CacheBytes => (long)Batch * Context * RowDim * 2;

    public long BytesMoved(string method) => method switch
    {
        BandwidthColumn.CopyMethod => 2 * CacheBytes,
        RelativeToMethodColumn.GemmMethod => 0,
        _ => CacheBytes + (long)Batch * Heads * (RowDim + LatentDim) * 2 + 4L * Batch * (Context / PageSize + 2),
    };

    public double FloatingPointOperations(string method) => method switch
    {
        BandwidthColumn.CopyMethod => 0,
        RelativeToMethodColumn.GemmMethod => AttentionWorkload.GemmFlops,
        _ => 2.0 * (RowDim + LatentDim) * Heads * Batch * Context,
    };

    void Start()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _cache = Keep(new PagedCache(_runtime, Batch, Context, 1, PageSize, RowDim, 0, AttentionWorkload.RotationBytes));
        _q = Keep(_runtime.Upload<BFloat16>(BenchData.RandomBf16((long)Batch * Heads * RowDim)));
        _out = Keep(_runtime.Allocate<BFloat16>((long)Batch * Heads * LatentDim));
    }

    [GlobalSetup(Target = nameof(CublasBf16))]
    public void SetupGemm()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _gemm = Keep(new GemmCeiling(_runtime));
    }

    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        Start();
        _copyDestination = Keep(_runtime!.Allocate<BFloat16>(_cache!.RotationPageBytes / 2));
        Copy();
    }

    [GlobalSetup(Target = nameof(Native))]
    public void SetupNative()
    {
        Start();
        _params = AttentionWorkload.Params(_runtime!, _cache!, _q!.View.Pointer, _out!.View.Pointer, Heads, 1, RowDim, LatentDim, Scale, mla: true);
        _params.ErrorSiteBlockTable = DeviceErrorSite.MlaBlockTable.Id;
        _params.ErrorSiteLengths = DeviceErrorSite.MlaLengths.Id;
        _params.ErrorSiteQueryStarts = DeviceErrorSite.MlaQueryStarts.Id;
        AttentionWorkload.AddWorkspace(_runtime!, ref _params, mla: true, Owned);
        Native();
    }

    [GlobalSetup(Target = nameof(Ilgpu))]
    public void SetupIlgpu()
    {
        Start();
        _ilgpu = Ops.Create(_runtime!, Backend.Ilgpu);
        AttentionWorkload.RequireSupport(_ilgpu, new OpSignature(nameof(Ops.PagedMlaAttention), ElementType.BF16) { HeadDim = RowDim, Pages = ElementType.BF16 });
        Ilgpu();
    }

    /// <summary>The compute ceiling: cuBLAS bf16 GEMM, 8192^3.</summary>
    [Benchmark(OperationsPerInvoke = GemmLaunches)]
    public void CublasBf16()
    {
        _runtime!.Bind();
        for (int i = 0; i < GemmLaunches; i++)
            _gemm!.Run();
        _runtime.Synchronize();
    }

    /// <summary>The bandwidth ceiling: a device copy of one rotation's latent pages.</summary>
    [Benchmark(OperationsPerInvoke = Launches)]
    public void Copy()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            CudaDriver.CopyDeviceToDeviceAsync(_copyDestination!.View.Pointer, _cache!.KeyRotation(Next()), _cache.RotationPageBytes, runtime.CudaStreamHandle);
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Native()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
        {
            _params.BlockTable = _cache!.BlockTables[Next()].View.Pointer;
            DskNative.PagedMlaAttention(_params);
        }
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Ilgpu()
    {
        var cache = _cache!;
        var q = DeviceTensor.Of(_q!.View, Batch, Heads, RowDim);
        var output = DeviceTensor.Of(_out!.View, Batch, Heads, LatentDim);
        for (int i = 0; i < Launches; i++)
            _ilgpu!.PagedMlaAttention(q, cache.KeyTensor, cache.Metadata(Next()), output, Scale);
        _runtime!.Synchronize();
    }

    protected override int Rotations => _cache!.Rotations;


}

/// <summary>
/// Causal prefill over the paged cache (the step's keys already appended): 32 q / 8 kv heads of 128, bf16, pages of 64; one
/// sequence of 8192 tokens, and a varlen batch of 16 sequences of 1024 (concatenated, cumulative query offsets).
/// <list type="bullet">
/// <item>CublasBf16: cuBLAS bf16 8192^3 (the compute ceiling, in "% of GEMM");</item>
/// <item>Native: dsk_paged_attention, path AUTO (tensor cores for bf16 prefill);</item>
/// <item>Ilgpu: the ILGPU kernels (CUDA cores; the issue asks only for a report of ILGPU prefill).</item>
/// </list>
/// FLOPs: 4 x head_dim per (query head, query, visible key), n (n + 1) / 2 visible pairs per sequence of n. Goal: at least
/// 45% of the GEMM rate (FlashAttention-2's level), aiming past 70%.
/// </summary>
[CudaOnly, ShareOfGemmColumn]
public class PrefillAttentionBenchmarks : AttentionBenchmark, IComputeBenchmark
{
    const int Launches = 5, GemmLaunches = 4, QHeads = 32, KvHeads = 8, HeadDim = 128, PageSize = 64;

    /// <summary>"sequences x tokens each".</summary>
    [Params("1x8192", "16x1024")] public string Shape = "1x8192";

    int Batch => int.Parse(Shape.Split('x')[0]);
    int Length => int.Parse(Shape.Split('x')[1]);

    PagedCache? _cache;
    DeviceBuffer<BFloat16>? _q, _out;
    GemmCeiling? _gemm;
    DskPagedAttentionParams _params;
    Ops? _ilgpu;

    public double FloatingPointOperations(string method) => method == RelativeToMethodColumn.GemmMethod
        ? AttentionWorkload.GemmFlops
        : 4.0 * HeadDim * QHeads * Batch * ((double)Length * (Length + 1) / 2);

    [GlobalSetup(Target = nameof(CublasBf16))]
    public void SetupGemm()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _gemm = Keep(new GemmCeiling(_runtime));
    }

    void Start()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _cache = Keep(new PagedCache(_runtime, Batch, Length, Length, PageSize, KvHeads * HeadDim, KvHeads * HeadDim, 0));
        long tokens = (long)Batch * Length;
        _q = Keep(_runtime.Upload<BFloat16>(BenchData.RandomBf16(tokens * QHeads * HeadDim)));
        _out = Keep(_runtime.Allocate<BFloat16>(tokens * QHeads * HeadDim));
    }

    [GlobalSetup(Target = nameof(Ilgpu))]
    public void SetupIlgpu()
    {
        Start();
        _ilgpu = Ops.Create(_runtime!, Backend.Ilgpu);
        AttentionWorkload.RequireSupport(_ilgpu, new OpSignature(nameof(Ops.PagedAttention), ElementType.BF16) { HeadDim = HeadDim, Pages = ElementType.BF16 });
        Ilgpu();
    }

    [GlobalSetup(Target = nameof(Native))]
    public void SetupNative()
    {
        Start();
        _params = AttentionWorkload.Params(_runtime!, _cache!, _q!.View.Pointer, _out!.View.Pointer, QHeads, KvHeads, HeadDim, HeadDim,
            1 / MathF.Sqrt(HeadDim), mla: false);
        AttentionWorkload.AddWorkspace(_runtime!, ref _params, mla: false, Owned);
        Native();
    }

    /// <summary>The compute ceiling: cuBLAS bf16 GEMM, 8192^3.</summary>
    [Benchmark(OperationsPerInvoke = GemmLaunches)]
    public void CublasBf16()
    {
        _runtime!.Bind();
        for (int i = 0; i < GemmLaunches; i++)
            _gemm!.Run();
        _runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Native()
    {
        _runtime!.Bind();
        for (int i = 0; i < Launches; i++)
            DskNative.PagedAttention(_params);
        _runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Ilgpu()
    {
        var cache = _cache!;
        long tokens = (long)Batch * Length;
        var q = DeviceTensor.Of(_q!.View, tokens, QHeads, HeadDim);
        var output = DeviceTensor.Of(_out!.View, tokens, QHeads, HeadDim);
        for (int i = 0; i < Launches; i++)
            _ilgpu!.PagedAttention(q, cache.KeyTensor, cache.ValueTensor, cache.Metadata(0), output, KvHeads, 1 / MathF.Sqrt(HeadDim));
        _runtime!.Synchronize();
    }


}

/// <summary>
/// The per-layer writes before attention: RoPE (half-split, rotary 128, f32 cos/sin tables) in place on q [tokens, 32, 128]
/// and k [tokens, 8, 128], and KvAppend of k and v [tokens, 8 x 128] into bf16 pages of 16 through a shuffled slot mapping,
/// at 16 (decode batch) and 4096 (prefill) tokens.
/// <list type="bullet">
/// <item>Copy: a device copy of the q, k and v rows (the bandwidth ceiling);</item>
/// <item>Rope: dsk_rope on q, then on k; KvAppend: dsk_kv_append of k and v; RopeKvAppend: the three in a row.</item>
/// </list>
/// GB/s is over the bytes each must move (rows read and written, positions, slots and the cos/sin rows). The q/k/v rows
/// and the pages come in enough disjoint copies that 128 MiB pass between two uses of one. Goal: at least 80% of copy.
/// </summary>
[CudaOnly]
public class RopeKvAppendBenchmarks : AttentionBenchmark, IBandwidthBenchmark
{
    const int Launches = 50, QHeads = 32, KvHeads = 8, HeadDim = 128, Rotary = 128, PageSize = 16, MaxPositions = 8192;
    const int RowElements = (QHeads + 2 * KvHeads) * HeadDim; // q | k | v of one token

    [ParamsSource(nameof(TokenCounts))] public int Tokens = 16;

    public static IEnumerable<int> TokenCounts => BenchEnvironment.Headline ? [4096] : [16, 4096];

    DeviceBuffer<BFloat16>? _rows, _keyPages, _valuePages, _copyDestination;
    DeviceBuffer<int>? _positions, _slots;
    RopeTable? _table;
    int _rotations;

    long SetBytes => (long)Tokens * RowElements * 2;

    long RopeBytes => 2L * Tokens * (QHeads + KvHeads) * HeadDim * 2 + 4L * Tokens * 2 + 2L * Tokens * (Rotary / 2) * 4 * 2;
    long AppendBytes => 2L * Tokens * 2 * KvHeads * HeadDim * 2 + 4L * Tokens;

    public long BytesMoved(string method) => method switch
    {
        BandwidthColumn.CopyMethod => 2 * SetBytes,
        nameof(Rope) => RopeBytes,
        nameof(KvAppend) => AppendBytes,
        _ => RopeBytes + AppendBytes,
    };

    [GlobalSetup]
    public void Setup()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _rotations = (int)Math.Max(1, (AttentionWorkload.RotationBytes + SetBytes - 1) / SetBytes);
        long rows = (long)_rotations * Tokens;
        _rows = Keep(_runtime.Upload<BFloat16>(BenchData.RandomBf16(rows * RowElements)));
        long pages = (rows + PageSize - 1) / PageSize;
        _keyPages = Keep(_runtime.Allocate<BFloat16>(pages * PageSize * KvHeads * HeadDim));
        _valuePages = Keep(_runtime.Allocate<BFloat16>(pages * PageSize * KvHeads * HeadDim));
        _copyDestination = Keep(_runtime.Allocate<BFloat16>((long)Tokens * RowElements));
        _positions = Keep(_runtime.Upload<int>(Enumerable.Range(0, Tokens).Select(t => (MaxPositions - Tokens) / 2 + t).ToArray()));
        var slots = Enumerable.Range(0, checked((int)rows)).ToArray();
        new Random(3).Shuffle(slots);
        _slots = Keep(_runtime.Upload<int>(slots));
        _table = Keep(RopeTable.Create(_runtime, RopeScaling.Plain(500000), Rotary, MaxPositions));
        RopeKvAppend();
    }

    /// <summary>The bandwidth ceiling: a device copy of one rotation's q, k and v rows.</summary>
    [Benchmark(OperationsPerInvoke = Launches)]
    public void Copy()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            CudaDriver.CopyDeviceToDeviceAsync(_copyDestination!.View.Pointer, Set(Next()), SetBytes, runtime.CudaStreamHandle);
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Rope() => Run(rope: true, append: false);

    [Benchmark(OperationsPerInvoke = Launches)]
    public void KvAppend() => Run(rope: false, append: true);

    [Benchmark(OperationsPerInvoke = Launches)]
    public void RopeKvAppend() => Run(rope: true, append: true);

    void Run(bool rope, bool append)
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
        {
            int r = Next();
            IntPtr q = Set(r), k = q + (nint)((long)Tokens * QHeads * HeadDim * 2), v = k + (nint)((long)Tokens * KvHeads * HeadDim * 2);
            if (rope)
            {
                DskNative.Rope(RopeParams(q, QHeads));
                DskNative.Rope(RopeParams(k, KvHeads));
            }
            if (append)
                DskNative.KvAppend(new DskKvAppendParams
                {
                    Keys = k,
                    Values = v,
                    SlotMapping = _slots!.View.Pointer + (nint)((long)r * Tokens * 4),
                    KeyPages = _keyPages!.View.Pointer,
                    ValuePages = _valuePages!.View.Pointer,
                    ErrorWord = runtime.Errors.Word.View.Pointer,
                    Tokens = Tokens,
                    Slots = _keyPages.Length / (KvHeads * HeadDim),
                    KeyWidth = KvHeads * HeadDim,
                    ValueWidth = KvHeads * HeadDim,
                    KeysRowStride = KvHeads * HeadDim,
                    ValuesRowStride = KvHeads * HeadDim,
                    KeyDType = (int)DskDType.BF16,
                    ValueDType = (int)DskDType.BF16,
                    KeyPageDType = (int)DskDType.BF16,
                    ValuePageDType = (int)DskDType.BF16,
                    ErrorSite = DeviceErrorSite.KvAppendSlots.Id,
                    Stream = runtime.CudaStreamHandle,
                });
        }
        runtime.Synchronize();
    }

    DskRopeParams RopeParams(IntPtr x, int heads) => new()
    {
        X = x,
        Positions = _positions!.View.Pointer,
        Cos = _table!.Cos.Pointer,
        Sin = _table.Sin.Pointer,
        ErrorWord = _runtime!.Errors.Word.View.Pointer,
        Tokens = Tokens,
        Heads = heads,
        HeadStride = HeadDim,
        XRowStride = (long)heads * HeadDim,
        RopeOffset = 0,
        RotaryDim = Rotary,
        MaxPositions = MaxPositions,
        XDType = (int)DskDType.BF16,
        Layout = (int)DskRopeLayout.HalfSplit,
        ErrorSite = DeviceErrorSite.RopePositions.Id,
        Stream = _runtime.CudaStreamHandle,
    };

    /// <summary>Rotation <paramref name="r"/>'s rows: q [tokens, 32, 128], then k and v [tokens, 8 x 128].</summary>
    IntPtr Set(int r) => _rows!.View.Pointer + (nint)(r * SetBytes);

    protected override int Rotations => _rotations;


}
