using DeepSeekKernels.Caching;

namespace DeepSeekKernels.Models;

/// <summary>
/// The cache of one sequence: a sequence of a <see cref="PagedKvCache"/> with room for <see cref="Capacity"/>
/// positions (<see cref="CausalLanguageModel.CreateCache"/> makes a private pool of exactly that size).
/// </summary>
public sealed class KvCache : IDisposable
{
    internal KvCache(PagedKvCache pool, int sequence, int capacity)
    {
        Pool = pool;
        Sequence = sequence;
        Capacity = capacity;
    }

    /// <summary>The page pool the sequence's keys and values live in.</summary>
    public PagedKvCache Pool { get; }

    /// <summary>The sequence's id in <see cref="Pool"/>.</summary>
    public int Sequence { get; }

    /// <summary>Positions the cache can hold.</summary>
    public int Capacity { get; }

    /// <summary>Positions filled so far (the next token's position); setting a smaller value forgets the rest.</summary>
    public int Length
    {
        get => Pool.Length(Sequence);
        internal set => Pool.Truncate(Sequence, value);
    }

    /// <summary>Bytes allocated: the pool and its step metadata.</summary>
    public long Bytes => Pool.Bytes;

    /// <summary>Forgets every position (its pages go back to the pool).</summary>
    public void Clear() => Length = 0;

    public void Dispose() => Pool.Dispose();
}
