using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeepSeekKernels.Numerics;

/// <summary>Span conversions between bfloat16 and float32, vectorised; same rounding as <see cref="BFloat16.FromSingle"/>.</summary>
public static class BFloat16Conversions
{
    /// <summary>Widens every element of <paramref name="source"/> to float32 (exact).</summary>
    public static void ToSingle(ReadOnlySpan<BFloat16> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        var bits = MemoryMarshal.Cast<BFloat16, ushort>(source);
        var output = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= bits.Length - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var (lower, upper) = Vector256.Widen(Vector256.Create(bits.Slice(i, Vector256<ushort>.Count)));
                (lower << 16).CopyTo(output.Slice(i));
                (upper << 16).CopyTo(output.Slice(i + Vector256<uint>.Count));
            }
        }
        for (; i < bits.Length; i++)
            output[i] = (uint)bits[i] << 16;
    }

    /// <summary>Rounds every element of <paramref name="source"/> to bfloat16 (nearest, ties to even; NaN stays NaN).</summary>
    public static void FromSingle(ReadOnlySpan<float> source, Span<BFloat16> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        var input = MemoryMarshal.Cast<float, uint>(source);
        var bits = MemoryMarshal.Cast<BFloat16, ushort>(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= input.Length - 2 * Vector256<uint>.Count; i += 2 * Vector256<uint>.Count)
            {
                var lower = Round(Vector256.Create(input.Slice(i, Vector256<uint>.Count)));
                var upper = Round(Vector256.Create(input.Slice(i + Vector256<uint>.Count, Vector256<uint>.Count)));
                Vector256.Narrow(lower, upper).CopyTo(bits.Slice(i));
            }
        }
        for (; i < input.Length; i++)
            bits[i] = BFloat16.RoundToBits(input[i]);
    }

    static Vector256<uint> Round(Vector256<uint> u)
    {
        var isNaN = Vector256.GreaterThan(u & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u));
        var rounded = (u + Vector256.Create(0x7FFFu) + ((u >> 16) & Vector256<uint>.One)) >> 16;
        var quietNaN = (u >> 16) | Vector256.Create(0x0040u);
        return Vector256.ConditionalSelect(isNaN, quietNaN, rounded);
    }
}
