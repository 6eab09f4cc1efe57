using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Device scratch of native kernels whose C ABI asks for a workspace (the split-K partials of paged attention, the per-chunk
/// expert counts of the MoE permutation), one per use per native backend: a device buffer grown (never shrunk)
/// when a batch shape needs more than it holds, so one allocation serves every step of a shape and a step can be captured
/// into a CUDA graph and replayed. It is never allocated while the runtime's stream is being captured: a shape that needs
/// more than the buffer holds must run once before its capture (the runtime's rule for every op), else the call throws. A
/// buffer that a capture recorded launches on is kept, not freed, when a bigger one replaces it (a graph may still replay
/// them); everything is freed with the runtime.
/// </summary>
internal sealed class KernelWorkspace
{
    /// <summary>Allocation granule: sizes are rounded up to it, so nearby shapes share one buffer.</summary>
    internal const long Granule = 1L << 20;

    readonly DeviceRuntime _runtime;
    readonly Lock _lock = new();
    readonly List<DeviceBuffer<int>> _retired = []; // buffers graphs captured earlier may still read
    DeviceBuffer<int>? _buffer; // raw bytes; buffers are typed by element
    bool _captured; // a capture recorded launches that read _buffer
    bool _subscribed;

    public KernelWorkspace(DeviceRuntime runtime) => _runtime = runtime;

    /// <summary>Bytes the current buffer holds (0 before the first split-K call).</summary>
    public long Capacity
    {
        get { lock (_lock) return _buffer == null ? 0 : _buffer.Length * sizeof(int); }
    }

    /// <summary>Buffers replaced after a capture used them, kept alive for the graphs (for tests).</summary>
    internal int Retired
    {
        get { lock (_lock) return _retired.Count; }
    }

    /// <summary>The size a request of <paramref name="bytes"/> allocates: at least double the old buffer, in whole granules.</summary>
    internal static long GrownSize(long bytes, long capacity) =>
        (Math.Max(bytes, 2 * capacity) + Granule - 1) / Granule * Granule;

    /// <summary>
    /// A device pointer to at least <paramref name="bytes"/> bytes of scratch (16-byte aligned) and the bytes the buffer
    /// holds, as the params take them; (0, 0) when <paramref name="bytes"/> is 0.
    /// </summary>
    /// <exception cref="InvalidOperationException">The stream is being captured and the buffer is too small.</exception>
    public (IntPtr Pointer, long Bytes) Reserve(long bytes, string op)
    {
        if (bytes <= 0)
            return (IntPtr.Zero, 0);
        IntPtr stream = _runtime.CudaStreamHandle;
        bool capturing = CudaDriver.IsCapturing(stream);
        lock (_lock)
        {
            long capacity = _buffer == null ? 0 : _buffer.Length * sizeof(int);
            if (bytes > capacity)
            {
                if (capturing)
                    throw new InvalidOperationException(
                        $"{op}: this batch shape needs {bytes} bytes of workspace, more than the {capacity} allocated, and the stream " +
                        "is being captured into a CUDA graph, during which no device memory is allocated: run the step once before capturing it.");
                if (_buffer != null)
                {
                    if (_captured)
                        _retired.Add(_buffer);
                    else
                    {
                        CudaDriver.Synchronize(stream); // launches already enqueued may still read it
                        _buffer.Dispose();
                    }
                }
                _buffer = null;
                _buffer = _runtime.Allocate<int>(GrownSize(bytes, capacity) / sizeof(int));
                _captured = false;
                if (!_subscribed)
                {
                    _runtime.Accelerator.Disposed += (_, _) => Free();
                    _subscribed = true;
                }
            }
            if (capturing)
                _captured = true;
            var buffer = _buffer!; // bytes > 0 and the buffer holds them
            return (buffer.View.Pointer, buffer.Length * sizeof(int));
        }
    }

    /// <summary>Frees every buffer (the runtime does this when it is disposed).</summary>
    void Free()
    {
        lock (_lock)
        {
            _buffer?.Dispose();
            _buffer = null;
            _retired.ForEach(b => b.Dispose());
            _retired.Clear();
        }
    }
}
