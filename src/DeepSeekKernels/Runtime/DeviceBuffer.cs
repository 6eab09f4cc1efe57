using DeepSeekKernels.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// A typed, contiguous device allocation owned by one <see cref="DeviceRuntime"/>: its own ILGPU buffer
/// (<see cref="DeviceRuntime.Allocate{T}"/>), or a window of a <see cref="DeviceArena"/> (one allocation with stable
/// addresses for the workspace, the KV pages and the step metadata). Element types are the ones
/// <see cref="ElementTypes"/> knows (bf16, fp8 and int4 as raw bits). Ops take <see cref="DeviceView{T}"/>s,
/// to which a buffer converts implicitly.
/// </summary>
public sealed class DeviceBuffer<T> : IDisposable, IDeviceAllocation where T : unmanaged
{
    readonly MemoryBuffer1D<T, Stride1D.Dense>? _own;
    readonly MemoryBuffer _allocation;

    internal DeviceBuffer(DeviceRuntime runtime, MemoryBuffer1D<T, Stride1D.Dense> memory)
    {
        Runtime = runtime;
        _own = memory;
        _allocation = memory;
        Length = memory.Length;
        IlgpuWhole = memory.View;
        ElementType = ElementTypes.Of<T>();
    }

    /// <summary>
    /// A window of <paramref name="length"/> elements at <paramref name="byteOffset"/> of an arena's allocation; or, with
    /// <paramref name="readOnlyHost"/>, the whole of a read-only host mapping (<see cref="DeviceRuntime.WrapReadOnlyHostMemory{T}"/>),
    /// which disposing this buffer releases (the mapped memory itself stays its owner's).
    /// </summary>
    internal unsafe DeviceBuffer(DeviceRuntime runtime, MemoryBuffer arena, long byteOffset, long length, bool readOnlyHost = false,
        bool fileMapping = false)
    {
        Runtime = runtime;
        _allocation = arena;
        IsReadOnly = readOnlyHost;
        IsFileMapping = readOnlyHost && fileMapping;
        ByteOffset = byteOffset;
        Length = length;
        IlgpuWhole = arena.AsRawArrayView(byteOffset, length * sizeof(T)).Cast<T>();
        ElementType = ElementTypes.Of<T>();
    }

    /// <summary>The runtime that owns this buffer.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>The ILGPU buffer underneath; a window of an arena has none of its own (it throws).</summary>
    public MemoryBuffer1D<T, Stride1D.Dense> Memory =>
        _own ?? throw new InvalidOperationException("This buffer is a window of a DeviceArena; it has no ILGPU buffer of its own (use View.IlgpuView).");

    /// <summary>The element type.</summary>
    public ElementType ElementType { get; }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Whether this buffer is a window of an arena (disposing it frees nothing; disposing the arena frees it).</summary>
    public bool IsArenaWindow => _own == null && !IsReadOnly;

    /// <summary>
    /// Whether this buffer is read-only host memory used in place (a weight tensor of a memory-mapped checkpoint on the CPU):
    /// copies into it, clearing it and ops writing to it are refused with an exception (the pages are mapped read-only).
    /// </summary>
    public bool IsReadOnly { get; }

    /// <summary>
    /// Whether this read-only buffer lies in a file's memory mapping (a checkpoint's weights), whose pages are the page
    /// cache's: dropping them from the page tables (Cpu.MappedRows) loses nothing. Other read-only host memory may be anonymous.
    /// </summary>
    internal bool IsFileMapping { get; }

    /// <summary>The ILGPU view of the whole buffer.</summary>
    internal ArrayView1D<T, Stride1D.Dense> IlgpuWhole { get; }

    /// <summary>Where the buffer starts in its allocation, in bytes (0 unless a window of an arena).</summary>
    internal long ByteOffset { get; }

    /// <summary>A view of the whole buffer.</summary>
    public DeviceView<T> View => new(this, 0, Length);

    /// <summary>A view of <paramref name="length"/> elements from <paramref name="start"/>.</summary>
    public DeviceView<T> Slice(long start, long length) => View.Slice(start, length);

    /// <summary>Copies <paramref name="source"/> into the start of the buffer.</summary>
    public void CopyFromHost(ReadOnlySpan<T> source) => View.Slice(0, source.Length).CopyFromHost(source);

    /// <summary>Copies the start of the buffer into <paramref name="destination"/> (waits for the stream).</summary>
    public void CopyToHost(Span<T> destination) => View.Slice(0, destination.Length).CopyToHost(destination);

    /// <summary>Copies the whole buffer into <paramref name="destination"/> (same length) on the device, on the runtime's stream.</summary>
    public void CopyTo(DeviceView<T> destination) => View.CopyTo(destination);

    /// <summary>Sets the whole buffer to all-zero bits, on the runtime's stream.</summary>
    public void Clear() => View.Clear();

    /// <summary>Copies the whole buffer to a new array.</summary>
    public T[] ToArray() => View.ToArray();

    ILGPU.Runtime.MemoryBuffer IDeviceAllocation.Memory => _allocation;

    long IDeviceAllocation.ByteOffset => ByteOffset;

    /// <summary>The device address of element 0.</summary>
    internal IntPtr NativePtr => _allocation.NativePtr + (nint)ByteOffset;

    IntPtr IDeviceAllocation.NativePtr => NativePtr;

    /// <summary>The whole buffer as a row-major tensor of <paramref name="shape"/> (its element count must be the buffer's length).</summary>
    public DeviceTensor AsTensor(params ReadOnlySpan<long> shape) => DeviceTensor.Of(View, shape);

    public static implicit operator DeviceView<T>(DeviceBuffer<T> buffer) => buffer.View;

    public void Dispose()
    {
        _own?.Dispose();
        if (IsReadOnly)
            _allocation.Dispose();
    }
}
