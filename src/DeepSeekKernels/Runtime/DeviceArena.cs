using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// One device allocation carved into typed buffers (<see cref="Allocate{T}"/>) by a bump pointer, each starting a
/// multiple of <see cref="Alignment"/> bytes after the arena's start (on a GPU the start itself is 256-byte aligned, as
/// cudaMalloc returns it; ILGPU's CPU accelerator aligns less): the model's workspace, a KV cache's page pools and step metadata each live in one
/// arena, so their addresses never move (a captured step replays on them) and the bytes allocated are exactly
/// <see cref="Capacity"/>, the figure `dsk plan` computes from the same layout (<see cref="SizeOf"/>). The buffers are
/// windows: disposing one frees nothing; disposing the arena frees them all.
/// </summary>
public sealed class DeviceArena : IDisposable
{
    /// <summary>Every buffer starts at a multiple of this many bytes (16-byte vector loads and more need no less).</summary>
    public const int Alignment = 256;

    readonly DeviceRuntime _runtime;
    readonly MemoryBuffer1D<byte, Stride1D.Dense> _memory;

    internal DeviceArena(DeviceRuntime runtime, MemoryBuffer1D<byte, Stride1D.Dense> memory)
    {
        _runtime = runtime;
        _memory = memory;
    }

    /// <summary>Bytes allocated.</summary>
    public long Capacity => _memory.Length;

    /// <summary>Bytes handed out so far (alignment padding included).</summary>
    public long Used { get; private set; }

    /// <summary>Bytes an arena needs for buffers of <paramref name="bytes"/> each, in order: each rounded up to <see cref="Alignment"/>.</summary>
    public static long SizeOf(IEnumerable<long> bytes) => bytes.Aggregate(0L, (total, b) => checked(total + Align(b)));

    /// <summary><paramref name="bytes"/> rounded up to a multiple of <see cref="Alignment"/>.</summary>
    public static long Align(long bytes) => checked((bytes + Alignment - 1) / Alignment * Alignment);

    /// <summary>The next <paramref name="length"/> elements of the arena as a buffer.</summary>
    /// <exception cref="InvalidOperationException">The arena has no room left (it was sized for fewer or smaller buffers).</exception>
    public unsafe DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long bytes = checked(length * sizeof(T));
        if (Used + bytes > Capacity)
            throw new InvalidOperationException($"The arena holds {Capacity:N0} bytes, {Used:N0} used: {bytes:N0} more do not fit.");
        var buffer = new DeviceBuffer<T>(_runtime, _memory, Used, length);
        Used += Align(bytes);
        return buffer;
    }

    public void Dispose() => _memory.Dispose();
}
