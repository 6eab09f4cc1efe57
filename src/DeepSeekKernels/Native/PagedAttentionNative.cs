using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Paged causal attention through the hand-CUDA kernels on the runtime's stream: GQA (dsk_paged_attention) and DeepSeek's
/// MLA over a latent cache (dsk_paged_mla_attention), f32 or bf16 q, pages and output (each independent), path AUTO (the
/// library picks CUDA cores with split-K or tensor cores by shape, dtype and GPU). The step's metadata (block table,
/// lengths, query offsets) is device data, checked by the kernels: a bad value is recorded in the runtime's error word under
/// the op's <see cref="DeviceErrorSite"/>s (a <see cref="DeviceIndexException"/> at the next synchronisation) and its
/// sequence skipped. Split-K scratch is the caller's <see cref="PagedBatch.Workspace"/> where given (the splits capped to
/// fit it), else the backend's <see cref="KernelWorkspace"/>, sized by the library's *_workspace_size call for each batch shape.
/// </summary>
internal static class PagedAttentionNative
{
    /// <summary>GQA: q [tokens, qHeads, headDim], pages [pages, pageSize, kvHeads * (v)headDim], destination [tokens, qHeads, vHeadDim].</summary>
    public static void PagedAttention(DeviceRuntime runtime, KernelWorkspace workspace, DeviceTensor q, DeviceTensor keyPages,
        DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape)
    {
        var p = Params(runtime, q, keyPages, valuePages.Pointer, batch, destination, shape, mla: false);
        runtime.Bind();
        SetWorkspace(ref p, batch, workspace, mla: false);
        DskNative.PagedAttention(p);
    }

    /// <summary>MLA: q [tokens, heads, latentDim + ropeDim], latentPages [pages, pageSize, latentDim + ropeDim], destination [tokens, heads, latentDim].</summary>
    public static void PagedMlaAttention(DeviceRuntime runtime, KernelWorkspace workspace, DeviceTensor q, DeviceTensor latentPages,
        PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape)
    {
        var p = Params(runtime, q, latentPages, IntPtr.Zero, batch, destination, shape, mla: true);
        runtime.Bind();
        SetWorkspace(ref p, batch, workspace, mla: true);
        DskNative.PagedMlaAttention(p);
    }

    /// <summary>
    /// The call's scratch: the caller's <see cref="PagedBatch.Workspace"/>, with max_splits set so the library's need fits it
    /// (<see cref="MaxSplitsFor"/>; checked against its *_workspace_size answer), or else the backend's grow-once workspace.
    /// </summary>
    static void SetWorkspace(ref DskPagedAttentionParams p, PagedBatch batch, KernelWorkspace workspace, bool mla)
    {
        string op = mla ? "PagedMlaAttention" : "PagedAttention";
        if (batch.Workspace.IsNull)
        {
            (p.Workspace, p.WorkspaceBytes) = workspace.Reserve(DskNative.PagedAttentionWorkspaceSize(p, mla), op);
            return;
        }
        long bytes = batch.Workspace.Length * sizeof(int);
        p.MaxSplits = MaxSplitsFor(bytes, p.Tokens, p.Batch, p.QHeads, p.VHeadDim);
        long need = DskNative.PagedAttentionWorkspaceSize(p, mla);
        if (need > bytes)
            throw new ArgumentException($"{op}: batch.Workspace holds {bytes:N0} bytes; the kernels need {need:N0} for this step even at " +
                $"{p.MaxSplits} split(s) of the context: size it with PagedBatch.WorkspaceBytes.", "batch");
        (p.Workspace, p.WorkspaceBytes) = (batch.Workspace.Pointer, bytes);
    }

    /// <summary>
    /// The most context splits whose partials fit in <paramref name="workspaceBytes"/> for a step of <paramref name="tokens"/>
    /// query rows: each split takes at most tokens x qHeads x (vHeadDim + 1) float32 and 32 bytes of rounding, after the
    /// fixed part (<see cref="PagedBatch.WorkspaceFixedBytes"/>); at least 1 (one split needs no partials).
    /// </summary>
    internal static int MaxSplitsFor(long workspaceBytes, long tokens, long batch, long qHeads, long vHeadDim)
    {
        long perSplit = checked(tokens * qHeads * (vHeadDim + 1) * sizeof(float) + 32);
        long room = workspaceBytes - PagedBatch.WorkspaceFixedBytes((int)Math.Min(batch, int.MaxValue - 1));
        return (int)Math.Clamp(room / perSplit, 1, int.MaxValue);
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
