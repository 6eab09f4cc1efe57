using ILGPU;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// Scans of device-held indices by one warp, in index order, for kernels that report the first bad value to the runtime's
/// error word (<see cref="Runtime.DeviceErrors"/>) exactly as the reference does: the lowest bad index, whatever the order
/// in which groups run. Every lane of the warp makes the call and gets the same answer.
/// </summary>
internal static class DeviceIndexChecks
{
    /// <summary>
    /// The first i in [0, count) with values[offset + i] outside [0, bound), or -1. Each lane scans its own stride with
    /// independent loads and the warp takes the minimum, so a long scan (a prefill's positions or slots) does not wait on
    /// one load per warp-width of indices.
    /// </summary>
    public static int FirstOutOfRange(ArrayView<int> values, long offset, int count, long bound)
    {
        int first = int.MaxValue;
        for (int i = Warp.LaneIdx; i < count; i += Warp.WarpSize)
        {
            int v = values[offset + i];
            if (first == int.MaxValue && (v < 0 || v >= bound))
                first = i;
        }
        first = WarpReduce.Min(first);
        return first == int.MaxValue ? -1 : first;
    }

    /// <summary>The first i in [1, count) with values[i] &lt; values[i - 1], or -1.</summary>
    public static int FirstDecrease(ArrayView<int> values, int count)
    {
        for (int start = 1; start < count; start += Warp.WarpSize)
        {
            int i = start + Warp.LaneIdx;
            int bad = i < count && values[i] < values[i - 1] ? i : int.MaxValue;
            bad = WarpReduce.Min(bad);
            if (bad != int.MaxValue)
                return bad;
        }
        return -1;
    }

    /// <summary>
    /// Lane 0 records a bad value in the error word unless one is recorded already (compare-and-swap of word[0] from 0 to
    /// the site, then index, value, bound and the out-of-order flag); index, value and bound clamped to int as
    /// <see cref="Runtime.DeviceErrors"/> clamps them.
    /// </summary>
    public static void Report(ArrayView<int> errorWord, int site, long index, long value, long bound, bool outOfOrder)
    {
        if (Warp.LaneIdx != 0 || Atomic.CompareExchange(ref errorWord[0], 0, site) != 0)
            return;
        errorWord[1] = (int)(index < int.MaxValue ? index : int.MaxValue);
        errorWord[2] = (int)(value < int.MinValue ? int.MinValue : value > int.MaxValue ? int.MaxValue : value);
        errorWord[3] = (int)(bound < int.MaxValue ? bound : int.MaxValue);
        errorWord[4] = outOfOrder ? 1 : 0;
    }
}
