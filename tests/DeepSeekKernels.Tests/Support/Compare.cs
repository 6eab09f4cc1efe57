using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Support;

/// <summary>Element-wise comparisons with a tolerance per dtype; NaN matches only NaN; failures say where.</summary>
public static class Compare
{
    /// <summary>
    /// Backend output against the reference: f32 within 2e-5 relative (+1e-6 absolute, for values near 0);
    /// bf16 within one unit in the last place (a different summation order can move a value across a
    /// rounding boundary, never further). NaN must be NaN in both.
    /// </summary>
    public static void Close<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, string what) where T : unmanaged
    {
        Assert.Equal(expected.Length, actual.Length);
        if (typeof(T) == typeof(BFloat16))
        {
            var e = System.Runtime.InteropServices.MemoryMarshal.Cast<T, BFloat16>(expected);
            var a = System.Runtime.InteropServices.MemoryMarshal.Cast<T, BFloat16>(actual);
            for (int i = 0; i < e.Length; i++)
            {
                if (e[i].IsNaN || a[i].IsNaN)
                {
                    Assert.True(e[i].IsNaN && a[i].IsNaN, $"{what}[{i}]: expected {e[i]}, got {a[i]}");
                    continue;
                }
                Assert.True(BFloat16.UlpDistance(e[i], a[i]) <= 1, $"{what}[{i}]: expected {e[i]}, got {a[i]} (more than 1 bf16 ulp apart)");
            }
            return;
        }
        var ef = TestData.ToFloat(expected);
        var af = TestData.ToFloat(actual);
        for (int i = 0; i < ef.Length; i++)
        {
            if (float.IsNaN(ef[i]) || float.IsNaN(af[i]))
            {
                Assert.True(float.IsNaN(ef[i]) && float.IsNaN(af[i]), $"{what}[{i}]: expected {ef[i]}, got {af[i]}");
                continue;
            }
            Assert.True(MathF.Abs(ef[i] - af[i]) <= 2e-5f * MathF.Abs(ef[i]) + 1e-6f, $"{what}[{i}]: expected {ef[i]}, got {af[i]}");
        }
    }

    /// <summary>
    /// Bit-for-bit equality, for outputs every backend computes with one exactly rounded operation. Any NaN
    /// matches any NaN: GPUs return a canonical NaN where the CPU keeps the input's payload.
    /// </summary>
    public static void Exact<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, string what) where T : unmanaged
    {
        Assert.Equal(expected.Length, actual.Length);
        var ef = TestData.ToFloat(expected);
        var af = TestData.ToFloat(actual);
        for (int i = 0; i < ef.Length; i++)
        {
            bool same = float.IsNaN(ef[i]) ? float.IsNaN(af[i]) : BitConverter.SingleToUInt32Bits(ef[i]) == BitConverter.SingleToUInt32Bits(af[i]);
            Assert.True(same, $"{what}[{i}]: expected {ef[i]}, got {af[i]} (bitwise)");
        }
    }
}
