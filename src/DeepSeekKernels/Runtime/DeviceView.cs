using DeepSeekKernels.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Runtime;

/// <summary>A contiguous range of a <see cref="DeviceBuffer{T}"/>: what the device-resident ops take.</summary>
public readonly struct DeviceView<T> where T : unmanaged
{
    internal DeviceView(DeviceBuffer<T> buffer, long start, long length)
    {
        Buffer = buffer;
        Start = start;
        Length = length;
    }

    /// <summary>The buffer this view is part of (null for the default view).</summary>
    public DeviceBuffer<T>? Buffer { get; }

    /// <summary>Offset of the first element in <see cref="Buffer"/>.</summary>
    public long Start { get; }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>True for <c>default</c> (no buffer).</summary>
    public bool IsNull => Buffer is null;

    /// <summary>The runtime that owns the buffer.</summary>
    public DeviceRuntime Runtime => Owner.Runtime;

    /// <summary>The element type.</summary>
    public ElementType ElementType => ElementTypes.Of<T>();

    DeviceBuffer<T> Owner => Buffer ?? throw new InvalidOperationException("This DeviceView is default: it has no buffer.");

    /// <summary>A sub-range of this view.</summary>
    public DeviceView<T> Slice(long start, long length)
    {
        if ((ulong)start > (ulong)Length || (ulong)length > (ulong)(Length - start))
            throw new ArgumentOutOfRangeException(nameof(start),
                $"Slice [{start}, {start}+{length}) is outside a view of {Length} elements.");
        return new DeviceView<T>(Owner, Start + start, length);
    }

    /// <summary>The ILGPU view of this range.</summary>
    public ArrayView1D<T, Stride1D.Dense> IlgpuView => Owner.IlgpuWhole.SubView(Start, Length);

    /// <summary>The device address of the first element (for native kernels).</summary>
    public unsafe IntPtr Pointer => Owner.NativePtr + (nint)(Start * sizeof(T));

    /// <summary>Byte range [begin, end) inside the allocation (the buffer's, or its arena's), for overlap checks.</summary>
    internal unsafe (long Begin, long End) ByteRange =>
        (Owner.ByteOffset + Start * sizeof(T), Owner.ByteOffset + (Start + Length) * sizeof(T));

    /// <summary>The allocation the view lies in (an arena for a window), for overlap checks.</summary>
    internal ILGPU.Runtime.MemoryBuffer Allocation => ((IDeviceAllocation)Owner).Memory;

    /// <summary>This view as a row-major tensor of <paramref name="shape"/> (its element count must be the view's length).</summary>
    public DeviceTensor AsTensor(params ReadOnlySpan<long> shape) => DeviceTensor.Of(this, shape);

    /// <summary>Copies <paramref name="source"/> into this view (same length).</summary>
    public void CopyFromHost(ReadOnlySpan<T> source)
    {
        if (source.Length != Length)
            throw new ArgumentException($"source has {source.Length} elements, the view {Length}.", nameof(source));
        ThrowIfReadOnly("copy into");
        Runtime.Bind();
        if (!Runtime.IsCuda)
        {
            // ILGPU's CPU accelerator: host memory, copied in place after the stream (ILGPU's copy allocates on every call)
            Runtime.Stream.Synchronize();
            source.CopyTo(HostSpan);
            return;
        }
        IlgpuView.CopyFromCPU(Runtime.Stream, source);
    }

    /// <summary>The elements in place on ILGPU's CPU accelerator (host memory).</summary>
    unsafe Span<T> HostSpan => new((void*)Pointer, checked((int)Length));

    /// <summary>
    /// Copies this view into <paramref name="destination"/> (same length); waits for the stream first, and throws a
    /// <see cref="DeviceIndexException"/> when an op recorded a bad device-held index (the copy is then done but suspect).
    /// </summary>
    public void CopyToHost(Span<T> destination)
    {
        if (destination.Length != Length)
            throw new ArgumentException($"destination has {destination.Length} elements, the view {Length}.", nameof(destination));
        Runtime.Bind();
        if (Runtime.IsCuda)
            IlgpuView.CopyToCPU(Runtime.Stream, destination);
        Runtime.Stream.Synchronize();
        if (!Runtime.IsCuda)
            HostSpan.CopyTo(destination);
        Runtime.Errors.ThrowIfSet();
    }

    /// <summary>
    /// Copies this view into <paramref name="destination"/> (same length) on the device, enqueued on the
    /// runtime's stream (no host round trip, no wait). Both views must belong to the same runtime and must not
    /// overlap.
    /// </summary>
    public void CopyTo(DeviceView<T> destination)
    {
        if (destination.IsNull)
            throw new ArgumentException("destination is a default DeviceView (it has no buffer).", nameof(destination));
        if (destination.Length != Length)
            throw new ArgumentException($"destination has {destination.Length} elements, the view {Length}.", nameof(destination));
        if (!ReferenceEquals(destination.Runtime, Runtime))
            throw new ArgumentException("destination belongs to a different DeviceRuntime.", nameof(destination));
        if (ReferenceEquals(destination.Buffer, Buffer) && destination.Start < Start + Length && Start < destination.Start + destination.Length)
            throw new ArgumentException("destination overlaps this view.", nameof(destination));
        destination.ThrowIfReadOnly("copy into");
        if (Length == 0)
            return;
        Runtime.Bind();
        IlgpuView.CopyTo(Runtime.Stream, destination.IlgpuView);
    }

    /// <summary>Sets every element of this view to all-zero bits (0 for every element type), enqueued on the runtime's stream.</summary>
    public void Clear()
    {
        if (Length == 0)
            return;
        ThrowIfReadOnly("clear");
        Runtime.Bind();
        IlgpuView.MemSetToZero(Runtime.Stream);
    }

    /// <summary>Throws when the view is read-only host memory (<see cref="DeviceBuffer{T}.IsReadOnly"/>): writing would fault.</summary>
    internal void ThrowIfReadOnly(string what)
    {
        if (Buffer is { IsReadOnly: true })
            throw new InvalidOperationException($"Cannot {what} this view: it is read-only memory (a weight used in place from a memory-mapped checkpoint).");
    }

    /// <summary>Copies this view to a new array.</summary>
    public T[] ToArray()
    {
        var array = new T[Length];
        CopyToHost(array);
        return array;
    }
}
