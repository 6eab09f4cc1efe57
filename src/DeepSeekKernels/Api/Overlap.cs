using System.Runtime.InteropServices;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>How two operands share memory.</summary>
internal enum Overlap
{
    None,
    /// <summary>Both start at the same address: an in-place op, allowed where the op says so.</summary>
    Exact,
    /// <summary>Any other sharing: never allowed.</summary>
    Partial,
}

internal static class Overlaps
{
    /// <summary>Host memory: by address, whatever the element types.</summary>
    public static Overlap Of<TA, TB>(ReadOnlySpan<TA> a, ReadOnlySpan<TB> b) where TA : unmanaged where TB : unmanaged
    {
        if (a.IsEmpty || b.IsEmpty)
            return Overlap.None;
        if (!MemoryMarshal.AsBytes(a).Overlaps(MemoryMarshal.AsBytes(b), out int byteOffset))
            return Overlap.None;
        return byteOffset == 0 ? Overlap.Exact : Overlap.Partial;
    }

    /// <summary>Device memory: by buffer and byte range.</summary>
    public static Overlap Of<TA, TB>(DeviceView<TA> a, DeviceView<TB> b) where TA : unmanaged where TB : unmanaged
    {
        if (a.IsNull || b.IsNull || a.Length == 0 || b.Length == 0)
            return Overlap.None;
        if (!ReferenceEquals(a.Allocation, b.Allocation))
            return Overlap.None; // distinct allocations never share memory
        var (aBegin, aEnd) = a.ByteRange;
        var (bBegin, bEnd) = b.ByteRange;
        if (aEnd <= bBegin || bEnd <= aBegin)
            return Overlap.None;
        return aBegin == bBegin ? Overlap.Exact : Overlap.Partial;
    }
}
