using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Caching;

/// <summary>
/// The KV cache of a model as a pool of pages shared by every sequence (vLLM's and FlashInfer's paged cache): per
/// layer, key pages [pages, pageSize, keyWidth] and value pages [pages, pageSize, valueWidth] (for MLA only the
/// latent rows [kv_lora_rank + qk_rope_head_dim], no values), f32 or bf16, with the step metadata, in one
/// <see cref="DeviceArena"/>, so addresses never move. A <see cref="KvBlockManager"/> hands pages to sequences; the step metadata (block table,
/// lengths, query offsets) lives in device buffers of fixed size beside the pool, refreshed before each step.
/// </summary>
public sealed class PagedKvCache : IDisposable
{
    readonly DeviceArena _arena;
    readonly DeviceTensor _keyPool, _valuePool; // [layers, pages, pageSize, width]
    readonly bool _hasValues;
    readonly Dictionary<int, int> _lengths = [];

    internal PagedKvCache(CausalLanguageModel owner, DeviceRuntime runtime, KvCacheLayout layout)
    {
        Owner = owner;
        Layout = layout;
        Blocks = new KvBlockManager(layout.Pages, layout.PageSize);
        // one arena, in this order: key pool, value pool (GQA), block table, lengths, query offsets, attention workspace
        // (KvCacheLayout.Bytes)
        _arena = runtime.CreateArena(layout.Bytes);
        _keyPool = Pool(_arena, layout, layout.KeyWidth);
        _hasValues = layout.ValueWidth > 0;
        if (_hasValues)
            _valuePool = Pool(_arena, layout, layout.ValueWidth);
        BlockTable = _arena.Allocate<int>((long)layout.MaxBatch * layout.TableWidth);
        SequenceLengths = _arena.Allocate<int>(layout.MaxBatch);
        QueryStarts = _arena.Allocate<int>(layout.MaxBatch + 1L);
        if (layout.AttentionWorkspaceBytes > 0)
            AttentionWorkspace = _arena.Allocate<int>(layout.AttentionWorkspaceBytes / sizeof(int));
        HostLayout = new KvBatchLayout(layout.MaxBatch, layout.TableWidth, owner.ChunkTokens);
    }

    static DeviceTensor Pool(DeviceArena arena, KvCacheLayout l, int width)
    {
        long elements = SizeMath.Product("the KV cache pool", "elements", l.Layers, l.Pages, l.PageSize, width);
        return l.ElementType == ElementType.F32
            ? arena.Allocate<float>(elements).AsTensor(l.Layers, l.Pages, l.PageSize, width)
            : arena.Allocate<BFloat16>(elements).AsTensor(l.Layers, l.Pages, l.PageSize, width);
    }

    internal CausalLanguageModel Owner { get; }

    /// <summary>Pages, page size, widths, element type and the step limits the cache was made for.</summary>
    public KvCacheLayout Layout { get; }

    /// <summary>Which pages each sequence owns.</summary>
    public KvBlockManager Blocks { get; }

    /// <summary>Bytes allocated on the device: the pools and the step metadata (<see cref="KvCacheLayout.Bytes"/>).</summary>
    public long Bytes => Layout.Bytes;

    /// <summary>Bytes this cache allocated on the device: its arena's capacity (tests compare it with the plan).</summary>
    internal long AllocatedBytes => _arena.Capacity;

    /// <summary>Bytes the buffers took from the arena (equal to <see cref="AllocatedBytes"/> when the layout's formula is right).</summary>
    internal long ArenaUsedBytes => _arena.Used;

    /// <summary>Starts a sequence with no cached positions; returns its id.</summary>
    public int AddSequence()
    {
        int sequence = Blocks.AddSequence();
        _lengths[sequence] = 0;
        return sequence;
    }

    /// <summary>Positions of <paramref name="sequence"/> cached so far (its next token's position).</summary>
    public int Length(int sequence) => _lengths.TryGetValue(sequence, out int length)
        ? length
        : throw new ArgumentException($"Sequence {sequence} is not in this cache (freed, or never added).", nameof(sequence));

    /// <summary>Forgets positions from <paramref name="length"/> on (prefix reuse, rollback) and returns the pages they held.</summary>
    public void Truncate(int sequence, int length)
    {
        int current = Length(sequence);
        if (length < 0 || length > current)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"Sequence {sequence} holds {current} positions; it can be cut to 0..{current}.");
        _lengths[sequence] = length;
        Blocks.Truncate(sequence, Math.Min(length, Blocks.ReservedLength(sequence)));
    }

    /// <summary>Ends a sequence and returns its pages to the pool.</summary>
    public void Free(int sequence)
    {
        Length(sequence);
        Blocks.Free(sequence);
        _lengths.Remove(sequence);
    }

    internal void Advance(int sequence, int count) => _lengths[sequence] += count;

    /// <summary>Key pages of <paramref name="layer"/>: [pages, pageSize, keyWidth].</summary>
    internal DeviceTensor KeyPages(int layer) => _keyPool.Select(0, layer);

    /// <summary>Value pages of <paramref name="layer"/>: [pages, pageSize, valueWidth]; default for MLA.</summary>
    internal DeviceTensor ValuePages(int layer) => _hasValues ? _valuePool.Select(0, layer) : default;

    // Step metadata: fixed-size device buffers (stable addresses) and their host images.
    internal DeviceBuffer<int> BlockTable { get; }
    internal DeviceBuffer<int> SequenceLengths { get; }
    internal DeviceBuffer<int> QueryStarts { get; }
    /// <summary>
    /// The attention ops' split-K scratch for this cache's steps (<see cref="PagedBatch.Workspace"/>): planned, never grown;
    /// null for a cache made for a host backend (<see cref="KvCacheLayout.AttentionWorkspaceBytes"/> 0).
    /// </summary>
    internal DeviceBuffer<int>? AttentionWorkspace { get; }
    /// <summary>The host images of a step's metadata (the device buffers' contents, and the per-token positions and slots).</summary>
    internal KvBatchLayout HostLayout { get; }

    public void Dispose() => _arena.Dispose();
}

/// <summary>
/// The shape of a <see cref="PagedKvCache"/>: what it allocates, so `dsk plan` and the runner count the same bytes.
/// </summary>
/// <param name="Layers">Decoder layers.</param>
/// <param name="KeyWidth">Elements per position per layer of the keys (MLA: the latent row).</param>
/// <param name="ValueWidth">Elements per position per layer of the values (0 for MLA).</param>
/// <param name="Pages">Pages in the pool.</param>
/// <param name="PageSize">Positions per page (16..256).</param>
/// <param name="ElementType">f32 (the exact path) or bf16.</param>
/// <param name="MaxBatch">Most sequences in one step (rows of the block table).</param>
/// <param name="MaxSequenceLength">Most positions one sequence may hold (the block table's width times the page size, rounded up).</param>
/// <param name="AttentionWorkspaceBytes">
/// The attention ops' scratch for the cache's steps (<see cref="PagedBatch.Workspace"/>, a multiple of
/// <see cref="DeviceArena.Alignment"/>): a decode step of MaxBatch sequences runs in one pass with its full split count.
/// </param>
public sealed record KvCacheLayout(int Layers, int KeyWidth, int ValueWidth, int Pages, int PageSize, ElementType ElementType, int MaxBatch,
    int MaxSequenceLength, long AttentionWorkspaceBytes = 0)
{
    /// <summary>Pages a sequence may own: the block table's width.</summary>
    public int TableWidth => (int)((MaxSequenceLength + (long)PageSize - 1) / PageSize);

    /// <summary>Bytes per cached position over all layers.</summary>
    public long BytesPerPosition => SizeMath.Product("the KV cache bytes per position", "bytes", Layers, (long)KeyWidth + ValueWidth, ElementType.Size());

    /// <summary>Bytes of the pools ([layers, pages, pageSize, width] keys and values).</summary>
    public long PoolBytes => SizeMath.Product("the KV cache pool", "bytes", BytesPerPosition, Pages, PageSize);

    /// <summary>Bytes of the step metadata: block table [maxBatch, tableWidth], lengths [maxBatch], query offsets [maxBatch + 1], int32.</summary>
    public long MetadataBytes => SizeMath.Product("the KV cache metadata", "bytes", 4,
        SizeMath.Sum("the KV cache metadata", "elements", [(long)MaxBatch * TableWidth, MaxBatch, MaxBatch + 1L]));

    /// <summary>
    /// Everything the cache allocates: one arena holding the key pool, the value pool (GQA), the block table, the lengths,
    /// the query offsets and the attention workspace, each aligned to <see cref="DeviceArena.Alignment"/> bytes.
    /// </summary>
    public long Bytes
    {
        get
        {
            long keyPool = SizeMath.Product("the KV cache key pool", "bytes", Layers, Pages, PageSize, KeyWidth, ElementType.Size());
            long valuePool = SizeMath.Product("the KV cache value pool", "bytes", Layers, Pages, PageSize, ValueWidth, ElementType.Size());
            long[] parts = ValueWidth > 0
                ? [keyPool, valuePool, 4L * MaxBatch * TableWidth, 4L * MaxBatch, 4L * (MaxBatch + 1L), AttentionWorkspaceBytes]
                : [keyPool, 4L * MaxBatch * TableWidth, 4L * MaxBatch, 4L * (MaxBatch + 1L), AttentionWorkspaceBytes];
            try
            {
                return DeviceArena.SizeOf(parts);
            }
            catch (OverflowException e)
            {
                throw SizeMath.TooLarge("the KV cache", "bytes", e);
            }
        }
    }

    /// <summary>
    /// The cache for <paramref name="sequences"/> sequences of up to <paramref name="context"/> positions each, every one
    /// able to reach its full context at once (pages = sequences x ceil(context / pageSize)), steps of up to
    /// <paramref name="maxBatch"/> sequences, and, with <paramref name="attentionWorkspace"/> (the GPU backends), the
    /// attention workspace of such a step (<see cref="PagedBatch.WorkspaceBytes"/> for maxBatch decode rows of the model's
    /// query heads over the block table's width).
    /// </summary>
    public static KvCacheLayout For(ModelShape s, int context, int sequences, int pageSize, ElementType type, int maxBatch,
        bool attentionWorkspace = true)
    {
        var (keyWidth, valueWidth) = Widths(s);
        if (keyWidth > int.MaxValue || valueWidth > int.MaxValue)
            throw new OverflowException($"the KV cache row ({Math.Max(keyWidth, valueWidth):N0} elements per position and layer) is more than {int.MaxValue:N0} elements, the most a 32-bit index addresses");
        long pagesPerSequence = (context + (long)pageSize - 1) / pageSize;
        long pages = pagesPerSequence * sequences;
        if (pages > int.MaxValue || pages * pageSize > int.MaxValue)
            throw new OverflowException($"the KV cache ({sequences:N0} sequences x {context:N0} positions in pages of {pageSize}) is more than {int.MaxValue:N0} slots, the most a 32-bit index addresses");
        int capacity = (int)(pagesPerSequence * pageSize); // the keys a block-table row addresses: what the attention ops split
        long workspace = 0;
        try
        {
            if (attentionWorkspace)
                workspace = PagedBatch.WorkspaceBytes(maxBatch, s.Heads, s.IsMla ? s.KvLoraRank : s.HeadDim, capacity, maxBatch);
        }
        catch (OverflowException e)
        {
            throw SizeMath.TooLarge($"the attention workspace ({maxBatch:N0} rows x {s.Heads:N0} heads over {capacity:N0} keys)", "bytes", e);
        }
        return new KvCacheLayout(s.Layers, (int)keyWidth, (int)valueWidth, (int)pages, pageSize, type, maxBatch, context, workspace);
    }

    /// <summary>Key and value widths a model caches per position per layer.</summary>
    public static (long KeyWidth, long ValueWidth) Widths(ModelShape s) => s.IsMla
        ? ((long)s.KvLoraRank + s.QkRopeHeadDim, 0)
        : ((long)s.KvHeads * s.HeadDim, (long)s.KvHeads * s.HeadDim);

    /// <summary>The default page size: 64 for MLA's latent rows (as FlashMLA pages them), 16 otherwise (as vLLM).</summary>
    public static int DefaultPageSize(ModelShape s) => s.IsMla ? 64 : 16;
}
