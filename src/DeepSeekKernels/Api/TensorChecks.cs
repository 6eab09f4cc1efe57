using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The one validation routine for <see cref="DeviceTensor"/> operands, in the op API's fixed order: present and on
/// the right runtime, element type, rank and dimensions, layout (dense inner dimension, alignment), then overlaps by
/// the allocation's byte range (two tensors of one allocation overlap when their element byte ranges intersect, not
/// when they are the same object). Bounds hold by construction: a tensor cannot reach past its allocation.
/// Every failure throws naming the op and the parameter; nothing has been written.
/// </summary>
internal static class TensorChecks
{
    /// <summary>
    /// f32 or bf16, the activation types, as an array: a constant argument list would be a constant span, which unoptimised
    /// (Debug) code builds through RuntimeHelpers.CreateSpan, allocating on every op call.
    /// </summary>
    public static readonly ElementType[] Activation = [ElementType.F32, ElementType.BF16];

    /// <summary>
    /// A present tensor on <paramref name="runtime"/> (any runtime when null) of one of <paramref name="types"/>,
    /// with <paramref name="rank"/> dimensions, whose last dimension is dense (every op reads rows as vectors), and
    /// whose address is aligned to its element size.
    /// </summary>
    public static void Check(string op, string name, DeviceTensor tensor, DeviceRuntime? runtime, int rank, params ReadOnlySpan<ElementType> types)
    {
        if (tensor.IsNull)
            ThrowHelper.Argument(op, name, $"{name} is a default DeviceTensor (it has no allocation).");
        if (runtime != null && !ReferenceEquals(tensor.Runtime, runtime))
            ThrowHelper.Argument(op, name, $"{name} belongs to a different DeviceRuntime than the other operands.");
        if (types.Length > 0 && !types.Contains(tensor.ElementType))
            ThrowHelper.NotSupported(op, $"{name} holds {tensor.ElementType.Name()}; {op} takes {string.Join(" or ", types.ToArray().Select(t => t.Name()))}.");
        if (tensor.Rank != rank)
            ThrowHelper.Argument(op, name, $"{name} has {tensor.Rank} dimensions {tensor.ShapeText}; {op} takes {rank}.");
        if (!tensor.HasUnitInnerStride)
            ThrowHelper.Argument(op, name, $"{name}'s last dimension has stride {tensor.Stride(-1)}; {op} needs it dense (stride 1).");
        if (tensor.Pointer % tensor.ElementSize != 0)
            ThrowHelper.Argument(op, name, $"{name} starts at an address not aligned to its {tensor.ElementSize}-byte elements.");
    }

    /// <summary>An optional tensor: default passes, else as <see cref="Check"/>.</summary>
    public static void CheckOptional(string op, string name, DeviceTensor tensor, DeviceRuntime? runtime, int rank, params ReadOnlySpan<ElementType> types)
    {
        if (!tensor.IsNull)
            Check(op, name, tensor, runtime, rank, types);
    }

    /// <summary>Dimension <paramref name="dim"/> of <paramref name="tensor"/> is exactly <paramref name="expected"/>.</summary>
    public static void Dim(string op, string name, DeviceTensor tensor, int dim, long expected, SizeText what)
    {
        if (tensor.Dim(dim) != expected)
            ThrowHelper.Argument(op, name, $"{name} is {tensor.ShapeText}; its dimension {(dim < 0 ? tensor.Rank + dim : dim)} must be {what} = {expected}.");
    }

    /// <summary>Dimension <paramref name="dim"/> of <paramref name="tensor"/> is at least 1.</summary>
    public static void NotEmpty(string op, string name, DeviceTensor tensor, int dim, string what)
    {
        if (tensor.Dim(dim) < 1)
            ThrowHelper.Argument(op, name, $"{name} is {tensor.ShapeText}: it has no {what}.");
        if (tensor.Dim(dim) > int.MaxValue)
            ThrowHelper.Argument(op, name, $"{name} is {tensor.ShapeText}: more than {int.MaxValue} {what}.");
    }

    /// <summary>
    /// An f32 or bf16 input matrix [rows, <paramref name="cols"/>]: a rank-2 tensor with exactly that many columns (rows may be
    /// strided), or a rank-1 one holding a whole number of dense rows (how a <see cref="DeviceView{T}"/> arrives), which is
    /// viewed as [rows, cols]. At least one row.
    /// </summary>
    public static DeviceTensor InputRows(string op, string name, DeviceTensor x, DeviceRuntime? runtime, long cols, SizeText colsName)
    {
        if (!x.IsNull && x.Rank == 1)
        {
            Check(op, name, x, runtime, 1, Activation);
            int rows = OpChecks.Rows(op, name, x.Dim(0), cols, colsName);
            return x.Reshape(rows, cols);
        }
        Check(op, name, x, runtime, 2, Activation);
        Dim(op, name, x, 1, cols, colsName);
        NotEmpty(op, name, x, 0, "rows");
        return x;
    }

    /// <summary>
    /// An f32 or bf16 output matrix [<paramref name="rows"/>, <paramref name="cols"/>]: rank 2 of exactly that shape (rows may be
    /// strided), or rank 1 at least rows * cols long, of which the first rows * cols elements are used.
    /// </summary>
    public static DeviceTensor OutputRows(string op, string name, DeviceTensor y, DeviceRuntime? runtime, long rows, long cols, SizeText shape)
    {
        if (!y.IsNull && y.Allocation!.IsReadOnly)
            ThrowHelper.Argument(op, name, $"{name} is read-only memory (a weight used in place from a memory-mapped checkpoint); {op} writes it.");
        if (!y.IsNull && y.Rank == 1)
        {
            Check(op, name, y, runtime, 1, Activation);
            OpChecks.LongEnough(op, name, y.Dim(0), rows * cols, shape);
            return y.Slice(0, 0, rows * cols).Reshape(rows, cols);
        }
        Check(op, name, y, runtime, 2, Activation);
        Dim(op, name, y, 0, rows, "the input's rows");
        Dim(op, name, y, 1, cols, shape);
        return y;
    }

    /// <summary>How two tensors share memory: by allocation and byte range.</summary>
    public static Overlap Of(DeviceTensor a, DeviceTensor b)
    {
        if (a.IsNull || b.IsNull || a.ElementCount == 0 || b.ElementCount == 0)
            return Overlap.None;
        if (!ReferenceEquals(a.Allocation!.Memory, b.Allocation!.Memory))
            return Overlap.None;
        var (aBegin, aEnd) = a.ByteSpan;
        var (bBegin, bEnd) = b.ByteSpan;
        if (aEnd <= bBegin || bEnd <= aBegin)
            return Overlap.None;
        bool same = aBegin == bBegin && a.ElementType == b.ElementType && a.Rank == b.Rank
            && SameLayout(a, b);
        if (same)
            return Overlap.Exact;
        return ColumnWindowsApart(a, b) ? Overlap.None : Overlap.Partial;
    }

    /// <summary>Same shape and strides (a.Rank == b.Rank), compared in place: <see cref="DeviceTensor.Shape"/> makes arrays.</summary>
    static bool SameLayout(DeviceTensor a, DeviceTensor b)
    {
        for (int i = 0; i < a.Rank; i++)
            if (a.Dim(i) != b.Dim(i) || a.Stride(i) != b.Stride(i))
                return false;
        return true;
    }

    /// <summary>
    /// Whether two tensors whose byte ranges intersect still share no byte because they are different column blocks
    /// of the same rows (q, k and v of one fused projection; the latent and rope parts of one cache row): both have a
    /// dense last dimension and one row pitch R (bytes) that every outer stride is a multiple of, so every byte of a
    /// lies at (a's first byte + c) mod R for c below a's row width, and likewise for b; apart when those two windows
    /// of the circle of R bytes do not meet.
    /// </summary>
    static bool ColumnWindowsApart(DeviceTensor a, DeviceTensor b)
    {
        if (!RowPitch(a, out long pitch) || !RowPitch(b, out long other) || pitch != other)
            return false;
        long aWidth = a.Dim(-1) * a.ElementSize, bWidth = b.Dim(-1) * b.ElementSize;
        if (aWidth > pitch || bWidth > pitch)
            return false;
        long aStart = a.ByteSpan.Begin % pitch, bStart = b.ByteSpan.Begin % pitch;
        long gap = ((bStart - aStart) % pitch + pitch) % pitch; // where b starts, seen from a's start
        return gap >= aWidth && pitch - gap >= bWidth;
    }

    static bool RowPitch(DeviceTensor t, out long pitch)
    {
        pitch = 0;
        if (t.Rank < 2 || !t.HasUnitInnerStride)
            return false;
        pitch = t.Stride(-2) * t.ElementSize;
        if (pitch <= 0)
            return false;
        for (int i = 0; i < t.Rank - 1; i++)
            if (t.Dim(i) > 1 && t.Stride(i) * t.ElementSize % pitch != 0)
                return false;
        return true;
    }

    /// <summary>An output that shares no memory with <paramref name="other"/>.</summary>
    public static void Disjoint(string op, string outputName, DeviceTensor output, string otherName, DeviceTensor other)
    {
        if (Of(output, other) != Overlap.None)
            ThrowHelper.Argument(op, outputName, $"{outputName} overlaps {otherName} in memory; {op} needs them apart.");
    }

    /// <summary>An output that is exactly <paramref name="input"/> (same elements, same layout: in place) or shares nothing with it.</summary>
    public static void ExactOrDisjoint(string op, string outputName, DeviceTensor output, string inputName, DeviceTensor input)
    {
        if (Of(output, input) == Overlap.Partial)
            ThrowHelper.Argument(op, outputName, $"{outputName} partially overlaps {inputName}; an output may share an input's memory only exactly (in place).");
    }
}
