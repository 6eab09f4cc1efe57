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
/// Algorithm (FlashDecoding): one warp per (query row, query head, output-dimension tile, split of the context; on the CPU
/// accelerator, where every group is simulated, one warp takes all the splits of its row in turn, the same arithmetic). Its lanes
/// stride over the head dimension: per key, a lane multiplies its part of q . k, a butterfly sum gives the score in every
/// lane (<see cref="WarpReduce"/>, safe in a loop), and the online softmax keeps the running maximum m, the running sum l and
/// the unnormalised output (lane-owned accumulators, <see cref="IPerLane"/> of them per lane, so an output tile is PerLane x
/// warp size dimensions; wider value heads take several tiles, each recomputing the scores). No [seq, seq] matrix, no
/// shared memory, no group barrier. The context is split into chunks of a fixed number of keys (<see cref="Plan"/>), so a
/// batch-1 decode of a long context fills the GPU and a row's result does not depend on its batch: each split writes its
/// partial output and (m, l) into a scratch buffer and a combine kernel merges them (log-sum-exp weights), writing the
/// destination once. Where the block table holds no more than one chunk, the attention kernel writes the destination
/// itself. Keys past a row's position are never read.
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

    /// <summary>Shape of one launch; sizes and strides in elements.</summary>
    internal struct Shape
    {
        public int Tokens, Batch, MaxPages, Pages, PageSize, QHeads, HeadDim, VHeadDim, Group;
        public long KeyRowStride, ValueRowStride;
        public float Scale;
        public int Splits, SplitsPerGroup, Chunk, DimTile, DimTiles, HeadsPerGroup;
        public int TableSite, LengthSite, StartSite;
    }

    /// <summary>The split plan of one call: splits per row and keys per split.</summary>
    internal readonly record struct SplitPlan(int Splits, int Chunk);

    readonly ConcurrentDictionary<(Type Q, Type P, Type Y, bool Wide), Delegate> _kernels = new();
    readonly ConcurrentDictionary<Type, Delegate> _combines = new();
    readonly Lock _scratchLock = new();
    // grow-only scratch for split partials; replaced buffers are kept (a captured graph may still use them)
    readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _retired = [];
    MemoryBuffer1D<float, Stride1D.Dense>? _partials, _stats;
    readonly Lazy<MemoryBuffer1D<float, Stride1D.Dense>> _none = new(() => runtime.Accelerator.Allocate1D<float>(1));

    public void Gqa(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        Run(q, keyPages, valuePages, batch, destination, shape, (long)shape.KvHeads * shape.HeadDim, (long)shape.KvHeads * shape.VHeadDim,
            DeviceErrorSite.AttentionBlockTable, DeviceErrorSite.AttentionLengths, DeviceErrorSite.AttentionQueryStarts);

    public void Mla(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape) =>
        Run(q, latentPages, latentPages, batch, destination, shape, shape.HeadDim, shape.HeadDim,
            DeviceErrorSite.MlaBlockTable, DeviceErrorSite.MlaLengths, DeviceErrorSite.MlaQueryStarts);

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

    void Run(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape p,
        long keyRowStride, long valueRowStride, DeviceErrorSite tableSite, DeviceErrorSite lengthSite, DeviceErrorSite startSite)
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
            ValueRowStride = valueRowStride, Scale = p.Scale, DimTile = perLane * warp, HeadsPerGroup = headsPerGroup,
            TableSite = tableSite.Id, LengthSite = lengthSite.Id, StartSite = startSite.Id,
        };
        s.DimTiles = (p.VHeadDim + s.DimTile - 1) / s.DimTile;
        int headTiles = (p.QHeads + headsPerGroup - 1) / headsPerGroup;
        var plan = Plan(runtime.IsCuda, (long)p.MaxPages * p.PageSize);
        (s.Splits, s.Chunk) = (plan.Splits, plan.Chunk);
        s.SplitsPerGroup = runtime.IsCuda ? 1 : s.Splits;
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

    void Launch<TQ, TP, TY>(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        Shape s, bool wide, int headTiles)
        where TQ : unmanaged where TP : unmanaged where TY : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TQ>, ArrayView<TP>, ArrayView<TP>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<TY>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)_kernels.GetOrAdd((typeof(TQ), typeof(TP), typeof(TY), wide),
                key => Load<TQ, TP, TY>(key.Wide));
        ArrayView<float> partials = _none.Value.View, stats = _none.Value.View;
        long pairs = (long)s.Tokens * s.QHeads;
        if (s.Splits > 1)
            (partials, stats) = Scratch(pairs * s.Splits * s.VHeadDim, pairs * s.Splits * 2);
        var y = LinearIlgpu.ViewOf<TY>(destination);
        int warp = accelerator.WarpSize;
        kernel(runtime.Stream, new KernelConfig(new Index3D(s.Tokens, headTiles * s.DimTiles, (s.Splits + s.SplitsPerGroup - 1) / s.SplitsPerGroup), new Index3D(s.HeadsPerGroup * warp, 1, 1)),
            LinearIlgpu.ViewOf<TQ>(q), LinearIlgpu.ViewOf<TP>(keyPages), LinearIlgpu.ViewOf<TP>(valuePages), batch.BlockTable.IlgpuView,
            batch.SequenceLengths.IlgpuView, batch.QueryStarts.IlgpuView, y, partials, stats, runtime.Errors.Word.View.IlgpuView, s);
        if (s.Splits == 1)
            return;
        var combine = (Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<TY>, Shape>)
            _combines.GetOrAdd(typeof(TY), _ => LoadCombine<TY>());
        int cap = Math.Max(warp, Math.Min(128, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((s.VHeadDim + warp - 1) / warp * warp, warp, cap);
        combine(runtime.Stream, new KernelConfig((int)pairs, threads), partials, stats, y, s);
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
        if (Grid.IdxX == 0 && Grid.IdxY == 0 && Grid.IdxZ == 0 && Warp.WarpIdx == 0)
            ReportFirstError(table, lengths, starts, errorWord, s);
        int t = Grid.IdxX;
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
                    float alpha = XMath.Exp(m - score);
                    l *= alpha;
                    for (int k = 0; k < perLane; k++)
                        acc[k] *= alpha;
                    m = score;
                }
                float weight = XMath.Exp(score - m);
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
            long at = pair * s.Splits + split;
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
        long pair = Grid.IdxX;
        long at = pair * s.Splits;
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

    /// <summary>e^(m - max), exactly 1 for the split that holds the maximum.</summary>
    static float Weight(float m, float max) => m == max ? 1f : XMath.Exp(m - max);


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
