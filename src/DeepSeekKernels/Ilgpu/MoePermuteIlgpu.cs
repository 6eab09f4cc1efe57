using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// MoePermute as ILGPU kernels: a stable counting sort of the slots by expert (the algorithm of the hand-CUDA
/// <c>kernels/moe_permute.cu</c>, so offsets and slotRows agree bit for bit), every grid sized from host sizes only, so the
/// launches are the same for any ids:
/// <list type="number">
/// <item><c>CountKernel</c>: a group per chunk of 256 slots checks its ids and counts them per expert in shared memory
/// (atomics), writing the chunk's histogram [chunks, experts] to the scratch buffer; a bad id raises the scratch flag.</item>
/// <item><c>ScanKernel</c> (one group): with the flag raised, warp 0 reports the lowest bad slot to the error word, the status
/// word says so and nothing else is written; otherwise per expert the total over chunks, one warp's exclusive scan into
/// expertOffsets, and in place of each histogram entry the first row of that (chunk, expert).</item>
/// <item><c>ScatterKernel</c>: a group per chunk; slot s of expert e goes to row base[chunk, e] + (slots of e before s in
/// its chunk), counted over the chunk's ids in shared memory: slotRows[s].</item>
/// <item><c>CopyKernel</c>: a group per slot copies row s / topK of x to row slotRows[s] of permuted, in 16-byte units where
/// both have the same dtype and rows of whole units, else element by element (widened exactly, rounded once).</item>
/// </list>
/// The scratch buffer (flag, status, histograms) is the caller's workspace where given (its header zeroed by each call),
/// else this object's, grown once to the largest call.
/// </summary>
internal sealed class MoePermuteIlgpu(DeviceRuntime runtime)
{
    /// <summary>Slots per chunk of the count and scatter kernels.</summary>
    internal const int Chunk = 256;

    /// <summary>Threads per group, at most.</summary>
    const int Threads = 256;

    /// <summary>Scratch words before the histograms: [0] the bad-id flag (reset by the scan), [1] the status the scan leaves (1: bad ids).</summary>
    internal const int Header = 2;

    /// <summary>Shape of one call.</summary>
    internal struct Shape
    {
        public int Slots, TopK, Hidden, Experts, Chunks, Site, Vectors;
    }

    readonly object _gate = new();
    MemoryBuffer1D<int, Stride1D.Dense>? _scratch;
    readonly List<MemoryBuffer1D<int, Stride1D.Dense>> _retired = []; // replaced buffers, kept for graphs captured on them
    Delegate? _count, _scan, _scatter;
    readonly ConcurrentDictionary<(Type X, Type P), Delegate> _copies = new();
    readonly Lazy<MemoryBuffer1D<Vec16, Stride1D.Dense>> _noVectors = new(() => runtime.Accelerator.Allocate1D<Vec16>(1));

    public void Run(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets, DeviceView<int> slotRows, int topK,
        int hidden, int experts, DeviceView<int> workspace)
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        int slots = (int)ids.Length;
        var s = new Shape
        {
            Slots = slots, TopK = topK, Hidden = hidden, Experts = experts, Chunks = (slots + Chunk - 1) / Chunk,
            Site = DeviceErrorSite.MoePermuteIds.Id,
        };
        ArrayView<int> scratch;
        if (workspace.IsNull)
            scratch = Scratch(Header + (long)s.Chunks * experts);
        else
        {
            scratch = workspace.IlgpuView; // the caller's (Ops.MoePermuteWorkspaceBytes): its flag put down first
            scratch.SubView(0, Header).MemSetToZero(runtime.Stream);
        }
        int threads = Math.Min(Threads, accelerator.MaxNumThreadsPerGroup);
        var errorWord = runtime.Errors.Word.View.IlgpuView;
        var stream = runtime.Stream;

        _count ??= accelerator.LoadKernel<ArrayView<int>, ArrayView<int>, Shape>(CountKernel);
        _scan ??= accelerator.LoadKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, Shape>(ScanKernel);
        _scatter ??= accelerator.LoadKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, Shape>(ScatterKernel);
        ((Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<int>, Shape>)_count)(stream,
            new KernelConfig(new Index1D(s.Chunks), new Index1D(threads), SharedMemoryConfig.RequestDynamic<int>(experts)), ids.IlgpuView, scratch, s);
        ((Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, Shape>)_scan)(stream,
            new KernelConfig(new Index1D(1), new Index1D(threads), SharedMemoryConfig.RequestDynamic<int>(experts)), ids.IlgpuView, offsets.IlgpuView,
            scratch, errorWord, s);
        ((Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, Shape>)_scatter)(stream,
            new KernelConfig(new Index1D(s.Chunks), new Index1D(threads), SharedMemoryConfig.RequestDynamic<int>(Chunk)), ids.IlgpuView,
            slotRows.IlgpuView, scratch, s);
        switch ((x.ElementType, permuted.ElementType))
        {
            case (ElementType.F32, ElementType.F32): Copy<float, float>(x, permuted, slotRows, scratch, s, threads); break;
            case (ElementType.F32, ElementType.BF16): Copy<float, BFloat16>(x, permuted, slotRows, scratch, s, threads); break;
            case (ElementType.BF16, ElementType.F32): Copy<BFloat16, float>(x, permuted, slotRows, scratch, s, threads); break;
            default: Copy<BFloat16, BFloat16>(x, permuted, slotRows, scratch, s, threads); break;
        }
    }

    /// <summary>Bytes of this object's own scratch (grown by calls without a caller's workspace; for tests).</summary>
    internal long OwnScratchBytes
    {
        get { lock (_gate) return ((_scratch?.Length ?? 0) + _retired.Sum(b => b.Length)) * sizeof(int); }
    }

    /// <summary>The scratch buffer, at least <paramref name="words"/> long; a new one starts zeroed (the flag down).</summary>
    ArrayView<int> Scratch(long words)
    {
        lock (_gate)
        {
            if (_scratch == null || _scratch.Length < words)
            {
                if (_scratch != null)
                    _retired.Add(_scratch); // kernels enqueued before, or a captured graph, may still use the old one
                _scratch = runtime.Accelerator.Allocate1D<int>(Math.Max(words, 2 * (Header + (long)Chunk)));
                _scratch.View.MemSetToZero(runtime.Stream);
            }
            return _scratch.View;
        }
    }

    void Copy<TX, TP>(DeviceTensor x, DeviceTensor permuted, DeviceView<int> slotRows, ArrayView<int> scratch, Shape s, int threads)
        where TX : unmanaged where TP : unmanaged
    {
        var xView = LinearIlgpu.ViewOf<TX>(x);
        var pView = LinearIlgpu.ViewOf<TP>(permuted);
        ArrayView<Vec16> xv = _noVectors.Value.View, pv = _noVectors.Value.View;
        if (typeof(TX) == typeof(TP) && (long)s.Hidden * x.ElementSize % 16 == 0 && x.Pointer % 16 == 0 && permuted.Pointer % 16 == 0)
        {
            s.Vectors = 1;
            xv = xView.Cast<Vec16>();
            pv = pView.Cast<Vec16>();
        }
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TX>, ArrayView<Vec16>, ArrayView<TP>, ArrayView<Vec16>, ArrayView<int>,
            ArrayView<int>, Shape>)_copies.GetOrAdd((typeof(TX), typeof(TP)), _ =>
            {
                var method = typeof(MoePermuteIlgpu).GetMethod(nameof(CopyKernel), BindingFlags.NonPublic | BindingFlags.Static)!
                    .MakeGenericMethod(typeof(TX), ElementCodecs.CodecFor(typeof(TX)), typeof(TP), ElementCodecs.CodecFor(typeof(TP)));
                var type = typeof(Action<ArrayView<TX>, ArrayView<Vec16>, ArrayView<TP>, ArrayView<Vec16>, ArrayView<int>, ArrayView<int>, Shape>);
                return runtime.Accelerator.LoadKernel((Action<ArrayView<TX>, ArrayView<Vec16>, ArrayView<TP>, ArrayView<Vec16>, ArrayView<int>,
                    ArrayView<int>, Shape>)method.CreateDelegate(type));
            });
        int units = s.Vectors != 0 ? s.Hidden * x.ElementSize / 16 : s.Hidden;
        var warp = runtime.Accelerator.WarpSize;
        int groupThreads = Math.Clamp((units + warp - 1) / warp * warp, warp, threads);
        kernel(runtime.Stream, new KernelConfig(s.Slots, groupThreads), xView, xv, pView, pv, slotRows.IlgpuView, scratch, s);
    }

    // group c: chunk c's ids checked and counted per expert; histogram row c of the scratch
    static void CountKernel(ArrayView<int> ids, ArrayView<int> scratch, Shape s)
    {
        var counts = SharedMemory.GetDynamic<int>();
        int c = Grid.IdxX;
        for (int e = Group.IdxX; e < s.Experts; e += Group.DimX)
            counts[e] = 0;
        Group.Barrier();
        bool bad = false;
        for (int i = Group.IdxX; i < Chunk; i += Group.DimX)
        {
            int slot = c * Chunk + i;
            if (slot >= s.Slots)
                break;
            int id = ids[slot];
            if ((uint)id >= (uint)s.Experts)
                bad = true;
            else
                Atomic.Add(ref counts[id], 1);
        }
        Group.Barrier();
        long row = Header + (long)c * s.Experts;
        for (int e = Group.IdxX; e < s.Experts; e += Group.DimX)
            scratch[row + e] = counts[e];
        if (bad)
            Atomic.Exchange(ref scratch[0], 1);
    }

    // one group: the bad-id report, or expertOffsets and the (chunk, expert) bases in place of the histograms
    static void ScanKernel(ArrayView<int> ids, ArrayView<int> offsets, ArrayView<int> scratch, ArrayView<int> errorWord, Shape s)
    {
        var totals = SharedMemory.GetDynamic<int>();
        var flag = SharedMemory.Allocate<int>(1);
        if (Group.IdxX == 0)
            flag[0] = scratch[0];
        Group.Barrier();
        bool bad = flag[0] != 0;
        if (Group.IdxX == 0)
        {
            scratch[0] = 0;           // down for the next call
            scratch[1] = bad ? 1 : 0; // what the scatter and copy kernels read
        }
        if (bad)
        {
            if (Warp.WarpIdx == 0)
            {
                int first = DeviceIndexChecks.FirstOutOfRange(ids, 0, s.Slots, s.Experts);
                if (first >= 0)
                    DeviceIndexChecks.Report(errorWord, s.Site, first, ids[first], s.Experts, outOfOrder: false);
            }
            return;
        }
        int experts = s.Experts;
        for (int e = Group.IdxX; e < experts; e += Group.DimX)
        {
            int total = 0;
            for (int c = 0; c < s.Chunks; c++)
                total += scratch[Header + (long)c * experts + e];
            totals[e] = total;
        }
        Group.Barrier();
        if (Warp.WarpIdx == 0)
        {
            // exclusive scan of the totals, W experts at a time
            int lane = Warp.LaneIdx, width = Warp.WarpSize, carry = 0;
            for (int start = 0; start < experts; start += width)
            {
                int e = start + lane;
                int v = e < experts ? totals[e] : 0;
                int inclusive = v;
                for (int delta = 1; delta < width; delta *= 2)
                {
                    int up = Warp.ShuffleUp(inclusive, delta);
                    if (lane >= delta)
                        inclusive += up;
                }
                if (e < experts)
                {
                    totals[e] = carry + inclusive - v;
                    offsets[e] = carry + inclusive - v;
                }
                carry += Warp.Shuffle(inclusive, width - 1);
            }
            if (lane == 0)
                offsets[experts] = carry;
        }
        Group.Barrier();
        for (int e = Group.IdxX; e < experts; e += Group.DimX)
        {
            int running = totals[e];
            for (int c = 0; c < s.Chunks; c++)
            {
                long at = Header + (long)c * experts + e;
                int count = scratch[at];
                scratch[at] = running;
                running += count;
            }
        }
    }

    // group c: slotRows of chunk c's slots, stable within the chunk
    static void ScatterKernel(ArrayView<int> ids, ArrayView<int> slotRows, ArrayView<int> scratch, Shape s)
    {
        if (scratch[1] != 0)
            return;
        var chunk = SharedMemory.GetDynamic<int>();
        int c = Grid.IdxX;
        int first = c * Chunk;
        int count = s.Slots - first < Chunk ? s.Slots - first : Chunk;
        for (int i = Group.IdxX; i < count; i += Group.DimX)
            chunk[i] = ids[first + i];
        Group.Barrier();
        long bases = Header + (long)c * s.Experts;
        for (int i = Group.IdxX; i < count; i += Group.DimX)
        {
            int id = chunk[i], rank = 0;
            for (int j = 0; j < i; j++)
                rank += chunk[j] == id ? 1 : 0;
            slotRows[first + i] = scratch[bases + id] + rank;
        }
    }

    // group s: permuted[slotRows[s], :] = x[s / topK, :]
    static void CopyKernel<TX, TXC, TP, TPC>(ArrayView<TX> x, ArrayView<Vec16> xVectors, ArrayView<TP> permuted, ArrayView<Vec16> pVectors,
        ArrayView<int> slotRows, ArrayView<int> scratch, Shape s)
        where TX : unmanaged where TXC : struct, IElementCodec<TX>
        where TP : unmanaged where TPC : struct, IElementCodec<TP>
    {
        if (scratch[1] != 0)
            return;
        long slot = Grid.IdxX;
        long row = slotRows[slot], token = slot / s.TopK;
        if (s.Vectors != 0)
        {
            xVectors = xVectors.AsAligned(16);
            pVectors = pVectors.AsAligned(16);
            int units = s.Hidden * Interop.SizeOf<TX>() / 16;
            for (int u = Group.IdxX; u < units; u += Group.DimX)
                pVectors[row * units + u] = xVectors[token * units + u];
            return;
        }
        TXC xc = default;
        TPC pc = default;
        for (int i = Group.IdxX; i < s.Hidden; i += Group.DimX)
            permuted[row * s.Hidden + i] = pc.Store(xc.Load(x[token * s.Hidden + i]));
    }
}
