using System.Collections.Concurrent;
using System.Globalization;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// A place in an op where a device-held index is read: the op, the operand, what its values are and what they index.
/// Sites are registered once (<see cref="DeviceErrorSite.Register"/>) and named by a small integer that kernels write
/// into the error word.
/// </summary>
public sealed record DeviceErrorSite(int Id, string Op, string Operand, string What, string Bound)
{
    static readonly ConcurrentDictionary<int, DeviceErrorSite> Sites = new();
    static int _next;

    /// <summary>Registers a site; kernels write its <see cref="Id"/>.</summary>
    internal static DeviceErrorSite Register(string op, string operand, string what, string bound)
    {
        var site = new DeviceErrorSite(Interlocked.Increment(ref _next), op, operand, what, bound);
        Sites[site.Id] = site;
        return site;
    }

    internal static DeviceErrorSite? Find(int id) => Sites.GetValueOrDefault(id);

    // The sites of the ops that read device-held indices.
    internal static readonly DeviceErrorSite EmbeddingIds = Register("Embedding", "ids", "token id", "rows of the table");
    internal static readonly DeviceErrorSite RopePositions = Register("Rope", "positions", "position", "positions of the RoPE table");
    internal static readonly DeviceErrorSite MoePermuteIds = Register("MoePermute", "expertIds", "expert id", "experts");
    internal static readonly DeviceErrorSite GroupedLinearOffsets = Register("GroupedLinear", "expertOffsets", "row offset", "rows of x (offsets must not decrease)");
    internal static readonly DeviceErrorSite GroupedLinearSiluMulOffsets = Register("GroupedLinearSiluMul", "expertOffsets", "row offset", "rows of x (offsets must not decrease)");
    internal static readonly DeviceErrorSite GroupedLinearW8A8Offsets = Register("GroupedLinearW8A8", "expertOffsets", "row offset", "rows of qx (offsets must not decrease)");
    internal static readonly DeviceErrorSite MoeCombineRows = Register("MoeCombine", "slotRows", "expert row", "rows of expertOutput");
    internal static readonly DeviceErrorSite KvAppendSlots = Register("KvAppend", "slotMapping", "slot", "slots of the page pool");
    internal static readonly DeviceErrorSite AttentionBlockTable = Register("PagedAttention", "blockTable", "page", "pages of the pool");
    internal static readonly DeviceErrorSite AttentionLengths = Register("PagedAttention", "sequenceLengths", "sequence length", "positions the block table row holds (and at least the sequence's queries)");
    internal static readonly DeviceErrorSite AttentionQueryStarts = Register("PagedAttention", "queryStarts", "query offset", "query tokens (offsets must not decrease)");
    internal static readonly DeviceErrorSite MlaBlockTable = Register("PagedMlaAttention", "blockTable", "page", "pages of the pool");
    internal static readonly DeviceErrorSite MlaLengths = Register("PagedMlaAttention", "sequenceLengths", "sequence length", "positions the block table row holds (and at least the sequence's queries)");
    internal static readonly DeviceErrorSite MlaQueryStarts = Register("PagedMlaAttention", "queryStarts", "query offset", "query tokens (offsets must not decrease)");
}

/// <summary>
/// A device-held index that an op found out of range. Kernels never read out of bounds: they skip the element and
/// record the first bad value in the runtime's error word; the runtime throws this at the next synchronisation
/// (<see cref="DeviceRuntime.Synchronize"/>, a copy to the host), naming the op, the operand, the value and the bound.
/// The outputs of the op that recorded it are undefined.
/// </summary>
public sealed class DeviceIndexException(DeviceErrorSite site, long index, long value, long bound, bool outOfOrder = false)
    : Exception(outOfOrder
        ? string.Create(CultureInfo.InvariantCulture,
            $"{site.Op}: {site.Operand}[{index}] = {value} is out of order: it repeats or undercuts an earlier {site.What} ({site.Bound}); the op's output is undefined.")
        : string.Create(CultureInfo.InvariantCulture,
            $"{site.Op}: {site.Operand}[{index}] = {value} is outside [0, {bound}), the {site.Bound}; the {site.What} was skipped and the op's output is undefined."))
{
    /// <summary>True when the value is in range but breaks an order the operand must keep (a repeat, a decrease).</summary>
    public bool OutOfOrder { get; } = outOfOrder;

    /// <summary>The op and operand that held the bad value.</summary>
    public DeviceErrorSite Site { get; } = site;

    /// <summary>Where in the operand the bad value was (its flat element index).</summary>
    public long Index { get; } = index;

    /// <summary>The bad value.</summary>
    public long Value { get; } = value;

    /// <summary>The exclusive upper bound the value had to stay below.</summary>
    public long Bound { get; } = bound;
}

/// <summary>
/// The runtime's error word: 8 int32 on the device, all zero while nothing went wrong. A kernel that meets a bad
/// device-held index claims the word with an atomic compare-and-swap of element 0 from 0 to the site id, then writes
/// the index, the value and the bound (elements 1..3), so the first error wins. The reference backend writes it the same
/// way through <see cref="Report"/>, so one test covers every backend.
/// </summary>
public sealed class DeviceErrors : IDisposable
{
    /// <summary>Elements of the word.</summary>
    public const int Length = 8;

    readonly DeviceRuntime _runtime;
    readonly int[] _host = new int[Length];
    readonly Lock _lock = new();

    internal DeviceErrors(DeviceRuntime runtime)
    {
        _runtime = runtime;
        Word = runtime.Allocate<int>(Length);
        Word.View.IlgpuView.MemSetToZero(runtime.Stream);
        runtime.Stream.Synchronize();
    }

    /// <summary>The word, for kernels: [site, index, value, bound, out of order (0 or 1), 0, 0, 0].</summary>
    public DeviceBuffer<int> Word { get; }

    /// <summary>
    /// Records a bad index from host code (the reference backend), unless an error is already recorded. The stream must be
    /// idle (the reference synchronises before it runs).
    /// </summary>
    internal void Report(DeviceErrorSite site, long index, long value, long bound, bool outOfOrder = false)
    {
        lock (_lock)
        {
            Read(_host);
            if (_host[0] != 0)
                return;
            _host[0] = site.Id;
            _host[1] = (int)Math.Min(index, int.MaxValue);
            _host[2] = (int)Math.Clamp(value, int.MinValue, int.MaxValue);
            _host[3] = (int)Math.Min(bound, int.MaxValue);
            _host[4] = outOfOrder ? 1 : 0;
            Word.View.IlgpuView.CopyFromCPU(_runtime.Stream, _host);
            _runtime.Stream.Synchronize();
        }
    }

    /// <summary>After the stream is idle: throws the recorded error, if any, and clears the word.</summary>
    /// <exception cref="DeviceIndexException">An op recorded a bad index.</exception>
    internal unsafe void ThrowIfSet()
    {
        // ILGPU's CPU accelerator keeps the word in host memory: one load says whether anything is set (the reference
        // backend checks before every op, so this stays cheap); on a GPU the word is copied once per synchronisation.
        if (!_runtime.IsCuda && *(int*)Word.View.Pointer == 0)
            return;
        lock (_lock)
        {
            Read(_host);
            if (_host[0] == 0)
                return;
            var (id, index, value, bound, order) = (_host[0], _host[1], _host[2], _host[3], _host[4]);
            Array.Clear(_host);
            Word.View.IlgpuView.CopyFromCPU(_runtime.Stream, _host);
            _runtime.Stream.Synchronize();
            var site = DeviceErrorSite.Find(id)
                ?? new DeviceErrorSite(id, "(unknown op)", "(unknown operand)", "index", "valid range");
            throw new DeviceIndexException(site, index, value, bound, order != 0);
        }
    }

    unsafe void Read(int[] destination)
    {
        if (!_runtime.IsCuda)
        {
            new ReadOnlySpan<int>((void*)Word.View.Pointer, Length).CopyTo(destination);
            return;
        }
        Word.View.IlgpuView.CopyToCPU(_runtime.Stream, destination);
        _runtime.Stream.Synchronize();
    }

    public void Dispose() => Word.Dispose();
}
