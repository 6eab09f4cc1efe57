using System.Runtime.CompilerServices;
using System.Text;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// A typed, strided view of one device allocation, as ggml's <c>ggml_tensor</c> (ne/nb) or a PyTorch tensor:
/// element type, shape (rank 1 to 4), element strides per dimension, and an offset into the allocation. Views are
/// cut without copies (<see cref="Slice(int, long, long)"/>, <see cref="Columns"/>, <see cref="Select"/>, <see cref="Reshape"/>); the
/// op API checks every tensor once (<see cref="TensorChecks"/>: bounds from shape x strides, alignment, overlap by
/// the allocation's byte range) and backends read <see cref="Pointer"/> and the strides.
/// </summary>
/// <remarks>
/// Element [i0, i1, i2, i3] is at <c>Offset + i0 * Stride(0) + i1 * Stride(1) + ...</c> elements into the allocation.
/// Strides are non-negative (0 broadcasts); a dimension may be 0 long (an empty tensor). Packed INT4
/// (<see cref="ElementType.Int4"/>) tensors count bytes, two values each, in their last dimension. A
/// <see cref="DeviceView{T}"/> converts implicitly to a rank-1 contiguous tensor, so every view-taking op
/// still takes views.
/// </remarks>
public readonly struct DeviceTensor
{
    /// <summary>Most dimensions a tensor has.</summary>
    public const int MaxRank = 4;

    readonly TensorDims _dims, _strides;

    internal DeviceTensor(IDeviceAllocation allocation, ElementType type, long offset, ReadOnlySpan<long> dims, ReadOnlySpan<long> strides)
    {
        if (dims.Length is < 1 or > MaxRank)
            throw new ArgumentOutOfRangeException(nameof(dims), dims.Length, $"A tensor has 1 to {MaxRank} dimensions.");
        if (strides.Length != dims.Length)
            throw new ArgumentException($"{dims.Length} dimensions need {dims.Length} strides; got {strides.Length}.", nameof(strides));
        Allocation = allocation;
        ElementType = type;
        Offset = offset;
        Rank = dims.Length;
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] < 0)
                throw new ArgumentOutOfRangeException(nameof(dims), dims[i], $"Dimension {i} is negative ({dims[i]}).");
            if (strides[i] < 0)
                throw new ArgumentOutOfRangeException(nameof(strides), strides[i], $"Stride {i} is negative ({strides[i]}).");
            _dims[i] = dims[i];
            _strides[i] = strides[i];
        }
        if (offset < 0)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "The offset is negative.");
        if (ElementCount > 0 && LastElement >= allocation.Length)
            throw new ArgumentOutOfRangeException(nameof(dims),
                $"A tensor {ShapeText} with strides {StridesText} at offset {offset} reaches element {LastElement}; the allocation has {allocation.Length}.");
    }

    /// <summary>A row-major contiguous tensor of <paramref name="shape"/> over <paramref name="view"/> (exactly that many elements).</summary>
    /// <exception cref="ArgumentException">The view is default or its length is not the shape's element count.</exception>
    public static DeviceTensor Of<T>(DeviceView<T> view, params ReadOnlySpan<long> shape) where T : unmanaged
    {
        if (view.IsNull)
            throw new ArgumentException("The view is default (it has no buffer).", nameof(view));
        Span<long> strides = stackalloc long[shape.Length];
        long count = RowMajor(shape, strides);
        if (count != view.Length)
            throw new ArgumentException($"A tensor of shape {Text(shape)} has {count} elements; the view has {view.Length}.", nameof(shape));
        return new DeviceTensor(view.Buffer!, view.ElementType, view.Start, shape, strides);
    }

    /// <summary>
    /// A tensor of any <paramref name="shape"/> and <paramref name="strides"/> (in elements) over the allocation of
    /// <paramref name="view"/>, starting at the view's first element; it must stay inside the allocation.
    /// </summary>
    public static DeviceTensor Strided<T>(DeviceView<T> view, ReadOnlySpan<long> shape, ReadOnlySpan<long> strides) where T : unmanaged
    {
        if (view.IsNull)
            throw new ArgumentException("The view is default (it has no buffer).", nameof(view));
        return new DeviceTensor(view.Buffer!, view.ElementType, view.Start, shape, strides);
    }

    /// <summary>The whole view as a rank-1 tensor.</summary>
    public static implicit operator DeviceTensor(DeviceView<float> view) => FromView(view);

    /// <summary>The whole view as a rank-1 tensor.</summary>
    public static implicit operator DeviceTensor(DeviceView<BFloat16> view) => FromView(view);

    /// <summary>The whole view as a rank-1 tensor.</summary>
    public static implicit operator DeviceTensor(DeviceView<int> view) => FromView(view);

    /// <summary>The whole buffer as a rank-1 tensor.</summary>
    public static implicit operator DeviceTensor(DeviceBuffer<float> buffer) => FromView(buffer.View);

    /// <summary>The whole buffer as a rank-1 tensor.</summary>
    public static implicit operator DeviceTensor(DeviceBuffer<BFloat16> buffer) => FromView(buffer.View);

    /// <summary>The whole buffer as a rank-1 tensor.</summary>
    public static implicit operator DeviceTensor(DeviceBuffer<int> buffer) => FromView(buffer.View);

    /// <summary>A rank-1 tensor over <paramref name="view"/> (default for a default view).</summary>
    public static DeviceTensor FromView<T>(DeviceView<T> view) where T : unmanaged =>
        view.IsNull ? default : new DeviceTensor(view.Buffer!, view.ElementType, view.Start, [view.Length], UnitStride);

    /// <summary>
    /// The stride of a flat view. An array, not a constant collection expression: a constant span of longs is read through
    /// RuntimeHelpers.CreateSpan, which unoptimised (Debug) code calls for real, allocating a field stub on every view made.
    /// </summary>
    static readonly long[] UnitStride = [1];

    internal IDeviceAllocation? Allocation { get; }

    /// <summary>True for <c>default</c> (no allocation): how an optional operand is left out.</summary>
    public bool IsNull => Allocation is null;

    /// <summary>The runtime that owns the allocation.</summary>
    public DeviceRuntime Runtime => (Allocation ?? throw NullTensor()).Runtime;

    /// <summary>The element type.</summary>
    public ElementType ElementType { get; }

    /// <summary>Number of dimensions (1 to 4).</summary>
    public int Rank { get; }

    /// <summary>Offset of element [0, ...] in the allocation, in elements.</summary>
    public long Offset { get; }

    /// <summary>Length of dimension <paramref name="dim"/> (negative counts from the last: -1 is the last).</summary>
    public long Dim(int dim) => _dims[Axis(dim)];

    /// <summary>Stride of dimension <paramref name="dim"/> in elements (negative counts from the last).</summary>
    public long Stride(int dim) => _strides[Axis(dim)];

    /// <summary>The shape, outermost first.</summary>
    public long[] Shape => ((ReadOnlySpan<long>)_dims)[..Rank].ToArray();

    /// <summary>The strides in elements, outermost first.</summary>
    public long[] Strides => ((ReadOnlySpan<long>)_strides)[..Rank].ToArray();

    /// <summary>Number of elements (the product of the dimensions).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            for (int i = 0; i < Rank; i++)
                n *= _dims[i];
            return n;
        }
    }

    /// <summary>Number of elements, as a view's length (the op API reads a contiguous activation as its flat elements).</summary>
    public long Length => ElementCount;

    /// <summary>Elements [start, start + length) of a rank-1 tensor (as <see cref="DeviceView{T}.Slice"/>).</summary>
    public DeviceTensor Slice(long start, long length)
    {
        if (Rank != 1)
            throw new InvalidOperationException($"Slice(start, length) cuts a rank-1 tensor; this one is {ShapeText}: use Slice(dim, start, length).");
        return Slice(0, start, length);
    }

    /// <summary>Bytes per element (1 for FP8 and for a packed pair of INT4 values).</summary>
    public int ElementSize => ElementType.Size();

    /// <summary>Whether the elements are row-major and dense (no gaps, no broadcasting).</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int i = Rank - 1; i >= 0; i--)
            {
                if (_dims[i] != 1 && _strides[i] != expected)
                    return false;
                expected *= _dims[i];
            }
            return true;
        }
    }

    /// <summary>Whether the last dimension is dense (stride 1): rows of a matrix may then be read as spans.</summary>
    public bool HasUnitInnerStride => _dims[Rank - 1] <= 1 || _strides[Rank - 1] == 1;

    /// <summary>Element offset of the last element reached (Offset for an empty tensor).</summary>
    internal long LastElement
    {
        get
        {
            long last = Offset;
            for (int i = 0; i < Rank; i++)
                last += (_dims[i] - 1) * _strides[i];
            return last;
        }
    }

    /// <summary>
    /// Byte range [begin, end) of the allocation that the tensor's elements lie in (empty for an empty tensor), in the
    /// allocation's coordinates (an arena's, for a window of one).
    /// </summary>
    internal (long Begin, long End) ByteSpan
    {
        get
        {
            long window = Allocation?.ByteOffset ?? 0;
            return ElementCount == 0
                ? (window + Offset * ElementSize, window + Offset * ElementSize)
                : (window + Offset * ElementSize, window + (LastElement + 1) * ElementSize);
        }
    }

    /// <summary>The device address of element [0, ...] (for native kernels; host memory on ILGPU's CPU accelerator).</summary>
    public IntPtr Pointer => (Allocation ?? throw NullTensor()).NativePtr + (nint)(Offset * ElementSize);

    /// <summary>Elements [start, start + length) of dimension <paramref name="dim"/>; the other dimensions unchanged.</summary>
    public DeviceTensor Slice(int dim, long start, long length)
    {
        int axis = Axis(dim);
        if (start < 0 || length < 0 || start > _dims[axis] - length)
            throw new ArgumentOutOfRangeException(nameof(start),
                $"Slice [{start}, {start}+{length}) of dimension {axis} is outside its length {_dims[axis]} (tensor {ShapeText}).");
        Span<long> dims = stackalloc long[Rank];
        ((ReadOnlySpan<long>)_dims)[..Rank].CopyTo(dims);
        dims[axis] = length;
        return new DeviceTensor(Allocation ?? throw NullTensor(), ElementType, Offset + start * _strides[axis], dims,
            ((ReadOnlySpan<long>)_strides)[..Rank]);
    }

    /// <summary>Columns [start, start + count) of the last dimension: a column block of a matrix, without a copy.</summary>
    public DeviceTensor Columns(long start, long count) => Slice(-1, start, count);

    /// <summary>Rows [start, start + count) of the first dimension.</summary>
    public DeviceTensor Rows(long start, long count) => Slice(0, start, count);

    /// <summary>Index <paramref name="index"/> of dimension <paramref name="dim"/>, which is dropped (rank - 1; a rank-1 tensor cannot drop one).</summary>
    public DeviceTensor Select(int dim, long index)
    {
        int axis = Axis(dim);
        if (Rank == 1)
            throw new InvalidOperationException("A rank-1 tensor has no dimension to drop; use Slice.");
        if ((ulong)index >= (ulong)_dims[axis])
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Index {index} is outside dimension {axis} of length {_dims[axis]}.");
        Span<long> dims = stackalloc long[Rank - 1], strides = stackalloc long[Rank - 1];
        for (int i = 0, j = 0; i < Rank; i++)
        {
            if (i == axis)
                continue;
            dims[j] = _dims[i];
            strides[j++] = _strides[i];
        }
        return new DeviceTensor(Allocation ?? throw NullTensor(), ElementType, Offset + index * _strides[axis], dims, strides);
    }

    /// <summary>
    /// The same elements under another shape with the same element count. Contiguous tensors take any shape; a
    /// strided one may only split or merge dimensions whose strides allow it (as <c>torch.view</c>), else this throws.
    /// </summary>
    public DeviceTensor Reshape(params ReadOnlySpan<long> shape)
    {
        var allocation = Allocation ?? throw NullTensor();
        Span<long> strides = stackalloc long[shape.Length];
        long count = RowMajor(shape, strides);
        if (count != ElementCount)
            throw new ArgumentException($"Shape {Text(shape)} has {count} elements; the tensor {ShapeText} has {ElementCount}.", nameof(shape));
        if (!IsContiguous && !TryViewStrides(shape, strides))
            throw new InvalidOperationException($"A tensor {ShapeText} with strides {StridesText} cannot be viewed as {Text(shape)} without a copy.");
        return new DeviceTensor(allocation, ElementType, Offset, shape, strides);
    }

    /// <summary>Splits or merges dimensions of a strided tensor where its strides allow (fills <paramref name="strides"/>).</summary>
    bool TryViewStrides(ReadOnlySpan<long> shape, Span<long> strides)
    {
        // Walk both shapes from the innermost dimension, grouping old dimensions that are dense with respect to each other.
        int oldAxis = Rank - 1, newAxis = shape.Length - 1;
        while (oldAxis >= 0 && newAxis >= 0)
        {
            long oldSize = _dims[oldAxis], stride = _strides[oldAxis];
            while (oldAxis > 0 && _strides[oldAxis - 1] == _strides[oldAxis] * _dims[oldAxis])
            {
                oldAxis--;
                oldSize *= _dims[oldAxis];
            }
            long newSize = 1;
            while (newAxis >= 0 && newSize < oldSize)
            {
                strides[newAxis] = stride * newSize;
                newSize *= shape[newAxis];
                newAxis--;
            }
            if (newSize != oldSize)
                return false;
            oldAxis--;
        }
        for (; newAxis >= 0; newAxis--)
        {
            if (shape[newAxis] != 1)
                return false;
            strides[newAxis] = 0;
        }
        return true;
    }

    /// <summary>The elements as a <see cref="DeviceView{T}"/>; the tensor must be contiguous and of element type <typeparamref name="T"/>.</summary>
    public DeviceView<T> AsView<T>() where T : unmanaged
    {
        var allocation = Allocation ?? throw NullTensor();
        if (ElementTypes.Of<T>() != ElementType)
            throw new InvalidOperationException($"The tensor holds {ElementType.Name()}, not {typeof(T).Name}.");
        if (!IsContiguous)
            throw new InvalidOperationException($"A tensor {ShapeText} with strides {StridesText} is not contiguous; it has no DeviceView.");
        return new DeviceView<T>((DeviceBuffer<T>)allocation, Offset, ElementCount);
    }

    /// <summary>"[2, 3, 4]".</summary>
    public string ShapeText => Text(((ReadOnlySpan<long>)_dims)[..Rank]);

    /// <summary>"[12, 4, 1]".</summary>
    public string StridesText => Text(((ReadOnlySpan<long>)_strides)[..Rank]);

    /// <summary>"bf16 [2, 3, 4] strides [12, 4, 1] + 5".</summary>
    public override string ToString() => IsNull ? "(no tensor)" : $"{ElementType.Name()} {ShapeText} strides {StridesText} + {Offset}";

    int Axis(int dim)
    {
        int axis = dim < 0 ? Rank + dim : dim;
        if ((uint)axis >= (uint)Rank)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"The tensor has {Rank} dimensions.");
        return axis;
    }

    static long RowMajor(ReadOnlySpan<long> shape, Span<long> strides)
    {
        if (shape.Length is < 1 or > MaxRank)
            throw new ArgumentOutOfRangeException(nameof(shape), shape.Length, $"A tensor has 1 to {MaxRank} dimensions.");
        long count = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] < 0)
                throw new ArgumentOutOfRangeException(nameof(shape), shape[i], $"Dimension {i} is negative ({shape[i]}).");
            strides[i] = count;
            count = checked(count * shape[i]);
        }
        return count;
    }

    internal static string Text(ReadOnlySpan<long> values)
    {
        var text = new StringBuilder("[");
        for (int i = 0; i < values.Length; i++)
            text.Append(i == 0 ? "" : ", ").Append(values[i]);
        return text.Append(']').ToString();
    }

    static InvalidOperationException NullTensor() => new("This DeviceTensor is default: it has no allocation.");

    [InlineArray(MaxRank)]
    struct TensorDims
    {
        long _element;
    }
}

/// <summary>What a tensor needs of the allocation under it: a <see cref="DeviceBuffer{T}"/>.</summary>
internal interface IDeviceAllocation
{
    DeviceRuntime Runtime { get; }

    /// <summary>The ILGPU buffer (identity of the allocation, for overlap checks).</summary>
    ILGPU.Runtime.MemoryBuffer Memory { get; }

    /// <summary>Elements allocated.</summary>
    long Length { get; }

    /// <summary>Address of element 0.</summary>
    IntPtr NativePtr { get; }

    /// <summary>Whether the memory is read-only (host memory used in place, see <see cref="DeviceBuffer{T}.IsReadOnly"/>).</summary>
    bool IsReadOnly { get; }

    /// <summary>Where element 0 lies in <see cref="Memory"/>, in bytes (0 unless a window of an arena).</summary>
    long ByteOffset { get; }
}
