using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Paged causal attention through the hand-CUDA kernels on the runtime's stream: GQA (dsk_paged_attention) and DeepSeek's
/// MLA over a latent cache (dsk_paged_mla_attention), f32 or bf16 q, pages and output (each independent), path AUTO (the
/// library picks CUDA cores with split-K or tensor cores by shape, dtype and GPU). The step's metadata (block table,
/// lengths, query offsets) is device data, checked by the kernels: a bad value is recorded in the runtime's error word under
/// the op's <see cref="DeviceErrorSite"/>s (a <see cref="DeviceIndexException"/> at the next synchronisation) and its
/// sequence skipped. Split-K scratch comes from the backend's <see cref="KernelWorkspace"/>, sized by the library's
/// *_workspace_size call for each batch shape.
/// </summary>
internal static class PagedAttentionNative
{
    /// <summary>GQA: q [tokens, qHeads, headDim], pages [pages, pageSize, kvHeads * (v)headDim], destination [tokens, qHeads, vHeadDim].</summary>
    public static void PagedAttention(DeviceRuntime runtime, KernelWorkspace workspace, DeviceTensor q, DeviceTensor keyPages,
        DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape)
    {
        var p = Params(runtime, q, keyPages, valuePages.Pointer, batch, destination, shape, mla: false);
        runtime.Bind();
        (p.Workspace, p.WorkspaceBytes) = workspace.Reserve(DskNative.PagedAttentionWorkspaceSize(p, mla: false), "PagedAttention");
        DskNative.PagedAttention(p);
    }

    /// <summary>MLA: q [tokens, heads, latentDim + ropeDim], latentPages [pages, pageSize, latentDim + ropeDim], destination [tokens, heads, latentDim].</summary>
    public static void PagedMlaAttention(DeviceRuntime runtime, KernelWorkspace workspace, DeviceTensor q, DeviceTensor latentPages,
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
