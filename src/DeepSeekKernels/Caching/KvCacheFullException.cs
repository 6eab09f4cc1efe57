namespace DeepSeekKernels.Caching;

/// <summary>
/// A <see cref="KvBlockManager.Reserve"/> that needs more pages than are free: the scheduler's cue to preempt a
/// sequence or wait. Nothing was allocated. The message says how many pages were needed and how many are free.
/// </summary>
public sealed class KvCacheFullException(string message, int sequence, int pagesNeeded, int pagesFree)
    : InvalidOperationException(message)
{
    /// <summary>The sequence that asked for more room.</summary>
    public int Sequence { get; } = sequence;

    /// <summary>Pages it needed beyond the ones it already owned.</summary>
    public int PagesNeeded { get; } = pagesNeeded;

    /// <summary>Pages that were free.</summary>
    public int PagesFree { get; } = pagesFree;
}
