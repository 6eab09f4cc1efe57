namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>
/// A memory-bound benchmark: says how many bytes one operation of a benchmark method moves (read + written),
/// and which method is the copy baseline, so the report can give GB/s and the share of copy bandwidth.
/// </summary>
public interface IBandwidthBenchmark
{
    /// <summary>Bytes read plus bytes written by one operation of <paramref name="method"/> with the current parameters.</summary>
    long BytesMoved(string method);
}
