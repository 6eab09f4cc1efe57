using System.Runtime.InteropServices;

namespace DeepSeekKernels.Caching;

/// <summary>
/// Which sequence owns which page of a paged KV cache (vLLM's block manager; FlashInfer's page table, kept on the
/// host). The cache is a pool of <see cref="PageCount"/> pages of <see cref="PageSize"/> token slots each; slot
/// <c>page * PageSize + offsetInPage</c> holds the keys and values of one position. A sequence owns a list of
/// pages in position order: position <c>p</c> lives in its page <c>p / PageSize</c>, at offset
/// <c>p % PageSize</c>. Its pages need not be contiguous nor ascending.
/// <para>
/// Pages are handed out lowest free page first, so the same calls give the same pages on every run.
/// Sequence ids count up from 0 and are never reused: a stale id of a freed sequence is an error that names it,
/// never a silent alias for a newer sequence's pages. Not thread-safe: one scheduler drives it.
/// </para>
/// </summary>
public sealed class KvBlockManager
{
    /// <summary>The smallest page size accepted, in tokens.</summary>
    public const int MinPageSize = 16;

    /// <summary>The largest page size accepted, in tokens.</summary>
    public const int MaxPageSize = 256;

    readonly Dictionary<int, List<int>> _pagesOf = [];
    readonly PriorityQueue<int, int> _returnedPages = new(); // freed pages, all below _firstUntouchedPage
    int _firstUntouchedPage; // pages from here on were never handed out, so they are free
    int _nextSequence;

    /// <summary>
    /// A cache of <paramref name="pageCount"/> pages of <paramref name="pageSize"/> tokens each, all free.
    /// Throws <see cref="ArgumentOutOfRangeException"/> when <paramref name="pageCount"/> &lt; 1,
    /// <paramref name="pageSize"/> is outside <see cref="MinPageSize"/>..<see cref="MaxPageSize"/>, or the cache
    /// has more slots than an int32 slot number reaches (pageCount * pageSize &gt; int.MaxValue).
    /// </summary>
    public KvBlockManager(int pageCount, int pageSize)
    {
        const string op = nameof(KvBlockManager);
        if (pageCount < 1)
            ThrowHelper.OutOfRange(op, nameof(pageCount), pageCount, $"pageCount {pageCount}: the cache needs at least 1 page.");
        if (pageSize is < MinPageSize or > MaxPageSize)
            ThrowHelper.OutOfRange(op, nameof(pageSize), pageSize,
                $"pageSize {pageSize} is outside {MinPageSize}..{MaxPageSize} tokens (MLA uses 64).");
        long slots = (long)pageCount * pageSize;
        if (slots > int.MaxValue)
            ThrowHelper.OutOfRange(op, nameof(pageCount), pageCount,
                $"{pageCount:N0} pages x {pageSize} tokens = {slots:N0} slots; slot numbers are int32, so at most {int.MaxValue:N0}.");
        PageCount = pageCount;
        PageSize = pageSize;
    }

    /// <summary>Pages in the cache.</summary>
    public int PageCount { get; }

    /// <summary>Token slots per page.</summary>
    public int PageSize { get; }

    /// <summary>Pages no sequence owns.</summary>
    public int FreePages => _returnedPages.Count + (PageCount - _firstUntouchedPage);

    /// <summary>Sequences added and not yet freed.</summary>
    public int SequenceCount => _pagesOf.Count;

    /// <summary>
    /// A new sequence that owns no pages, and its id: 0, 1, 2, ... in order of the calls. Ids of freed sequences
    /// are not given out again.
    /// </summary>
    public int AddSequence()
    {
        if (_nextSequence == int.MaxValue)
            throw new InvalidOperationException($"{nameof(KvBlockManager)}.{nameof(AddSequence)}: all {int.MaxValue:N0} sequence ids have been used; create a new manager.");
        int sequence = _nextSequence++;
        _pagesOf.Add(sequence, []);
        return sequence;
    }

    /// <summary>Pages that <paramref name="length"/> positions occupy: ceil(length / PageSize).</summary>
    public int PagesNeeded(int length)
    {
        if (length < 0)
            ThrowHelper.OutOfRange($"{nameof(KvBlockManager)}.{nameof(PagesNeeded)}", nameof(length), length, $"length {length} is negative.");
        return length / PageSize + (length % PageSize != 0 ? 1 : 0);
    }

    /// <summary>
    /// Makes <paramref name="sequence"/> own enough pages for positions 0..<paramref name="length"/>-1, taking
    /// the lowest free pages; true when it does. All or nothing: when too few pages are free, nothing changes
    /// and it returns false. A sequence never gives pages back here (that is <see cref="Truncate"/>).
    /// </summary>
    public bool TryReserve(int sequence, int length) => Grow(nameof(TryReserve), sequence, length);

    /// <summary>
    /// As <see cref="TryReserve"/>, but a <see cref="KvCacheFullException"/> (saying how many pages were needed and
    /// how many are free) when too few pages are free; then nothing has changed.
    /// </summary>
    public void Reserve(int sequence, int length)
    {
        if (Grow(nameof(Reserve), sequence, length))
            return;
        var pages = _pagesOf[sequence];
        int more = PagesNeeded(length) - pages.Count;
        throw new KvCacheFullException(
            $"{nameof(KvBlockManager)}.{nameof(Reserve)}: sequence {sequence} needs {more:N0} more pages of {PageSize} tokens to hold " +
            $"{length:N0} positions (it owns {pages.Count:N0}), but only {FreePages:N0} of {PageCount:N0} pages are free.",
            sequence, more, FreePages);
    }

    /// <summary>
    /// Gives back the pages of <paramref name="sequence"/> beyond the first PagesNeeded(<paramref name="length"/>),
    /// keeping positions 0..length-1 (prefix reuse, rollback of rejected draft tokens). <paramref name="length"/>
    /// may not exceed <see cref="ReservedLength"/>: growing is <see cref="Reserve"/>'s work.
    /// </summary>
    public void Truncate(int sequence, int length)
    {
        const string op = $"{nameof(KvBlockManager)}.{nameof(Truncate)}";
        var pages = PagesOf(nameof(Truncate), sequence);
        if (length < 0)
            ThrowHelper.OutOfRange(op, nameof(length), length, $"length {length} is negative.");
        int reserved = pages.Count * PageSize;
        if (length > reserved)
            ThrowHelper.OutOfRange(op, nameof(length), length,
                $"length {length:N0} is beyond the {reserved:N0} positions reserved for sequence {sequence}; truncate shortens, Reserve grows.");
        int keep = PagesNeeded(length);
        for (int i = keep; i < pages.Count; i++)
            ReturnPage(pages[i]);
        pages.RemoveRange(keep, pages.Count - keep);
    }

    /// <summary>Gives back every page of <paramref name="sequence"/> and forgets it; its id is not used again.</summary>
    public void Free(int sequence)
    {
        var pages = PagesOf(nameof(Free), sequence);
        foreach (int page in pages)
            ReturnPage(page);
        _pagesOf.Remove(sequence);
    }

    /// <summary>The pages <paramref name="sequence"/> owns, in position order (a copy: later calls do not change it).</summary>
    public IReadOnlyList<int> PagesOf(int sequence) => PagesOf(nameof(PagesOf), sequence).ToArray();

    /// <summary>Positions the pages of <paramref name="sequence"/> hold: its page count * PageSize.</summary>
    public int ReservedLength(int sequence) => PagesOf(nameof(ReservedLength), sequence).Count * PageSize;

    /// <summary>
    /// The cache slot of <paramref name="position"/> in <paramref name="sequence"/>:
    /// <c>page * PageSize + position % PageSize</c> with page = its (position / PageSize)-th page. Throws
    /// <see cref="ArgumentOutOfRangeException"/> when the position is negative or beyond the reserved pages.
    /// </summary>
    public int Slot(int sequence, int position)
    {
        var pages = PagesOf(nameof(Slot), sequence);
        if (position < 0 || position >= pages.Count * PageSize)
            ThrowHelper.OutOfRange($"{nameof(KvBlockManager)}.{nameof(Slot)}", nameof(position), position,
                $"position {position:N0} is outside the {pages.Count * PageSize:N0} positions reserved for sequence {sequence} " +
                $"({pages.Count:N0} pages of {PageSize}); reserve first.");
        return pages[position / PageSize] * PageSize + position % PageSize;
    }

    /// <summary>The work of <see cref="TryReserve"/>; errors name <paramref name="method"/>, the public method called.</summary>
    bool Grow(string method, int sequence, int length)
    {
        var pages = PagesOf(method, sequence);
        if (length < 0)
            ThrowHelper.OutOfRange($"{nameof(KvBlockManager)}.{method}", nameof(length), length, $"length {length} is negative.");
        int more = PagesNeeded(length) - pages.Count;
        if (more <= 0)
            return true;
        if (more > FreePages)
            return false;
        for (int i = 0; i < more; i++)
            pages.Add(TakeLowestFreePage());
        return true;
    }

    /// <summary>The pages of <paramref name="sequence"/> in position order, without a copy, for <see cref="KvBatchLayout"/>.</summary>
    internal ReadOnlySpan<int> PageSpan(string op, int sequence) => CollectionsMarshal.AsSpan(PagesOf(op, sequence));

    /// <summary>The live page list of <paramref name="sequence"/>, or an <see cref="ArgumentException"/> that says whether it was freed or never given.</summary>
    List<int> PagesOf(string method, int sequence)
    {
        if (_pagesOf.TryGetValue(sequence, out var pages))
            return pages;
        string op = method.Contains('.') ? method : $"{nameof(KvBlockManager)}.{method}";
        throw new ArgumentException(sequence >= 0 && sequence < _nextSequence
            ? $"{op}: sequence {sequence} was freed (sequence ids are not reused)."
            : $"{op}: sequence {sequence} is unknown (AddSequence has given " + (_nextSequence == 0 ? "no ids yet)." : $"ids 0..{_nextSequence - 1})."),
            nameof(sequence));
    }

    int TakeLowestFreePage() => _returnedPages.Count > 0 ? _returnedPages.Dequeue() : _firstUntouchedPage++;

    void ReturnPage(int page) => _returnedPages.Enqueue(page, page);
}
