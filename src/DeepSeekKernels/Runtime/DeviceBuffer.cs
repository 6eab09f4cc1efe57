using DeepSeekKernels.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// A typed, contiguous device allocation owned by one <see cref="DeviceRuntime"/>. Element types are the ones
/// <see cref="ElementTypes"/> knows (bf16, fp8 and int4 as raw bits). Ops take <see cref="DeviceView{T}"/>s,
/// to which a buffer converts implicitly.
/// </summary>
public sealed class DeviceBuffer<T> : IDisposable, IDeviceAllocation where T : unmanaged
{
    internal DeviceBuffer(DeviceRuntime runtime, MemoryBuffer1D<T, Stride1D.Dense> memory)
    {
        Runtime = runtime;
        Memory = memory;
        ElementType = ElementTypes.Of<T>();
    }

    /// <summary>The runtime that owns this buffer.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>The ILGPU buffer underneath.</summary>
    public MemoryBuffer1D<T, Stride1D.Dense> Memory { get; }

    /// <summary>The element type.</summary>
    public ElementType ElementType { get; }

    /// <summary>Number of elements.</summary>
    public long Length => Memory.Length;

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

    ILGPU.Runtime.MemoryBuffer IDeviceAllocation.Memory => Memory;

    IntPtr IDeviceAllocation.NativePtr => Memory.NativePtr;

    /// <summary>The whole buffer as a row-major tensor of <paramref name="shape"/> (its element count must be the buffer's length).</summary>
    public DeviceTensor AsTensor(params ReadOnlySpan<long> shape) => DeviceTensor.Of(View, shape);

    public static implicit operator DeviceView<T>(DeviceBuffer<T> buffer) => buffer.View;

    public void Dispose() => Memory.Dispose();
}
