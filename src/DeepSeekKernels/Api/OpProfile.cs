using System.Collections.Concurrent;
using System.Diagnostics;

namespace DeepSeekKernels;

/// <summary>
/// One line of <see cref="Ops.Profile"/>: the calls of one signature (and, for ops with a weight, one weight shape) and the
/// time they spent in the backend, from dispatch to return (on a GPU backend the profile synchronises after every call, so
/// the time is the op's own, not its enqueue).
/// </summary>
/// <param name="Signature">The op's signature, as <see cref="OpSignature.ToString"/> prints it.</param>
/// <param name="WeightRows">The weight's rows (0 for ops without a weight).</param>
/// <param name="WeightCols">The weight's columns (0 for ops without a weight).</param>
/// <param name="WeightCount">Matrices in the weight stack (0 for ops without a weight; the experts of a grouped op).</param>
/// <param name="Calls">How many calls.</param>
/// <param name="Seconds">Their time in the backend, in all.</param>
public sealed record OpProfileRecord(OpSignature Signature, int WeightRows, int WeightCols, int WeightCount, long Calls, double Seconds)
{
    /// <summary>The signature with the weight's shape, e.g. "Linear(x=f32, w=bf16 dense) [1024x4096]".</summary>
    public string Label => WeightRows == 0 ? Signature.ToString()
        : $"{Signature} [{(WeightCount > 1 ? $"{WeightCount}x" : "")}{WeightRows}x{WeightCols}]";
}

/// <summary>The running totals behind <see cref="Ops.Profile"/>; safe to add to from many threads.</summary>
internal sealed class OpProfiler
{
    readonly ConcurrentDictionary<(OpSignature Op, int Rows, int Cols, int Count), Totals> _totals = new();

    sealed class Totals
    {
        public long Calls;
        public long Ticks;
    }

    public void Add(in OpSignature op, WeightMatrix? weight, long ticks)
    {
        var totals = _totals.GetOrAdd((op, weight?.Rows ?? 0, weight?.Cols ?? 0, weight?.Count ?? 0), static _ => new Totals());
        Interlocked.Increment(ref totals.Calls);
        Interlocked.Add(ref totals.Ticks, ticks);
    }

    public IReadOnlyList<OpProfileRecord> Snapshot() =>
        _totals.Select(e => new OpProfileRecord(e.Key.Op, e.Key.Rows, e.Key.Cols, e.Key.Count, Interlocked.Read(ref e.Value.Calls),
                Interlocked.Read(ref e.Value.Ticks) / (double)Stopwatch.Frequency))
            .Where(r => r.Calls > 0)
            .OrderByDescending(r => r.Seconds).ThenBy(r => r.Label, StringComparer.Ordinal).ToArray();

    public void Reset() => _totals.Clear();
}
