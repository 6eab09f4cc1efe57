using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeepSeekKernels.Numerics;

/// <summary>
/// bfloat16: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits). Stored as raw bits so
/// that ILGPU kernels and native code see the same layout as CUDA's <c>__nv_bfloat16</c>. Conversion from
/// float rounds to nearest, ties to even, and keeps NaN a (quiet) NaN, as PyTorch and CUDA do.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 2)]
public readonly struct BFloat16 : IEquatable<BFloat16>
{
    /// <summary>The raw bits.</summary>
    public readonly ushort Bits;

    BFloat16(ushort bits) => Bits = bits;

    /// <summary>Wraps raw bits.</summary>
    public static BFloat16 FromBits(ushort bits) => new(bits);

    /// <summary>Rounds <paramref name="value"/> to the nearest bfloat16 (ties to even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BFloat16 FromSingle(float value) => new(RoundToBits(BitConverter.SingleToUInt32Bits(value)));

    /// <summary>The exact float32 value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float ToSingle() => BitConverter.UInt32BitsToSingle((uint)Bits << 16);

    /// <summary>Round-to-nearest-even of float32 bits to bfloat16 bits; NaN stays NaN (quiet bit set).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort RoundToBits(uint f32Bits)
    {
        if ((f32Bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
            return (ushort)((f32Bits >> 16) | 0x0040u);
        return (ushort)((f32Bits + 0x7FFFu + ((f32Bits >> 16) & 1u)) >> 16);
    }

    public static explicit operator BFloat16(float value) => FromSingle(value);
    public static explicit operator float(BFloat16 value) => value.ToSingle();

    public static readonly BFloat16 Zero = new(0);
    public static readonly BFloat16 One = new(0x3F80);
    public static readonly BFloat16 NaN = new(0x7FC0);
    public static readonly BFloat16 PositiveInfinity = new(0x7F80);
    public static readonly BFloat16 NegativeInfinity = new(0xFF80);

    public bool IsNaN => (Bits & 0x7FFF) > 0x7F80;

    /// <summary>
    /// How many bf16 steps lie between two non-NaN values (0 when equal, 1 for neighbours; +0 and -0 are
    /// 0 apart): the measure GPU-vs-reference tests use, since a different summation order may move a
    /// result across one rounding boundary.
    /// </summary>
    public static int UlpDistance(BFloat16 a, BFloat16 b)
    {
        static int Ordered(BFloat16 v) => (v.Bits & 0x8000) != 0 ? -(v.Bits & 0x7FFF) : v.Bits;
        return Math.Abs(Ordered(a) - Ordered(b));
    }

    /// <summary>Bitwise equality (so NaN equals the same NaN bits, and +0 differs from -0).</summary>
    public bool Equals(BFloat16 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is BFloat16 b && Equals(b);
    public override int GetHashCode() => Bits;
    public override string ToString() => ToSingle().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
