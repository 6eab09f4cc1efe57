using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>Input values for the GPU benchmarks.</summary>
public static class BenchData
{
    // BenchmarkDotNet runs the global setup once per case and method (dozens of times in a GPU run); drawing
    // the values each time cost about 0.5 s per 64M of them, so they are drawn once and shared by every case
    // of the in-process run.
    static BFloat16[] _random = [];

    /// <summary>The first <paramref name="count"/> of one fixed sequence of random bf16 values in [-2, 2).</summary>
    public static ReadOnlySpan<BFloat16> RandomBf16(long count)
    {
        if (_random.Length < count)
        {
            var random = new Random(1);
            var values = new BFloat16[count];
            for (long i = 0; i < values.Length; i++)
                values[i] = BFloat16.FromSingle(random.NextSingle() * 4 - 2);
            _random = values;
        }
        return _random.AsSpan(0, checked((int)count));
    }
}
