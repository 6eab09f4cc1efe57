using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// PagedAttention (GQA, any q/kv head ratio) and PagedMlaAttention (one latent kv head whose values are the first latentDim
/// elements of the key rows) as ILGPU kernels; semantics those of <see cref="Reference.PagedKvReference.Sequence"/>: query
/// row t of sequence b (rows QueryStarts[b] .. QueryStarts[b + 1] - 1, at positions L - n .. L - 1) and head h attend keys
/// 0 .. position of kv head h / g, read through the block table; q, pages and destination f32 or bf16 each, fp32
/// arithmetic, the output rounded once.
/// <para>
/// Two kernels share the split plan and the combine. The vector kernel (GQA whose head rows are whole 16-byte vectors, up
/// to 256 wide; see <see cref="VectorKernel"/>) has the hand CUDA-core kernel's shape (kernels/paged_attention_simt.cu): a
/// group per (query tile, kv head x head chunk, split) holds the chunk's q heads (up to 4 rows of heads x queries, q
/// pre-scaled in registers), so each key and value row is read once per kv head per split; a key row is spread over a lane
/// group (16 lanes of 8 bf16 or 32 lanes of 4 f32 for 128-wide rows on CUDA), two keys per lane group in flight, online
/// softmax in base 2; lane groups merge by shuffles and warps through shared memory at the end of the split. The generic
/// warp kernel below takes MLA (576-wide rows) and every other shape.
/// </para>
/// <para>
/// Generic kernel (FlashDecoding): one warp per (query row, query head, output-dimension tile, split of the context; on the CPU
/// accelerator, where every group is simulated, one warp takes all the splits of its row in turn, the same arithmetic). Its lanes
/// stride over the head dimension: per key, a lane multiplies its part of q . k, a butterfly sum gives the score in every
/// lane (<see cref="WarpReduce"/>, safe in a loop), and the online softmax (base 2) keeps the running maximum m, the running sum l and
/// the unnormalised output (lane-owned accumulators, <see cref="IPerLane"/> of them per lane, so an output tile is PerLane x
/// warp size dimensions; wider value heads take several tiles, each recomputing the scores). No [seq, seq] matrix, no
/// shared memory, no group barrier. The context is split into chunks of a fixed number of keys (<see cref="Plan"/>), so a
/// batch-1 decode of a long context fills the GPU and a row's result does not depend on its batch: each split writes its
/// partial output and (m, l) into a scratch buffer and a combine kernel merges them (log-sum-exp weights), writing the
/// destination once. Where the block table holds no more than one chunk, the attention kernel writes the destination
/// itself. Keys past a row's position are never read.
/// </para>
/// <para>
/// Scratch: the caller's <see cref="PagedBatch.Workspace"/> where given (the runner's, planned in the KV cache's arena):
/// the splits are fixed by the block table's width, so a workspace that holds fewer rows' partials than the call has
/// takes the rows in passes (an attention launch and a combine per pass, each over rows [RowBase, RowEnd)), every row's
/// arithmetic unchanged; without one, this object's buffers grow to the largest call (replaced ones kept for graphs).
/// </para>
/// <para>
/// Device metadata is checked where read. Warp 0 of group 0 scans it in the reference's order (query offsets in range,
/// then not decreasing; then per sequence its length, then its block-table entries) and records the first error in the
/// error word; every warp checks its own sequence (all offsets, its length, every page entry of the sequence) and skips it
/// when anything is wrong, so no read is ever out of bounds and a bad sequence's rows are not written.
/// </para>
/// </summary>
internal sealed class PagedAttentionIlgpu(DeviceRuntime runtime)
{
    /// <summary>Warps (query heads) per group on CUDA; one on the CPU accelerator, where every thread is simulated.</summary>
    const int CudaHeadsPerGroup = 4;

    /// <summary>
    /// Keys per split: the context of a row is split at fixed multiples of this, whatever the batch, so a row's result does
    /// not depend on the other rows of its step (batch invariance, bitwise). On CUDA a split of 256 keys pays for its partial
    /// and its share of the combine, and a batch-1 decode of 32k keys gets 128 splits per head group; on the CPU accelerator
    /// it is small so that the tests' contexts of a few hundred keys take the split path.
    /// </summary>
    const int CudaChunk = 256, CpuChunk = 32;

    /// <summary>Most groups along the grid's z dimension (splits); longer contexts take longer chunks.</summary>
    const int MaxGridZ = 65535;

    /// <summary>
    /// The vector kernel's group: 4 warps on CUDA (as the hand kernel's block), 2 on the CPU accelerator (its warps are 4
    /// lanes; two, so the merge of warps through shared memory runs in the tests).
    /// </summary>
    const int CudaWarps = 4, CpuWarps = 2;

    /// <summary>The vector kernel's rows (q heads x queries) per group, each holding q and its output in registers.</summary>
    const int RowsPerGroup = 4;

    /// <summary>The widest head row the vector kernel takes (its merge buffer holds warps x rows x this many floats).</summary>
    const int VectorMaxDim = 256;

    const float Log2E = 1.4426950408889634f;

    /// <summary>Shape of one launch; sizes and strides in elements.</summary>
    internal struct Shape
    {
        public int Tokens, Batch, MaxPages, Pages, PageSize, QHeads, HeadDim, VHeadDim, Group;
        public long KeyRowStride, ValueRowStride;
        public float Scale;
        public int Splits, SplitsPerGroup, Chunk, DimTile, DimTiles, HeadsPerGroup;
        public int TableSite, LengthSite, StartSite;
        // the query rows of this pass: [RowBase, RowEnd) of the Tokens rows; partials and stats hold this pass's rows only
        public int RowBase, RowEnd;
        // the vector kernel: lanes per key row, warps per group, heads per group (a head chunk of the kv head's group), head
        // chunks per kv head, queries per tile; head rows in 16-byte vectors (keys, values), page rows and head offsets in vectors
        public int Lpk, Warps, RowHeads, HeadChunks, TileQueries, KeyVectors, ValueVectors;
        public long KeyRowVectors, ValueRowVectors;
    }

    /// <summary>The vector kernel's lanes per key row and 16-byte chunks per lane.</summary>
    internal readonly record struct VectorPlan(int Lpk, int Chunks);

    /// <summary>The split plan of one call: splits per row and keys per split.</summary>
    internal readonly record struct SplitPlan(int Splits, int Chunk);

    readonly ConcurrentDictionary<(Type Q, Type P, Type Y, bool Wide), Delegate> _kernels = new();
    readonly ConcurrentDictionary<(Type Q, Type P, Type Y, int Chunks), Delegate> _vectorKernels = new();
    readonly ConcurrentDictionary<Type, Delegate> _combines = new();
    readonly Lock _scratchLock = new();
    // grow-only scratch for split partials; replaced buffers are kept (a captured graph may still use them)
    readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _retired = [];
    MemoryBuffer1D<float, Stride1D.Dense>? _partials, _stats;
    readonly Lazy<MemoryBuffer1D<float, Stride1D.Dense>> _none = new(() => runtime.Accelerator.Allocate1D<float>(1));

    /// <summary>Bytes of this object's own split scratch (grown by calls without a caller's workspace; for tests).</summary>
    internal long OwnScratchBytes
    {
        get { lock (_scratchLock) return ((_partials?.Length ?? 0) + (_stats?.Length ?? 0) + _retired.Sum(b => b.Length)) * sizeof(float); }
    }

    public void Gqa(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        Run(q, keyPages, valuePages, batch, destination, shape, (long)shape.KvHeads * shape.HeadDim, (long)shape.KvHeads * shape.VHeadDim,
            DeviceErrorSite.AttentionBlockTable, DeviceErrorSite.AttentionLengths, DeviceErrorSite.AttentionQueryStarts, mla: false);

    public void Mla(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape) =>
        Run(q, latentPages, latentPages, batch, destination, shape, shape.HeadDim, shape.HeadDim,
            DeviceErrorSite.MlaBlockTable, DeviceErrorSite.MlaLengths, DeviceErrorSite.MlaQueryStarts, mla: true);

    /// <summary>
    /// The split plan for a block table of <paramref name="capacity"/> keys per sequence: chunks of <see cref="CudaChunk"/>
    /// (<see cref="CpuChunk"/>) keys, longer only where the grid would have more than <see cref="MaxGridZ"/> splits. Lengths
    /// are device data, so the plan covers the capacity; a split past a row's keys does nothing. One split (the attention
    /// kernel writes the destination itself) only where no row can have more keys than a chunk: a row that fits in one chunk
    /// gets bitwise the same output either way, so the plan never changes a row's result.
    /// </summary>
    internal static SplitPlan Plan(bool cuda, long capacity)
    {
        long chunk = Math.Max(cuda ? CudaChunk : CpuChunk, (capacity + MaxGridZ - 1) / MaxGridZ);
        int splits = (int)Math.Max(1, (capacity + chunk - 1) / chunk);
        return new SplitPlan(splits, (int)Math.Min(chunk, int.MaxValue));
    }

    /// <summary>
    /// The vector kernel's shape for head rows of <paramref name="headDim"/> keys and <paramref name="vHeadDim"/> values of
    /// <paramref name="elementSize"/>-byte elements on warps of <paramref name="warp"/> lanes, or null where it does not apply
    /// (rows not whole 16-byte vectors, wider than <see cref="VectorMaxDim"/>, or needing more than 8 chunks a lane): the lane
    /// group of a key row is the fewest lanes (a power of two, at most a warp) that hold it at 8 chunks a lane or fewer, so on
    /// CUDA 128-wide bf16 rows take 16 lanes of one chunk (8 elements) each, f32 rows 32 lanes of 4 elements.
    /// </summary>
    internal static VectorPlan? PlanVectors(int headDim, int vHeadDim, int elementSize, int warp)
    {
        int lanes = 16 / elementSize;
        if (headDim % lanes != 0 || vHeadDim % lanes != 0 || Math.Max(headDim, vHeadDim) > VectorMaxDim)
            return null;
        int vectors = Math.Max(headDim, vHeadDim) / lanes;
        int lpk = 1;
        while (lpk < vectors && lpk < warp)
            lpk *= 2;
        int chunks = 1;
        while (chunks * lpk < vectors)
            chunks *= 2;
        return chunks <= 8 ? new VectorPlan(lpk, chunks) : null;
    }

    void Run(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape p,
        long keyRowStride, long valueRowStride, DeviceErrorSite tableSite, DeviceErrorSite lengthSite, DeviceErrorSite startSite, bool mla)
    {
        var accelerator = runtime.Accelerator;
        int warp = accelerator.WarpSize;
        bool wide = (p.VHeadDim + warp - 1) / warp > default(FourPerLane).Count;
        int perLane = wide ? default(SixteenPerLane).Count : default(FourPerLane).Count;
        int headsPerGroup = runtime.IsCuda ? Math.Min(CudaHeadsPerGroup, Math.Max(1, accelerator.MaxNumThreadsPerGroup / warp)) : 1;
        headsPerGroup = Math.Min(headsPerGroup, p.QHeads);
        var s = new Shape
        {
            Tokens = p.Tokens, Batch = p.Batch, MaxPages = p.MaxPages, Pages = p.Pages, PageSize = p.PageSize, QHeads = p.QHeads,
            HeadDim = p.HeadDim, VHeadDim = p.VHeadDim, Group = p.QHeads / p.KvHeads, KeyRowStride = keyRowStride,
            ValueRowStride = valueRowStride, Scale = p.Scale * Log2E, DimTile = perLane * warp, HeadsPerGroup = headsPerGroup,
            TableSite = tableSite.Id, LengthSite = lengthSite.Id, StartSite = startSite.Id, RowBase = 0, RowEnd = p.Tokens,
        };
        s.DimTiles = (p.VHeadDim + s.DimTile - 1) / s.DimTile;
        int headTiles = (p.QHeads + headsPerGroup - 1) / headsPerGroup;
        var plan = Plan(runtime.IsCuda, (long)p.MaxPages * p.PageSize);
        (s.Splits, s.Chunk) = (plan.Splits, plan.Chunk);
        long perRow = (long)s.QHeads * s.Splits * (s.VHeadDim + 2L); // floats of one query row's split partials and (m, l)
        if (s.Splits > 1 && !batch.Workspace.IsNull && batch.Workspace.Length < perRow)
            throw new ArgumentException($"{(mla ? "PagedMlaAttention" : "PagedAttention")}: batch.Workspace holds {batch.Workspace.Length * 4L:N0} bytes; " +
                $"one query row's split partials take {perRow * 4:N0} ({s.QHeads} heads x {s.Splits} splits of {s.Chunk} keys x ({s.VHeadDim} + 2) floats): " +
                "size it with PagedBatch.WorkspaceBytes.", "batch");
        s.SplitsPerGroup = runtime.IsCuda ? 1 : s.Splits;
        if (!mla && Vectorised(q, keyPages, valuePages, p, ref s, warp) is { } vectors)
        {
            switch ((q.ElementType, keyPages.ElementType, destination.ElementType))
            {
                case (ElementType.F32, ElementType.F32, ElementType.F32): LaunchVector<float, float, float>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                case (ElementType.F32, ElementType.F32, _): LaunchVector<float, float, BFloat16>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                case (ElementType.F32, _, ElementType.F32): LaunchVector<float, BFloat16, float>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                case (ElementType.F32, _, _): LaunchVector<float, BFloat16, BFloat16>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                case (_, ElementType.F32, ElementType.F32): LaunchVector<BFloat16, float, float>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                case (_, ElementType.F32, _): LaunchVector<BFloat16, float, BFloat16>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                case (_, _, ElementType.F32): LaunchVector<BFloat16, BFloat16, float>(q, keyPages, valuePages, batch, destination, s, vectors); break;
                default: LaunchVector<BFloat16, BFloat16, BFloat16>(q, keyPages, valuePages, batch, destination, s, vectors); break;
            }
            return;
        }
        switch ((q.ElementType, keyPages.ElementType, destination.ElementType))
        {
            case (ElementType.F32, ElementType.F32, ElementType.F32): Launch<float, float, float>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            case (ElementType.F32, ElementType.F32, _): Launch<float, float, BFloat16>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            case (ElementType.F32, _, ElementType.F32): Launch<float, BFloat16, float>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            case (ElementType.F32, _, _): Launch<float, BFloat16, BFloat16>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            case (_, ElementType.F32, ElementType.F32): Launch<BFloat16, float, float>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            case (_, ElementType.F32, _): Launch<BFloat16, float, BFloat16>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            case (_, _, ElementType.F32): Launch<BFloat16, BFloat16, float>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
            default: Launch<BFloat16, BFloat16, BFloat16>(q, keyPages, valuePages, batch, destination, s, wide, headTiles); break;
        }
    }

    /// <summary>
    /// Whether a GQA call takes the vector kernel, filling in its part of the shape: a <see cref="PlanVectors"/> plan, page
    /// rows and head offsets whole 16-byte vectors from a 16-byte-aligned start, and a grid that fits. Rows per group: the kv
    /// head's q heads, <see cref="RowsPerGroup"/> at most (wider groups take several head chunks, each reading the kv head
    /// again); prefill tiles fill the rest with queries of the tile (decode steps, at most two queries a sequence, one query
    /// a tile).
    /// </summary>
    VectorPlan? Vectorised(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedAttentionShape p, ref Shape s, int warp)
    {
        int size = keyPages.ElementSize;
        if (PlanVectors(p.HeadDim, p.VHeadDim, size, warp) is not { } v)
            return null;
        int lanes = 16 / size;
        bool aligned = (s.KeyRowStride * size) % 16 == 0 && (s.ValueRowStride * size) % 16 == 0
            && keyPages.Pointer % 16 == 0 && valuePages.Pointer % 16 == 0
            && keyPages.Offset * size % 16 == 0 && valuePages.Offset * size % 16 == 0;
        if (!aligned)
            return null;
        s.Lpk = v.Lpk;
        s.Warps = Math.Max(1, Math.Min(runtime.IsCuda ? CudaWarps : CpuWarps, runtime.Accelerator.MaxNumThreadsPerGroup / warp)); // a simulated group may hold one warp
        s.RowHeads = Math.Min(s.Group, RowsPerGroup);
        s.HeadChunks = (s.Group + s.RowHeads - 1) / s.RowHeads;
        bool decode = p.Tokens <= 2L * p.Batch;
        s.TileQueries = decode ? 1 : RowsPerGroup / s.RowHeads;
        s.KeyVectors = p.HeadDim / lanes;
        s.ValueVectors = p.VHeadDim / lanes;
        s.KeyRowVectors = s.KeyRowStride / lanes;
        s.ValueRowVectors = s.ValueRowStride / lanes;
        if ((long)p.KvHeads * s.HeadChunks > MaxGridZ)
            return null;
        return v;
    }

    void Launch<TQ, TP, TY>(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        Shape s, bool wide, int headTiles)
        where TQ : unmanaged where TP : unmanaged where TY : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TQ>, ArrayView<TP>, ArrayView<TP>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<TY>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)_kernels.GetOrAdd((typeof(TQ), typeof(TP), typeof(TY), wide),
                key => Load<TQ, TP, TY>(key.Wide));
        var (partials, stats, rowsPerPass) = SplitScratch(batch.Workspace, s, 1);
        var y = LinearIlgpu.ViewOf<TY>(destination);
        int warp = accelerator.WarpSize;
        var combine = s.Splits == 1 ? null : (Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<TY>, Shape>)
            _combines.GetOrAdd(typeof(TY), _ => LoadCombine<TY>());
        int cap = Math.Max(warp, Math.Min(128, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((s.VHeadDim + warp - 1) / warp * warp, warp, cap);
        for (int rowBase = 0; rowBase < s.Tokens; rowBase += rowsPerPass)
        {
            s.RowBase = rowBase;
            s.RowEnd = (int)Math.Min((long)rowBase + rowsPerPass, s.Tokens);
            int rows = s.RowEnd - s.RowBase;
            kernel(runtime.Stream, new KernelConfig(new Index3D(rows, headTiles * s.DimTiles, (s.Splits + s.SplitsPerGroup - 1) / s.SplitsPerGroup), new Index3D(s.HeadsPerGroup * warp, 1, 1)),
                LinearIlgpu.ViewOf<TQ>(q), LinearIlgpu.ViewOf<TP>(keyPages), LinearIlgpu.ViewOf<TP>(valuePages), batch.BlockTable.IlgpuView,
                batch.SequenceLengths.IlgpuView, batch.QueryStarts.IlgpuView, y, partials, stats, runtime.Errors.Word.View.IlgpuView, s);
            combine?.Invoke(runtime.Stream, new KernelConfig((int)((long)rows * s.QHeads), threads), partials, stats, y, s);
        }
    }

    /// <summary>
    /// The split partials' scratch of a call and the query rows one pass takes: with splits, the caller's
    /// <paramref name="workspace"/> (rows in as many passes as it needs, a multiple of the shape's query tile where it
    /// holds one) or this object's grow-only buffers (one pass); without splits, nothing (one pass)
    /// (<see cref="Run"/> has checked that the workspace holds one row.)
    /// </summary>
    (ArrayView<float> Partials, ArrayView<float> Stats, int RowsPerPass) SplitScratch(DeviceView<int> workspace, Shape s, int tileQueries)
    {
        if (s.Splits == 1)
            return (_none.Value.View, _none.Value.View, s.Tokens);
        long perRow = (long)s.QHeads * s.Splits * (s.VHeadDim + 2L); // floats of one query row: partial rows and (m, l) per split
        if (workspace.IsNull)
        {
            long pairs = (long)s.Tokens * s.QHeads;
            var (p, st) = Scratch(pairs * s.Splits * s.VHeadDim, pairs * s.Splits * 2);
            return (p, st, s.Tokens);
        }
        long fit = Math.Max(1, workspace.Length / perRow);
        int rowsPerPass = (int)Math.Min(fit, s.Tokens);
        if (rowsPerPass < s.Tokens && rowsPerPass >= tileQueries)
            rowsPerPass -= rowsPerPass % tileQueries;
        long partialFloats = (long)rowsPerPass * s.QHeads * s.Splits * s.VHeadDim;
        ArrayView<float> floats = workspace.IlgpuView.AsContiguous().Cast<float>();
        return (floats.SubView(0, partialFloats), floats.SubView(partialFloats, (long)rowsPerPass * s.QHeads * s.Splits * 2), rowsPerPass);
    }

    void LaunchVector<TQ, TP, TY>(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        Shape s, VectorPlan v)
        where TQ : unmanaged where TP : unmanaged where TY : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TQ>, ArrayView<Vec16>, ArrayView<Vec16>, ArrayView<int>, ArrayView<int>,
            ArrayView<int>, ArrayView<TY>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)_vectorKernels.GetOrAdd(
                (typeof(TQ), typeof(TP), typeof(TY), v.Chunks), key => LoadVector<TQ, TP, TY>(key.Chunks));
        var (partials, stats, rowsPerPass) = SplitScratch(batch.Workspace, s, s.TileQueries);
        if (rowsPerPass < s.TileQueries)
            s.TileQueries = 1; // a pass of fewer rows than a tile: one query a tile (a row's arithmetic does not depend on its tile)
        var y = LinearIlgpu.ViewOf<TY>(destination);
        int warp = accelerator.WarpSize;
        var combine = s.Splits == 1 ? null : (Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<TY>, Shape>)
            _combines.GetOrAdd(typeof(TY), _ => LoadCombine<TY>());
        int cap = Math.Max(warp, Math.Min(128, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((s.VHeadDim + warp - 1) / warp * warp, warp, cap);
        for (int rowBase = 0; rowBase < s.Tokens; rowBase += rowsPerPass)
        {
            s.RowBase = rowBase;
            s.RowEnd = (int)Math.Min((long)rowBase + rowsPerPass, s.Tokens);
            int rows = s.RowEnd - s.RowBase;
            int tiles = (int)((rows + s.TileQueries - 1L) / s.TileQueries);
            kernel(runtime.Stream, new KernelConfig(new Index3D(tiles, (s.QHeads / s.Group) * s.HeadChunks, (s.Splits + s.SplitsPerGroup - 1) / s.SplitsPerGroup),
                    new Index3D(s.Warps * warp, 1, 1)),
                LinearIlgpu.ViewOf<TQ>(q), LinearIlgpu.ViewOf<TP>(keyPages).Cast<Vec16>(), LinearIlgpu.ViewOf<TP>(valuePages).Cast<Vec16>(),
                batch.BlockTable.IlgpuView, batch.SequenceLengths.IlgpuView, batch.QueryStarts.IlgpuView, y, partials, stats,
                runtime.Errors.Word.View.IlgpuView, s);
            combine?.Invoke(runtime.Stream, new KernelConfig((int)((long)rows * s.QHeads), threads), partials, stats, y, s);
        }
    }

    static Type ChunksType(int chunks) => chunks switch
    {
        1 => typeof(OneChunk),
        2 => typeof(TwoChunks),
        4 => typeof(FourChunks),
        _ => typeof(EightChunks),
    };

    Delegate LoadVector<TQ, TP, TY>(int chunks) where TQ : unmanaged where TP : unmanaged where TY : unmanaged
    {
        var method = typeof(PagedAttentionIlgpu).GetMethod(nameof(VectorKernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TQ), ElementCodecs.CodecFor(typeof(TQ)), VectorCodecs.ActivationFor(typeof(TP))!, typeof(TY),
                ElementCodecs.CodecFor(typeof(TY)), ChunksType(chunks));
        var type = typeof(Action<ArrayView<TQ>, ArrayView<Vec16>, ArrayView<Vec16>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<TY>,
            ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>);
        return runtime.Accelerator.LoadKernel((Action<ArrayView<TQ>, ArrayView<Vec16>, ArrayView<Vec16>, ArrayView<int>, ArrayView<int>,
            ArrayView<int>, ArrayView<TY>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)method.CreateDelegate(type));
    }

    /// <summary>Row r of a group's rows (query r / heads, head r % heads) with its q pre-scaled in the lane's chunks; Position -1 past the rows.</summary>
    static AttentionRow VectorRow<TQ, TQC>(ArrayView<TQ> q, Shape s, int r, int rows, long r0, int heads, int firstHead, int first,
        int length, int count, int gl, int n, int lanes)
        where TQ : unmanaged where TQC : struct, IElementCodec<TQ>
    {
        TQC qc = default;
        AttentionRow row = default;
        row.Position = -1;
        if (r >= rows)
            return row;
        long token = r0 + r / heads;
        int h = firstHead + r % heads;
        row.Position = (int)(length - count + (token - first));
        long qRow = (token * s.QHeads + h) * s.HeadDim;
        for (int c = 0; c < n; c++)
        {
            Lanes8 chunk = default;
            int d0 = (c * s.Lpk + gl) * lanes;
            for (int e = 0; e < lanes; e++)
                if (d0 + e < s.HeadDim)
                    chunk = PagedAttentionLanes.WithLane(chunk, e, qc.Load(q[qRow + d0 + e]) * s.Scale);
            row.Q = PagedAttentionLanes.WithChunk(row.Q, c, chunk);
        }
        return row;
    }

    /// <summary>
    /// The end of a split for one row, from lane group 0 of a one-warp group: the destination (one split) or the partial and
    /// its (m, l); a row with no keys in the split keeps l = -1 (set at the start).
    /// </summary>
    static void VectorStore<TY, TYC>(AttentionRow row, ArrayView<TY> y, ArrayView<float> partials, ArrayView<float> stats, Shape s, long pair,
        int split, int keyBegin, int gl, int n, int lanes)
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
    {
        TYC yc = default;
        if (keyBegin > row.Position)
            return;
        long at = (pair - (long)s.RowBase * s.QHeads) * s.Splits + split;
        if (s.Splits > 1 && gl == 0)
        {
            stats[2 * at] = row.M;
            stats[2 * at + 1] = row.L;
        }
        for (int c = 0; c < n; c++)
        {
            Lanes8 chunk = PagedAttentionLanes.Chunk(row.O, c);
            int d0 = (c * s.Lpk + gl) * lanes;
            for (int e = 0; e < lanes; e++)
            {
                int d = d0 + e;
                if (d >= s.VHeadDim)
                    continue;
                float o = PagedAttentionLanes.Lane(chunk, e);
                if (s.Splits == 1)
                    y[pair * s.VHeadDim + d] = yc.Store(o / row.L);
                else
                    partials[at * s.VHeadDim + d] = o;
            }
        }
    }

    /// <summary>A row's (m, l, o) into the merge buffer at slot <paramref name="slot"/> (warp x rows + row), from lane group 0.</summary>
    static void VectorStage(AttentionRow row, ArrayView<float> merge, ArrayView<float> mergeStats, Shape s, int slot, int gl, int n, int lanes)
    {
        if (gl == 0)
        {
            mergeStats[2 * slot] = row.M;
            mergeStats[2 * slot + 1] = row.L;
        }
        for (int c = 0; c < n; c++)
        {
            Lanes8 chunk = PagedAttentionLanes.Chunk(row.O, c);
            int d0 = (c * s.Lpk + gl) * lanes;
            for (int e = 0; e < lanes; e++)
                if (d0 + e < s.VHeadDim)
                    merge[slot * s.VHeadDim + d0 + e] = PagedAttentionLanes.Lane(chunk, e);
        }
    }

    // The vector kernel (GQA). q [tokens, qHeads, headDim] (any codec); keys and values as 16-byte vectors: key row of slot,
    // kv head g at slot * KeyRowVectors + g * KeyVectors (values alike); y, partials and stats as in Kernel.
    // Grid (query tile, kv head x head chunk, split group); a group of Warps warps. Its rows are the head chunk's q heads times
    // the tile's queries of one sequence (<= RowsPerGroup; a tile spanning sequences takes them in turn); it streams the
    // split's key and value rows of its kv head once: lane group gi (Lpk lanes, chunk c of lane gl = row vector c x Lpk + gl)
    // takes keys k_begin + gi, + G + gi (G lane groups), then the next 2G, so two keys per lane group are in flight, their key
    // and value loads issued before any arithmetic; scores reduce over the lane group by shuffles, masked past each row's
    // position; online softmax in base 2 (q pre-scaled by scale x log2 e). At the end of the split the lane groups of a warp
    // merge by shuffles, the warps through shared memory.
    static void VectorKernel<TQ, TQC, TPV, TY, TYC, TC>(ArrayView<TQ> q, ArrayView<Vec16> keys, ArrayView<Vec16> values, ArrayView<int> table,
        ArrayView<int> lengths, ArrayView<int> starts, ArrayView<TY> y, ArrayView<float> partials, ArrayView<float> stats, ArrayView<int> errorWord,
        Shape s)
        where TQ : unmanaged where TQC : struct, IElementCodec<TQ>
        where TPV : struct, IActivationVector
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
        where TC : struct, IChunksPerLane
    {
        TYC yc = default;
        int n = default(TC).Count, lanes = default(TPV).Lanes;
        keys = keys.AsAligned(16);
        values = values.AsAligned(16);
        var merge = SharedMemory.Allocate<float>(CudaWarps * RowsPerGroup * VectorMaxDim); // [warp, row, vHeadDim]
        var mergeStats = SharedMemory.Allocate<float>(CudaWarps * RowsPerGroup * 2);       // [warp, row, (m, l)]
        if (Grid.IdxX == 0 && Grid.IdxY == 0 && Grid.IdxZ == 0 && Warp.WarpIdx == 0 && s.RowBase == 0)
            ReportFirstError(table, lengths, starts, errorWord, s);
        int lane = Warp.LaneIdx, warpIdx = Warp.WarpIdx, warpSize = Warp.WarpSize;
        int lpk = s.Lpk, lg = lane / lpk, gl = lane - lg * lpk;
        int laneGroups = s.Warps * (warpSize / lpk), gi = warpIdx * (warpSize / lpk) + lg;
        int tid = Group.IdxX, threads = Group.DimX;
        int kvh = Grid.IdxY / s.HeadChunks, chunk = Grid.IdxY - kvh * s.HeadChunks;
        int firstHead = kvh * s.Group + chunk * s.RowHeads;
        int heads = XMath.Min(s.RowHeads, s.Group - chunk * s.RowHeads);
        long tile0 = s.RowBase + (long)Grid.IdxX * s.TileQueries, tile1 = XMath.Min(tile0 + s.TileQueries, (long)s.RowEnd);
        int firstSplit = Grid.IdxZ * s.SplitsPerGroup, lastSplit = XMath.Min(s.Splits, firstSplit + s.SplitsPerGroup);

        // split path: every (row, head) of the tile starts as "no keys in this split"; the rows of valid sequences overwrite it
        if (s.Splits > 1)
        {
            int cells = (int)(tile1 - tile0) * heads;
            for (int split = firstSplit; split < lastSplit; split++)
                for (int i = tid; i < cells; i += threads)
                {
                    long at = ((tile0 - s.RowBase + i / heads) * s.QHeads + firstHead + i % heads) * s.Splits + split;
                    stats[2 * at] = float.NegativeInfinity;
                    stats[2 * at + 1] = -1f;
                }
        }
        // the query offsets as the reference checks them (in range, not decreasing); anything wrong: no row is computed
        bool badOffsets = false;
        for (int i = tid; i <= s.Batch; i += threads)
        {
            int v = starts[i];
            badOffsets |= v < 0 || v > s.Tokens || (i > 0 && v < starts[i - 1]);
        }
        if (Group.BarrierOr(badOffsets))
            return;

        // the first sequence with rows in the tile: the last b with starts[b] <= tile0 (0 where the tile precedes them all)
        int lo = 0, hi = s.Batch;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (starts[mid] <= tile0)
                lo = mid;
            else
                hi = mid;
        }
        for (int b = lo; b < s.Batch; b++)
        {
            int first = starts[b], next = starts[b + 1];
            if (first >= tile1)
                break;
            long r0 = XMath.Max(tile0, (long)first), r1 = XMath.Min(tile1, (long)next);
            if (r0 >= r1)
                continue;
            int count = next - first, length = lengths[b];
            if (length < count || length > (long)s.MaxPages * s.PageSize)
                continue;
            long tableRow = (long)b * s.MaxPages;
            int need = (int)(((long)length + s.PageSize - 1) / s.PageSize);
            bool badPage = false;
            for (int e = tid; e < need; e += threads)
            {
                int page = table[tableRow + e];
                badPage |= page < 0 || page >= s.Pages;
            }
            if (Group.BarrierOr(badPage))
                continue;

            int rows = (int)(r1 - r0) * heads;
            var row0 = VectorRow<TQ, TQC>(q, s, 0, rows, r0, heads, firstHead, first, length, count, gl, n, lanes);
            var row1 = VectorRow<TQ, TQC>(q, s, 1, rows, r0, heads, firstHead, first, length, count, gl, n, lanes);
            var row2 = VectorRow<TQ, TQC>(q, s, 2, rows, r0, heads, firstHead, first, length, count, gl, n, lanes);
            var row3 = VectorRow<TQ, TQC>(q, s, 3, rows, r0, heads, firstHead, first, length, count, gl, n, lanes);
            int lastKey = (int)(length - count + (r1 - 1 - first)); // the last key any row sees
            long kvKeyHead = (long)kvh * s.KeyVectors, kvValueHead = (long)kvh * s.ValueVectors;

            for (int split = firstSplit; split < lastSplit; split++)
            {
                long splitBegin = (long)split * s.Chunk;
                if (splitBegin > lastKey)
                    break;
                int keyBegin = (int)splitBegin;
                int keyEnd = (int)XMath.Min(splitBegin + s.Chunk, lastKey + 1L);
                row0 = PagedAttentionLanes.Reset(row0);
                row1 = PagedAttentionLanes.Reset(row1);
                row2 = PagedAttentionLanes.Reset(row2);
                row3 = PagedAttentionLanes.Reset(row3);
                for (int step = keyBegin; step < keyEnd; step += 2 * laneGroups)
                {
                    int keyA = step + gi, keyB = step + laneGroups + gi;
                    bool validA = keyA < keyEnd, validB = keyB < keyEnd;
                    Raw8 rawKa = default, rawVa = default, rawKb = default, rawVb = default;
                    if (validA)
                    {
                        long slot = Slot(table, tableRow, keyA, s.PageSize);
                        rawKa = PagedAttentionLanes.Load(keys, slot * s.KeyRowVectors + kvKeyHead, gl, lpk, n, s.KeyVectors);
                        rawVa = PagedAttentionLanes.Load(values, slot * s.ValueRowVectors + kvValueHead, gl, lpk, n, s.ValueVectors);
                    }
                    if (validB)
                    {
                        long slot = Slot(table, tableRow, keyB, s.PageSize);
                        rawKb = PagedAttentionLanes.Load(keys, slot * s.KeyRowVectors + kvKeyHead, gl, lpk, n, s.KeyVectors);
                        rawVb = PagedAttentionLanes.Load(values, slot * s.ValueRowVectors + kvValueHead, gl, lpk, n, s.ValueVectors);
                    }
                    var ka = PagedAttentionLanes.Unpack<TPV>(rawKa, n);
                    var kb = PagedAttentionLanes.Unpack<TPV>(rawKb, n);
                    var va = PagedAttentionLanes.Unpack<TPV>(rawVa, n);
                    var vb = PagedAttentionLanes.Unpack<TPV>(rawVb, n);
                    row0 = PagedAttentionLanes.Step(row0, ka, kb, va, vb, keyA, keyB, validA, validB, lpk, n, lanes);
                    if (rows > 1)
                        row1 = PagedAttentionLanes.Step(row1, ka, kb, va, vb, keyA, keyB, validA, validB, lpk, n, lanes);
                    if (rows > 2)
                        row2 = PagedAttentionLanes.Step(row2, ka, kb, va, vb, keyA, keyB, validA, validB, lpk, n, lanes);
                    if (rows > 3)
                        row3 = PagedAttentionLanes.Step(row3, ka, kb, va, vb, keyA, keyB, validA, validB, lpk, n, lanes);
                }

                // the warp's lane groups merge by shuffles (lane gl of every group ends with the warp's result)
                for (int off = lpk; off < warpSize; off <<= 1)
                {
                    row0 = PagedAttentionLanes.MergeLanes(row0, off, n, lanes);
                    if (rows > 1)
                        row1 = PagedAttentionLanes.MergeLanes(row1, off, n, lanes);
                    if (rows > 2)
                        row2 = PagedAttentionLanes.MergeLanes(row2, off, n, lanes);
                    if (rows > 3)
                        row3 = PagedAttentionLanes.MergeLanes(row3, off, n, lanes);
                }
                if (s.Warps == 1)
                {
                    if (lg == 0)
                    {
                        VectorStore<TY, TYC>(row0, y, partials, stats, s, (r0 + 0 / heads) * s.QHeads + firstHead + 0 % heads, split, keyBegin, gl, n, lanes);
                        if (rows > 1)
                            VectorStore<TY, TYC>(row1, y, partials, stats, s, (r0 + 1 / heads) * s.QHeads + firstHead + 1 % heads, split, keyBegin, gl, n, lanes);
                        if (rows > 2)
                            VectorStore<TY, TYC>(row2, y, partials, stats, s, (r0 + 2 / heads) * s.QHeads + firstHead + 2 % heads, split, keyBegin, gl, n, lanes);
                        if (rows > 3)
                            VectorStore<TY, TYC>(row3, y, partials, stats, s, (r0 + 3 / heads) * s.QHeads + firstHead + 3 % heads, split, keyBegin, gl, n, lanes);
                    }
                    continue;
                }
                // the warps through shared memory
                Group.Barrier(); // the previous split's (or sequence's) readers are done with the buffer
                if (lg == 0)
                {
                    VectorStage(row0, merge, mergeStats, s, warpIdx * RowsPerGroup + 0, gl, n, lanes);
                    if (rows > 1)
                        VectorStage(row1, merge, mergeStats, s, warpIdx * RowsPerGroup + 1, gl, n, lanes);
                    if (rows > 2)
                        VectorStage(row2, merge, mergeStats, s, warpIdx * RowsPerGroup + 2, gl, n, lanes);
                    if (rows > 3)
                        VectorStage(row3, merge, mergeStats, s, warpIdx * RowsPerGroup + 3, gl, n, lanes);
                }
                Group.Barrier();
                for (int idx = tid; idx < rows * s.VHeadDim; idx += threads)
                {
                    int r = idx / s.VHeadDim, d = idx - r * s.VHeadDim;
                    int position = length - count + (int)(r0 + r / heads - first);
                    if (keyBegin > position)
                        continue; // no keys for this row in the split: l stays -1
                    float mx = float.NegativeInfinity;
                    for (int w = 0; w < s.Warps; w++)
                        mx = XMath.Max(mx, mergeStats[2 * (w * RowsPerGroup + r)]);
                    float reference = mx == float.NegativeInfinity ? 0f : mx;
                    float l = 0f, o = 0f;
                    for (int w = 0; w < s.Warps; w++)
                    {
                        int slot = w * RowsPerGroup + r;
                        float c = PagedAttentionLanes.Weight(mergeStats[2 * slot], reference);
                        l += mergeStats[2 * slot + 1] * c;
                        o += merge[slot * s.VHeadDim + d] * c;
                    }
                    long pair = (r0 + r / heads) * s.QHeads + firstHead + r % heads;
                    if (s.Splits == 1)
                    {
                        y[pair * s.VHeadDim + d] = yc.Store(o / l);
                        continue;
                    }
                    long at = (pair - (long)s.RowBase * s.QHeads) * s.Splits + split;
                    partials[at * s.VHeadDim + d] = o;
                    if (d == 0)
                    {
                        stats[2 * at] = mx;
                        stats[2 * at + 1] = l;
                    }
                }
            }
        }
    }

    /// <summary>The pool slot of key <paramref name="key"/> of the sequence whose block-table row starts at <paramref name="tableRow"/>.</summary>
    static long Slot(ArrayView<int> table, long tableRow, int key, int pageSize)
    {
        int pageIndex = key / pageSize;
        return (long)table[tableRow + pageIndex] * pageSize + (key - pageIndex * pageSize);
    }

    /// <summary>Views of at least the given lengths into the grow-only scratch buffers.</summary>
    (ArrayView<float> Partials, ArrayView<float> Stats) Scratch(long partials, long stats)
    {
        lock (_scratchLock)
        {
            MemoryBuffer1D<float, Stride1D.Dense> Grow(MemoryBuffer1D<float, Stride1D.Dense>? buffer, long length)
            {
                if (buffer != null && buffer.Length >= length)
                    return buffer;
                if (buffer != null)
                    _retired.Add(buffer);
                return runtime.Accelerator.Allocate1D<float>(Math.Max(length, 2 * (buffer?.Length ?? 0)));
            }
            _partials = Grow(_partials, partials);
            _stats = Grow(_stats, stats);
            return (_partials.View.SubView(0, partials), _stats.View.SubView(0, stats));
        }
    }

    Delegate Load<TQ, TP, TY>(bool wide) where TQ : unmanaged where TP : unmanaged where TY : unmanaged
    {
        var method = typeof(PagedAttentionIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TQ), ElementCodecs.CodecFor(typeof(TQ)), typeof(TP), ElementCodecs.CodecFor(typeof(TP)), typeof(TY),
                ElementCodecs.CodecFor(typeof(TY)), wide ? typeof(SixteenPerLane) : typeof(FourPerLane));
        var type = typeof(Action<ArrayView<TQ>, ArrayView<TP>, ArrayView<TP>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<TY>,
            ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>);
        return runtime.Accelerator.LoadKernel((Action<ArrayView<TQ>, ArrayView<TP>, ArrayView<TP>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<TY>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)method.CreateDelegate(type));
    }

    Delegate LoadCombine<TY>() where TY : unmanaged
    {
        var method = typeof(PagedAttentionIlgpu).GetMethod(nameof(CombineKernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TY), ElementCodecs.CodecFor(typeof(TY)));
        var type = typeof(Action<ArrayView<float>, ArrayView<float>, ArrayView<TY>, Shape>);
        return runtime.Accelerator.LoadKernel((Action<ArrayView<float>, ArrayView<float>, ArrayView<TY>, Shape>)method.CreateDelegate(type));
    }

    // q [tokens, qHeads, headDim]; keys [slots, KeyRowStride], kv head kvh at kvh * headDim; values [slots, ValueRowStride], kv
    // head kvh at kvh * vHeadDim; y [tokens, qHeads, vHeadDim]; with splits, partials [tokens * qHeads, splits, vHeadDim]
    // (unnormalised) and stats [tokens * qHeads, splits, (m, l)], l = -1 where a split has no keys (or its row is skipped).
    // Grid (token, head tile * dim tiles + dim tile, split); warp w of a group is query head headTile * HeadsPerGroup + w.
    static void Kernel<TQ, TQC, TP, TPC, TY, TYC, TL>(ArrayView<TQ> q, ArrayView<TP> keys, ArrayView<TP> values, ArrayView<int> table,
        ArrayView<int> lengths, ArrayView<int> starts, ArrayView<TY> y, ArrayView<float> partials, ArrayView<float> stats, ArrayView<int> errorWord,
        Shape s)
        where TQ : unmanaged where TQC : struct, IElementCodec<TQ>
        where TP : unmanaged where TPC : struct, IElementCodec<TP>
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
        where TL : struct, IPerLane
    {
        TQC qc = default;
        TPC pc = default;
        TYC yc = default;
        int perLane = default(TL).Count;
        if (Grid.IdxX == 0 && Grid.IdxY == 0 && Grid.IdxZ == 0 && Warp.WarpIdx == 0 && s.RowBase == 0)
            ReportFirstError(table, lengths, starts, errorWord, s);
        int t = s.RowBase + Grid.IdxX;
        int headTile = Grid.IdxY / s.DimTiles, dimTile = Grid.IdxY - headTile * s.DimTiles;
        int h = headTile * s.HeadsPerGroup + Warp.WarpIdx;
        if (h >= s.QHeads)
            return;
        int lane = Warp.LaneIdx, warp = Warp.WarpSize;
        long pair = (long)t * s.QHeads + h;

        // the group's splits: one on CUDA (grid z), all of them in turn on the CPU accelerator (fewer simulated groups)
        int firstSplit = Grid.IdxZ * s.SplitsPerGroup;
        int lastSplit = XMath.Min(s.Splits, firstSplit + s.SplitsPerGroup);

        // this warp's keys: none where its row belongs to no valid sequence (nor, unchecked, where its splits start past them)
        long keyCount = 0, tableRow = 0;
        int b = SequenceOf(starts, t, s);
        if (b >= 0)
        {
            int first = starts[b], count = starts[b + 1] - first, length = lengths[b];
            long window = (long)length - count + (t - first) + 1; // the causal window: keys 0 .. position
            if (length >= count && length <= (long)s.MaxPages * s.PageSize && (long)firstSplit * s.Chunk < window)
            {
                tableRow = (long)b * s.MaxPages;
                int need = (int)(((long)length + s.PageSize - 1) / s.PageSize);
                bool badPage = false;
                for (int e = lane; e < need; e += warp)
                {
                    int page = table[tableRow + e];
                    badPage |= page < 0 || page >= s.Pages;
                }
                if (!WarpReduce.Any(badPage))
                    keyCount = window;
            }
        }

        var acc = LocalMemory.Allocate<float>(perLane);
        long qRow = pair * s.HeadDim;
        int kvh = h / s.Group;
        long keyOffset = (long)kvh * s.HeadDim, valueOffset = (long)kvh * s.VHeadDim;
        int dimBase = dimTile * s.DimTile;
        int dimEnd = XMath.Min(s.VHeadDim, dimBase + s.DimTile);
        for (int split = firstSplit; split < lastSplit; split++)
        {
            long keyBegin = (long)split * s.Chunk;
            long keyEnd = XMath.Min(keyCount, keyBegin + s.Chunk);
            for (int k = 0; k < perLane; k++)
                acc[k] = 0f;
            float m = float.NegativeInfinity, l = 0f;
            for (long j = keyBegin; j < keyEnd; j++)
            {
                long pageIndex = j / s.PageSize;
                long slot = (long)table[tableRow + pageIndex] * s.PageSize + (j - pageIndex * s.PageSize);
                long keyRow = slot * s.KeyRowStride + keyOffset;
                float part = 0f;
                for (int d = lane; d < s.HeadDim; d += warp)
                    part += qc.Load(q[qRow + d]) * pc.Load(keys[keyRow + d]);
                float score = WarpReduce.Sum(part) * s.Scale;
                if (score > m)
                {
                    float alpha = PagedAttentionLanes.Exp2(m - score);
                    l *= alpha;
                    for (int k = 0; k < perLane; k++)
                        acc[k] *= alpha;
                    m = score;
                }
                float weight = PagedAttentionLanes.Exp2(score - m);
                l += weight;
                long valueRow = slot * s.ValueRowStride + valueOffset;
                for (int k = 0; k < perLane; k++)
                {
                    int d = dimBase + lane + k * warp;
                    if (d < dimEnd)
                        acc[k] += weight * pc.Load(values[valueRow + d]);
                }
            }

            bool hasKeys = keyEnd > keyBegin;
            if (s.Splits == 1)
            {
                if (hasKeys)
                {
                    for (int k = 0; k < perLane; k++)
                    {
                        int d = dimBase + lane + k * warp;
                        if (d < dimEnd)
                            y[pair * s.VHeadDim + d] = yc.Store(acc[k] / l);
                    }
                }
                continue;
            }
            long at = (pair - (long)s.RowBase * s.QHeads) * s.Splits + split;
            if (dimTile == 0 && lane == 0)
            {
                stats[2 * at] = m;
                stats[2 * at + 1] = hasKeys ? l : -1f;
            }
            if (!hasKeys)
                continue;
            for (int k = 0; k < perLane; k++)
            {
                int d = dimBase + lane + k * warp;
                if (d < dimEnd)
                    partials[at * s.VHeadDim + d] = acc[k];
            }
        }
    }

    // group = one (token, head) pair: y = sum_s partial_s e^(m_s - M) / sum_s l_s e^(m_s - M) over the splits that had keys;
    // a pair none of whose splits had keys (a skipped sequence, a row of none) is not written.
    static void CombineKernel<TY, TYC>(ArrayView<float> partials, ArrayView<float> stats, ArrayView<TY> y, Shape s)
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
    {
        TYC yc = default;
        long pair = (long)s.RowBase * s.QHeads + Grid.IdxX;
        long at = (long)Grid.IdxX * s.Splits; // this pass's rows only
        float max = float.NegativeInfinity;
        bool any = false;
        for (int i = 0; i < s.Splits; i++)
        {
            if (stats[2 * (at + i) + 1] < 0f)
                continue;
            any = true;
            max = XMath.Max(max, stats[2 * (at + i)]);
        }
        if (!any)
            return;
        // sums start at -0 and the maximum's split is weighted by exactly 1, so a row whose keys all fall in one split gets
        // bitwise the output of the one-split kernel (acc / l)
        float sum = -0f;
        for (int i = 0; i < s.Splits; i++)
        {
            float l = stats[2 * (at + i) + 1];
            if (!(l < 0f))
                sum += l * Weight(stats[2 * (at + i)], max);
        }
        for (int d = Group.IdxX; d < s.VHeadDim; d += Group.DimX)
        {
            float o = -0f;
            for (int i = 0; i < s.Splits; i++)
            {
                if (!(stats[2 * (at + i) + 1] < 0f))
                    o += partials[(at + i) * s.VHeadDim + d] * Weight(stats[2 * (at + i)], max);
            }
            y[pair * s.VHeadDim + d] = yc.Store(o / sum);
        }
    }

    /// <summary>2^(m - max) (maxima in base 2), exactly 1 for the split that holds the maximum.</summary>
    static float Weight(float m, float max) => PagedAttentionLanes.Weight(m, max);


    /// <summary>
    /// The sequence whose query rows hold row <paramref name="t"/>, or -1 where the offsets break the reference's checks (one
    /// outside [0, tokens], or a decrease) or no sequence holds the row. Every lane of the warp gets the same answer.
    /// </summary>
    static int SequenceOf(ArrayView<int> starts, int t, Shape s)
    {
        bool bad = false;
        for (int i = Warp.LaneIdx; i <= s.Batch; i += Warp.WarpSize)
        {
            int v = starts[i];
            bad |= v < 0 || v > s.Tokens || (i > 0 && v < starts[i - 1]);
        }
        if (WarpReduce.Any(bad) || t < starts[0] || t >= starts[s.Batch])
            return -1;
        // the last b with starts[b] <= t (then t < starts[b + 1], the offsets not decreasing)
        int lo = 0, hi = s.Batch;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (starts[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        return lo;
    }

    /// <summary>One warp: the first bad metadata in the reference's order (ReferenceBackend.Paged), recorded in the error word.</summary>
    static void ReportFirstError(ArrayView<int> table, ArrayView<int> lengths, ArrayView<int> starts, ArrayView<int> errorWord, Shape s)
    {
        int bad = DeviceIndexChecks.FirstOutOfRange(starts, 0, s.Batch + 1, s.Tokens + 1L);
        if (bad >= 0)
        {
            DeviceIndexChecks.Report(errorWord, s.StartSite, bad, starts[bad], s.Tokens + 1L, outOfOrder: false);
            return;
        }
        bad = DeviceIndexChecks.FirstDecrease(starts, s.Batch + 1);
        if (bad >= 0)
        {
            DeviceIndexChecks.Report(errorWord, s.StartSite, bad, starts[bad], s.Batch + 1, outOfOrder: true);
            return;
        }
        long tableLength = (long)s.MaxPages * s.PageSize;
        for (int b = 0; b < s.Batch; b++)
        {
            int count = starts[b + 1] - starts[b], length = lengths[b];
            if (length < count || length > tableLength)
            {
                DeviceIndexChecks.Report(errorWord, s.LengthSite, b, length, tableLength + 1, outOfOrder: false);
                return;
            }
            if (count == 0)
                continue;
            long row = (long)b * s.MaxPages;
            bad = DeviceIndexChecks.FirstOutOfRange(table, row, (int)(((long)length + s.PageSize - 1) / s.PageSize), s.Pages);
            if (bad >= 0)
            {
                DeviceIndexChecks.Report(errorWord, s.TableSite, row + bad, table[row + bad], s.Pages, outOfOrder: false);
                return;
            }
        }
    }
}

/// <summary>Output dimensions each lane of a paged attention warp accumulates, as a type (one kernel per count).</summary>
internal interface IPerLane
{
    int Count { get; }
}

/// <summary>Four per lane: value heads up to 4 x warp size in one tile (128 on CUDA).</summary>
internal readonly struct FourPerLane : IPerLane
{
    public int Count => 4;
}

/// <summary>Sixteen per lane: wider value heads (MLA's 512 latent dimensions in one tile on CUDA).</summary>
internal readonly struct SixteenPerLane : IPerLane
{
    public int Count => 16;
}
