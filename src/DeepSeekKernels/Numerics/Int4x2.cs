using System.Runtime.InteropServices;

namespace DeepSeekKernels.Numerics;

/// <summary>
/// Two signed 4-bit integers (-8..7) packed in one byte, low nibble first: element 2i is the low nibble of
/// byte i. The storage type of group-wise INT4 weights; a buffer of n of these holds 2n values.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 1)]
public readonly struct Int4x2 : IEquatable<Int4x2>
{
    /// <summary>The raw byte.</summary>
    public readonly byte Bits;

    Int4x2(byte bits) => Bits = bits;

    /// <summary>Wraps a raw byte.</summary>
    public static Int4x2 FromBits(byte bits) => new(bits);

    /// <summary>Packs two values in -8..7.</summary>
    public static Int4x2 Pack(int low, int high)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(low, -8);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(low, 7);
        ArgumentOutOfRangeException.ThrowIfLessThan(high, -8);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(high, 7);
        return new((byte)((low & 0xF) | ((high & 0xF) << 4)));
    }

    /// <summary>The first value (low nibble), sign-extended.</summary>
    public int Low => (sbyte)(Bits << 4) >> 4;

    /// <summary>The second value (high nibble), sign-extended.</summary>
    public int High => (sbyte)Bits >> 4;

    public bool Equals(Int4x2 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is Int4x2 i && Equals(i);
    public override int GetHashCode() => Bits;
    public override string ToString() => $"({Low}, {High})";
}
