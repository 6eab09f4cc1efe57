namespace DeepSeekKernels.Caching;

/// <summary>
/// One sequence's part in a forward step: <paramref name="Count"/> new tokens (a prefill chunk, or 1 for a decode
/// step) at positions <paramref name="Cached"/>..Cached+Count-1, after <paramref name="Cached"/> tokens whose keys
/// are already in the cache.
/// </summary>
public readonly record struct KvBatchEntry(int Sequence, int Cached, int Count);

/// <summary>
/// The sizes of a laid-out step: <paramref name="Batch"/> sequences, <paramref name="Tokens"/> new tokens in all,
/// the most new tokens of one sequence (<paramref name="MaxQueryLength"/>) and the longest sequence after the
/// step (<paramref name="MaxSequenceLength"/>), as variable-length attention kernels take them.
/// </summary>
public readonly record struct KvBatchCounts(int Batch, int Tokens, int MaxQueryLength, int MaxSequenceLength);

/// <summary>
/// The host side of one forward step's attention metadata (as FlashInfer's plan and vLLM's input batch build it):
/// the arrays that paged attention and the KV-cache write read, in fixed-size int32 buffers that are copied as they
/// are into device buffers of the same size, so device addresses stay put from step to step (a captured graph
/// replays them). For a step of <c>batch</c> sequences and <c>tokens</c> new tokens (the sequences' new tokens
/// concatenated in entry order):
/// <list type="table">
/// <item><term><see cref="BlockTable"/></term><description><c>[MaxBatch, TableWidth]</c> row-major: row b holds the
/// first ceil(SequenceLengths[b] / PageSize) pages of sequence b, then <see cref="Unused"/>.</description></item>
/// <item><term><see cref="SequenceLengths"/></term><description><c>[MaxBatch]</c>: cached + count, the keys each sequence has once this step's are appended.</description></item>
/// <item><term><see cref="QueryStarts"/></term><description><c>[MaxBatch + 1]</c>: where each sequence's new tokens start, 0, c0, c0+c1, ..., tokens.</description></item>
/// <item><term><see cref="Positions"/></term><description><c>[MaxTokens]</c>: cached + i for a sequence's i-th new token (RoPE's position).</description></item>
/// <item><term><see cref="SlotMapping"/></term><description><c>[MaxTokens]</c>: the cache slot each new token's key and value are written to.</description></item>
/// <item><term><see cref="LastTokenIndex"/></term><description><c>[MaxBatch]</c>: QueryStarts[b+1] - 1, the row whose logits give sequence b's next token.</description></item>
/// </list>
/// Every element past the step is padding, so a graph captured for a larger batch reads a harmless empty
/// sequence: pages, slots and last-token rows <see cref="Unused"/> (-1; a kernel reading a page beyond
/// ceil(length / PageSize) meets an index no page has, and vLLM's cache write skips slot -1), lengths and
/// positions 0, query starts equal to <c>tokens</c> (no new tokens).
/// </summary>
public sealed class KvBatchLayout
{
    /// <summary>The padding of page, slot and row indices: -1, an index that names nothing.</summary>
    public const int Unused = -1;

    readonly int[] _blockTable, _sequenceLengths, _queryStarts, _positions, _slotMapping, _lastTokenIndex;

    /// <summary>
    /// Buffers for steps of up to <paramref name="maxBatch"/> sequences and <paramref name="maxTokens"/> new
    /// tokens, sequences of up to <paramref name="tableWidth"/> pages (the block table's fixed row length), all
    /// padding until <see cref="Build"/>.
    /// </summary>
    public KvBatchLayout(int maxBatch, int tableWidth, int maxTokens)
    {
        const string op = nameof(KvBatchLayout);
        if (maxBatch < 1)
            ThrowHelper.OutOfRange(op, nameof(maxBatch), maxBatch, $"maxBatch {maxBatch}: a step has at least 1 sequence.");
        if (tableWidth < 1)
            ThrowHelper.OutOfRange(op, nameof(tableWidth), tableWidth, $"tableWidth {tableWidth}: a block table row holds at least 1 page.");
        if (maxTokens < 1)
            ThrowHelper.OutOfRange(op, nameof(maxTokens), maxTokens, $"maxTokens {maxTokens}: a step has at least 1 new token.");
        long tableEntries = (long)maxBatch * tableWidth;
        if (tableEntries > Array.MaxLength)
            ThrowHelper.OutOfRange(op, nameof(tableWidth), tableWidth,
                $"maxBatch {maxBatch:N0} x tableWidth {tableWidth:N0} = {tableEntries:N0} block table entries, more than an array holds ({Array.MaxLength:N0}).");
        MaxBatch = maxBatch;
        TableWidth = tableWidth;
        MaxTokens = maxTokens;
        _blockTable = new int[tableEntries];
        _sequenceLengths = new int[maxBatch];
        _queryStarts = new int[maxBatch + 1];
        _positions = new int[maxTokens];
        _slotMapping = new int[maxTokens];
        _lastTokenIndex = new int[maxBatch];
        _blockTable.AsSpan().Fill(Unused);
        _slotMapping.AsSpan().Fill(Unused);
        _lastTokenIndex.AsSpan().Fill(Unused);
    }

    /// <summary>Most sequences in a step.</summary>
    public int MaxBatch { get; }

    /// <summary>Pages per block table row: the most pages a sequence may span.</summary>
    public int TableWidth { get; }

    /// <summary>Most new tokens in a step.</summary>
    public int MaxTokens { get; }

    /// <summary>The sizes of the step last built (all 0 before the first).</summary>
    public KvBatchCounts Counts { get; private set; }

    /// <summary><c>[MaxBatch, TableWidth]</c> row-major: each sequence's pages, then <see cref="Unused"/>.</summary>
    public ReadOnlySpan<int> BlockTable => _blockTable;

    /// <summary><c>[MaxBatch]</c>: keys of each sequence after this step (cached + count); 0 past the batch.</summary>
    public ReadOnlySpan<int> SequenceLengths => _sequenceLengths;

    /// <summary><c>[MaxBatch + 1]</c>: cumulative offsets of each sequence's new tokens; the token count past the batch.</summary>
    public ReadOnlySpan<int> QueryStarts => _queryStarts;

    /// <summary><c>[MaxTokens]</c>: each new token's position in its sequence; 0 past the step's tokens.</summary>
    public ReadOnlySpan<int> Positions => _positions;

    /// <summary><c>[MaxTokens]</c>: the cache slot of each new token; <see cref="Unused"/> past the step's tokens.</summary>
    public ReadOnlySpan<int> SlotMapping => _slotMapping;

    /// <summary><c>[MaxBatch]</c>: the row of each sequence's last new token; <see cref="Unused"/> past the batch.</summary>
    public ReadOnlySpan<int> LastTokenIndex => _lastTokenIndex;

    /// <summary>
    /// Lays out the step <paramref name="entries"/> (in order) into this layout's buffers, as
    /// <see cref="Fill"/> does, and returns (and keeps in <see cref="Counts"/>) its sizes. On an error the buffers
    /// are unchanged.
    /// </summary>
    public KvBatchCounts Build(KvBlockManager manager, ReadOnlySpan<KvBatchEntry> entries) =>
        Counts = FillCore(manager, entries, TableWidth, _blockTable, _sequenceLengths, _queryStarts, _positions, _slotMapping, _lastTokenIndex,
            $"{nameof(KvBatchLayout)}.{nameof(Build)}", ownBuffers: true);

    /// <summary>
    /// Writes the metadata of the step <paramref name="entries"/> into caller-owned buffers (pinned host memory,
    /// say) of the shapes <see cref="KvBatchLayout"/> describes, with <paramref name="tableWidth"/> pages per
    /// block table row; every element of every destination is written, past the step with padding. The manager
    /// must have reserved cached + count positions for each entry's sequence.
    /// <para>
    /// Checks, in this order, before anything is written: <paramref name="tableWidth"/> &gt;= 1; at least one
    /// entry; room for the batch in every destination; each entry's count &gt;= 1 and cached &gt;= 0, its sequence
    /// live and not already in the step, its positions reserved and its pages within a row; room for the tokens;
    /// no two destinations overlapping. A failed check throws an <see cref="ArgumentException"/> (or
    /// <see cref="ArgumentOutOfRangeException"/>) that names the entry or destination.
    /// </para>
    /// </summary>
    public static KvBatchCounts Fill(KvBlockManager manager, ReadOnlySpan<KvBatchEntry> entries, int tableWidth,
        Span<int> blockTable, Span<int> sequenceLengths, Span<int> queryStarts, Span<int> positions, Span<int> slotMapping,
        Span<int> lastTokenIndex) =>
        FillCore(manager, entries, tableWidth, blockTable, sequenceLengths, queryStarts, positions, slotMapping, lastTokenIndex,
            $"{nameof(KvBatchLayout)}.{nameof(Fill)}", ownBuffers: false);

    /// <summary>
    /// <see cref="Fill"/>, with errors that start with <paramref name="op"/>; <paramref name="ownBuffers"/> when the
    /// destinations are a layout's own, sized by maxBatch and maxTokens, so that a step too large names those.
    /// </summary>
    static KvBatchCounts FillCore(KvBlockManager manager, ReadOnlySpan<KvBatchEntry> entries, int tableWidth,
        Span<int> blockTable, Span<int> sequenceLengths, Span<int> queryStarts, Span<int> positions, Span<int> slotMapping,
        Span<int> lastTokenIndex, string op, bool ownBuffers)
    {
        if (manager is null)
            ThrowHelper.ArgumentNull(op, nameof(manager));
        if (tableWidth < 1)
            ThrowHelper.OutOfRange(op, nameof(tableWidth), tableWidth, $"tableWidth {tableWidth}: a block table row holds at least 1 page.");
        int batch = entries.Length;
        if (batch == 0)
            ThrowHelper.Argument(op, nameof(entries), "the step has no sequences.");
        if (ownBuffers)
        {
            CheckRoom(op, batch, "sequences", sequenceLengths.Length, nameof(entries), "the layout (maxBatch)");
        }
        else
        {
            CheckRoom(op, batch, "sequences", sequenceLengths.Length, nameof(sequenceLengths));
            CheckRoom(op, batch, "sequences", lastTokenIndex.Length, nameof(lastTokenIndex));
            CheckRoom(op, batch, "sequences", queryStarts.Length - 1, nameof(queryStarts), $"{nameof(queryStarts)} (batch + 1 entries)");
            CheckRoom(op, batch, "sequences", blockTable.Length / tableWidth, nameof(blockTable),
                $"{nameof(blockTable)} ({blockTable.Length:N0} entries / tableWidth {tableWidth:N0})");
        }

        long tokens = 0;
        int maxQuery = 0, maxLength = 0;
        for (int b = 0; b < batch; b++)
        {
            var (sequence, cached, count) = entries[b];
            // the messages' names of the entry, made only for a message (a step's checks allocate nothing)
            string entry() => $"entries[{b}] (sequence {sequence})";
            if (count < 1)
                ThrowHelper.Argument(op, nameof(entries), $"{entry()} has count {count}: each sequence in a step brings at least 1 new token.");
            if (cached < 0)
                ThrowHelper.Argument(op, nameof(entries), $"{entry()} has cached {cached}: a token count is >= 0.");
            var pages = manager.PageSpan(op, sequence);
            for (int earlier = 0; earlier < b; earlier++) // a step holds few sequences: a scan, no set to allocate
                if (entries[earlier].Sequence == sequence)
                    ThrowHelper.Argument(op, nameof(entries), $"{entry()}: the sequence is already in the step as entries[{earlier}]; give each sequence once.");
            long length = (long)cached + count;
            int reserved = pages.Length * manager.PageSize;
            if (length > reserved)
                ThrowHelper.Argument(op, nameof(entries),
                    $"{entry()} needs {length:N0} positions (cached {cached:N0} + count {count:N0}), but {reserved:N0} are reserved; Reserve them first.");
            int pagesUsed = manager.PagesNeeded((int)length);
            if (pagesUsed > tableWidth)
                ThrowHelper.Argument(op, nameof(entries),
                    $"{entry()} spans {pagesUsed:N0} pages of {manager.PageSize} ({length:N0} positions), more than a block table row holds (tableWidth {tableWidth:N0}).");
            tokens += count;
            maxQuery = Math.Max(maxQuery, count);
            maxLength = Math.Max(maxLength, (int)length);
        }
        if (ownBuffers)
        {
            CheckRoom(op, tokens, "new tokens", positions.Length, nameof(entries), "the layout (maxTokens)");
        }
        else
        {
            CheckRoom(op, tokens, "new tokens", positions.Length, nameof(positions));
            CheckRoom(op, tokens, "new tokens", slotMapping.Length, nameof(slotMapping));
        }
        if (AnyOverlap(blockTable, sequenceLengths, queryStarts, positions, slotMapping, lastTokenIndex))
            ThrowHelper.Argument(op, nameof(blockTable), "two of the destinations overlap; each array needs memory of its own.");

        int pageSize = manager.PageSize;
        int t = 0;
        for (int b = 0; b < batch; b++)
        {
            var (sequence, cached, count) = entries[b];
            var pages = manager.PageSpan(op, sequence);
            int length = cached + count;
            int pagesUsed = manager.PagesNeeded(length);
            var row = blockTable.Slice(b * tableWidth, tableWidth);
            pages[..pagesUsed].CopyTo(row);
            row[pagesUsed..].Fill(Unused);
            sequenceLengths[b] = length;
            queryStarts[b] = t;
            for (int position = cached; position < length; position++, t++)
            {
                positions[t] = position;
                slotMapping[t] = pages[position / pageSize] * pageSize + position % pageSize;
            }
            lastTokenIndex[b] = t - 1;
        }
        queryStarts[batch] = t;

        blockTable[(batch * tableWidth)..].Fill(Unused);
        sequenceLengths[batch..].Clear();
        queryStarts[(batch + 1)..].Fill(t);
        positions[t..].Clear();
        slotMapping[t..].Fill(Unused);
        lastTokenIndex[batch..].Fill(Unused);
        return new KvBatchCounts(batch, t, maxQuery, maxLength);
    }

    /// <summary>
    /// An <see cref="ArgumentException"/> for <paramref name="parameter"/> when <paramref name="room"/> is less than
    /// <paramref name="needed"/>: "the step has 5 sequences, but sequenceLengths has room for 4."
    /// </summary>
    static void CheckRoom(string op, long needed, string what, int room, string parameter, string? holder = null)
    {
        if (needed > room)
            ThrowHelper.Argument(op, parameter,
                $"the step has {needed:N0} {what}, but {holder ?? parameter} has room for {Math.Max(room, 0):N0}.");
    }

    static bool AnyOverlap(Span<int> a, Span<int> b, Span<int> c, Span<int> d, Span<int> e, Span<int> f) =>
        a.Overlaps(b) || a.Overlaps(c) || a.Overlaps(d) || a.Overlaps(e) || a.Overlaps(f)
        || b.Overlaps(c) || b.Overlaps(d) || b.Overlaps(e) || b.Overlaps(f)
        || c.Overlaps(d) || c.Overlaps(e) || c.Overlaps(f)
        || d.Overlaps(e) || d.Overlaps(f)
        || e.Overlaps(f);
}
