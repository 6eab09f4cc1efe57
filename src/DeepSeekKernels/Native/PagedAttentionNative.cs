using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Paged causal attention through the hand-CUDA kernels on the runtime's stream: GQA (dsk_paged_attention) and DeepSeek's
/// MLA over a latent cache (dsk_paged_mla_attention), f32 or bf16 q, pages and output (each independent), path AUTO (the
/// library picks CUDA cores with split-K or tensor cores by shape, dtype and GPU). The step's metadata (block table,
/// lengths, query offsets) is device data, checked by the kernels: a bad value is recorded in the runtime's error word under
/// the op's <see cref="DeviceErrorSite"/>s (a <see cref="DeviceIndexException"/> at the next synchronisation) and its
/// sequence skipped. Split-K scratch comes from the backend's <see cref="AttentionWorkspace"/>, sized by the library's
/// *_workspace_size call for each batch shape.
/// </summary>
internal static class PagedAttentionNative
{
    /// <summary>GQA: q [tokens, qHeads, headDim], pages [pages, pageSize, kvHeads * (v)headDim], destination [tokens, qHeads, vHeadDim].</summary>
    public static void PagedAttention(DeviceRuntime runtime, AttentionWorkspace workspace, DeviceTensor q, DeviceTensor keyPages,
        DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape)
    {
        var p = Params(runtime, q, keyPages, valuePages.Pointer, batch, destination, shape, mla: false);
        runtime.Bind();
        (p.Workspace, p.WorkspaceBytes) = workspace.Reserve(DskNative.PagedAttentionWorkspaceSize(p, mla: false), "PagedAttention");
        DskNative.PagedAttention(p);
    }

    /// <summary>MLA: q [tokens, heads, latentDim + ropeDim], latentPages [pages, pageSize, latentDim + ropeDim], destination [tokens, heads, latentDim].</summary>
    public static void PagedMlaAttention(DeviceRuntime runtime, AttentionWorkspace workspace, DeviceTensor q, DeviceTensor latentPages,
        PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape)
    {
        var p = Params(runtime, q, latentPages, IntPtr.Zero, batch, destination, shape, mla: true);
        runtime.Bind();
        (p.Workspace, p.WorkspaceBytes) = workspace.Reserve(DskNative.PagedAttentionWorkspaceSize(p, mla: true), "PagedMlaAttention");
        DskNative.PagedMlaAttention(p);
    }

    /// <summary>The params of one call, workspace not yet set (the size query takes them as they are).</summary>
    internal static DskPagedAttentionParams Params(DeviceRuntime runtime, DeviceTensor q, DeviceTensor keyPages, IntPtr valuePages,
        PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape, bool mla) => new()
    {
        Q = q.Pointer,
        KeyPages = keyPages.Pointer,
        ValuePages = valuePages,
        BlockTable = batch.BlockTable.Pointer,
        SequenceLengths = batch.SequenceLengths.Pointer,
        QueryStarts = batch.QueryStarts.Pointer,
        Out = destination.Pointer,
        ErrorWord = runtime.Errors.Word.View.Pointer,
        Tokens = shape.Tokens,
        Batch = shape.Batch,
        MaxPages = shape.MaxPages,
        Pages = shape.Pages,
        PageSize = shape.PageSize,
        QHeads = shape.QHeads,
        KvHeads = shape.KvHeads,
        HeadDim = shape.HeadDim,
        VHeadDim = shape.VHeadDim,
        Scale = shape.Scale,
        QDType = (int)q.ElementType,
        PageDType = (int)keyPages.ElementType,
        OutDType = (int)destination.ElementType,
        Path = (int)DskAttentionPath.Auto,
        MaxSplits = 0,
        ErrorSiteBlockTable = (mla ? DeviceErrorSite.MlaBlockTable : DeviceErrorSite.AttentionBlockTable).Id,
        ErrorSiteLengths = (mla ? DeviceErrorSite.MlaLengths : DeviceErrorSite.AttentionLengths).Id,
        ErrorSiteQueryStarts = (mla ? DeviceErrorSite.MlaQueryStarts : DeviceErrorSite.AttentionQueryStarts).Id,
        Stream = runtime.CudaStreamHandle,
    };
}

/// <summary>
/// The split-K scratch of the native paged attention kernels, one per native backend: a device buffer grown (never shrunk)
/// when a batch shape needs more than it holds, so one allocation serves every step of a shape and a step can be captured
/// into a CUDA graph and replayed. It is never allocated while the runtime's stream is being captured: a shape that needs
/// more than the buffer holds must run once before its capture (the runtime's rule for every op), else the call throws. A
/// buffer that a capture recorded launches on is kept, not freed, when a bigger one replaces it (a graph may still replay
/// them); everything is freed with the runtime.
/// </summary>
internal sealed class AttentionWorkspace
{
    /// <summary>Allocation granule: sizes are rounded up to it, so nearby shapes share one buffer.</summary>
    internal const long Granule = 1L << 20;

    readonly DeviceRuntime _runtime;
    readonly Lock _lock = new();
    readonly List<DeviceBuffer<int>> _retired = []; // buffers graphs captured earlier may still read
    DeviceBuffer<int>? _buffer; // raw bytes; buffers are typed by element
    bool _captured; // a capture recorded launches that read _buffer
    bool _subscribed;

    public AttentionWorkspace(DeviceRuntime runtime) => _runtime = runtime;

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
