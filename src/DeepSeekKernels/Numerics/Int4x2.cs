using System.Runtime.InteropServices;

namespace DeepSeekKernels.Numerics;

/// <summary>
/// Two 4-bit integers packed in one byte, low nibble first: element 2i is the low nibble of byte i. Read as
/// signed values (-8..7) through <see cref="Low"/> and <see cref="High"/>, or as unsigned ones (0..15) through
/// <see cref="LowUnsigned"/> and <see cref="HighUnsigned"/>: the bits are the same, the reader chooses. The
/// storage type of group-wise INT4 weights (<see cref="WeightMatrix.Int4"/> reads them unsigned, with a zero
/// point); a buffer of n of these holds 2n values.
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

    /// <summary>Packs two unsigned values in 0..15 (the codes of <see cref="WeightMatrix.Int4"/> weights).</summary>
    public static Int4x2 PackUnsigned(int low, int high)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(low, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(low, 15);
        ArgumentOutOfRangeException.ThrowIfLessThan(high, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(high, 15);
        return new((byte)(low | (high << 4)));
    }

    /// <summary>The first value (low nibble), sign-extended.</summary>
    public int Low => (sbyte)(Bits << 4) >> 4;

    /// <summary>The second value (high nibble), sign-extended.</summary>
    public int High => (sbyte)Bits >> 4;

    /// <summary>The first value (low nibble) as unsigned, 0..15.</summary>
    public int LowUnsigned => Bits & 0xF;

    /// <summary>The second value (high nibble) as unsigned, 0..15.</summary>
    public int HighUnsigned => Bits >> 4;

    public bool Equals(Int4x2 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is Int4x2 i && Equals(i);
    public override int GetHashCode() => Bits;
    public override string ToString() => $"({Low}, {High})";
}
