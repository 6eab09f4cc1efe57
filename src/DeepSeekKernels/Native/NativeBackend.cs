using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>The hand-CUDA kernels behind the op API, launched on the runtime's CUDA stream with ILGPU buffers' pointers.</summary>
internal sealed class NativeBackend : KernelBackend
{
    readonly DeviceRuntime _runtime;
    readonly KernelWorkspace _attentionWorkspace;
    readonly KernelWorkspace _moeWorkspace; // MoePermute's counting-sort scratch

    public NativeBackend(DeviceRuntime runtime)
    {
        if (!runtime.IsNativeAvailable(out string reason))
            throw new NotSupportedException("The native backend is not available: " + reason);
        _runtime = runtime;
        _attentionWorkspace = new KernelWorkspace(runtime);
        _moeWorkspace = new KernelWorkspace(runtime);
    }

    /// <summary>Device bytes the kernels allocated for themselves (split-K partials, the permutation's histograms): zero while
    /// every call brings its workspace, as the runner's steps do (for tests).</summary>
    internal long OwnScratchBytes => _attentionWorkspace.Capacity + _moeWorkspace.Capacity;

    /// <summary>The split-K scratch of this backend's paged attention calls (for tests).</summary>
    internal KernelWorkspace KernelWorkspace => _attentionWorkspace;

    public override Backend Kind => Backend.Native;

    public override bool TakesKernelWorkspaces => true;

    /// <summary>
    /// RMSNorm and the fused add + RMSNorm: dsk_rms_norm takes f32 or bf16 activations with an f32 or bf16 weight (all
    /// four pairs), and row strides, which the plain RMSNorm's strided form passes through (MLA norms the latent part of
    /// each kv_a row in place). Linear, LinearSiluMul (dsk_linear's SILU_MUL epilogue) and HeadwiseLinear: dsk_linear
    /// (dense bf16 x bf16 without a bias through cuBLASLt) over every weight scheme the loader makes (dense f32/bf16, FP8
    /// blocks of any size, INT4 groups), f32 or bf16 activations (x and y may differ), strided rows. GroupedLinear and
    /// GroupedLinearSiluMul: dsk_grouped_linear (dsk_linear's kernel families, one matrix per expert) over the same
    /// weights and activations. Embedding:
    /// dsk_embedding over dense and INT4 tables. DequantizeFp8: dsk_dequantize_fp8. QuantizeFp8Activations, LinearW8A8 and
    /// GroupedLinearW8A8 (sm_80+): dsk_quantize_fp8_act, dsk_linear_fp8_w8a8 and dsk_grouped_linear_fp8_w8a8. Rope: dsk_rope on f32 or bf16 heads, both layouts.
    /// KvAppend: dsk_kv_append, f32 or bf16 rows (strided) into f32 or bf16 pages. PagedAttention and PagedMlaAttention:
    /// dsk_paged_attention and dsk_paged_mla_attention, f32 or bf16 q and output over f32 or bf16 pages, heads of up to
    /// <see cref="MaxAttentionHeadDim"/> elements (split-K scratch from this backend's <see cref="KernelWorkspace"/>).
    /// MoeRoute, MoePermute, MoeCombine: dsk_moe_route (f32 or bf16 logits), dsk_moe_permute (f32 or bf16 rows, x and
    /// permuted of one type; scratch from a second grow-once workspace) and dsk_moe_combine (f32 or bf16 expert rows and output).
    /// CopyColumns, SiluAndMul, Softmax, Add and Scale: dsk_copy_columns, dsk_silu_and_mul, dsk_softmax and dsk_elementwise on
    /// f32 or bf16. Every other signature is refused (or falls back to the reference, see Ops.WithReferenceFallback).
    /// </summary>
    /// <summary>The widest query/key head the CUDA-core attention family runs (dsk_paged_attention's header; MLA's 576 fits).</summary>
    internal const int MaxAttentionHeadDim = 768;

    public override bool Supports(in OpSignature op, out string? reason)
    {
        reason = Refusal(op) ?? (op.Op is nameof(Ops.LinearW8A8) or nameof(Ops.GroupedLinearW8A8) ? Fp8ActivationNative.W8A8Unavailable(_runtime) : null);
        return reason == null;
    }

    /// <summary>Why the native kernels do not run <paramref name="op"/>, or null when they do (static: testable without a GPU).</summary>
    internal static string? Refusal(in OpSignature op) =>
        op.Op switch
        {
            nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_rms_norm takes f32 or bf16 activations, not {op.X.Name()}"
                : op.Weight is not (ElementType.F32 or ElementType.BF16) || op.Scheme != null ? "dsk_rms_norm takes an f32 or bf16 weight vector"
                : op.StridedRows && op.Op == nameof(Ops.AddRmsNorm) ? "the fused add + RMSNorm has no strided form in the op API"
                : null,
            nameof(Ops.Linear) or nameof(Ops.LinearSiluMul) or nameof(Ops.HeadwiseLinear) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_linear takes f32 or bf16 activations, not {op.X.Name()}"
                : !IsWeight(op) ? $"dsk_linear takes a dense f32/bf16, FP8 block or INT4 group weight, not {op}"
                : null,
            nameof(Ops.Embedding) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_embedding writes f32 or bf16 rows, not {op.X.Name()}"
                : !IsWeight(op) || op.Scheme == WeightScheme.Fp8Block ? "dsk_embedding takes a dense f32/bf16 or INT4 table"
                : op.StridedRows ? "Embedding writes dense rows"
                : null,
            nameof(Ops.QuantizeFp8Activations) or nameof(Ops.LinearW8A8) or nameof(Ops.GroupedLinearW8A8) =>
                // dsk_quantize_fp8_act, dsk_linear_fp8_w8a8 and dsk_grouped_linear_fp8_w8a8: f32 or bf16 activations, rows strided
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernel takes f32 or bf16 activations, not {op.X.Name()}"
                : (op.Op != nameof(Ops.QuantizeFp8Activations)) != (op.Scheme == WeightScheme.Fp8Block) ? $"{op.Op} takes {(op.Op != nameof(Ops.QuantizeFp8Activations) ? "an FP8 block weight" : "no weight")}"
                : null,
            nameof(Ops.Rope) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_rope takes f32 or bf16 heads, not {op.X.Name()}"
                : null,
            nameof(Ops.KvAppend) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_kv_append takes f32 or bf16 rows, not {op.X.Name()}"
                : op.Pages is not (ElementType.F32 or ElementType.BF16) ? $"dsk_kv_append writes f32 or bf16 pages, not {op.Pages?.Name() ?? "none"}"
                : null,
            nameof(Ops.PagedAttention) or nameof(Ops.PagedMlaAttention) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_{(op.Op == nameof(Ops.PagedAttention) ? "paged" : "paged_mla")}_attention takes f32 or bf16 queries and output, not {op.X.Name()}"
                : op.Pages is not (ElementType.F32 or ElementType.BF16) ? $"dsk_{(op.Op == nameof(Ops.PagedAttention) ? "paged" : "paged_mla")}_attention reads f32 or bf16 pages, not {op.Pages?.Name() ?? "none"}"
                : op.HeadDim > MaxAttentionHeadDim ? $"the CUDA-core attention kernels take heads of up to {MaxAttentionHeadDim} elements, not {op.HeadDim}"
                : null,
            nameof(Ops.MoeRoute) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_moe_route reads f32 or bf16 logits, not {op.X.Name()}"
                : null,
            nameof(Ops.MoePermute) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_moe_permute copies f32 or bf16 rows, not {op.X.Name()}"
                : null,
            nameof(Ops.MoeCombine) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_moe_combine takes f32 or bf16 expert rows and output, not {op.X.Name()}"
                : null,
            nameof(Ops.CopyColumns) or nameof(Ops.SiluAndMul) or nameof(Ops.Softmax) or nameof(Ops.Add) or nameof(Ops.Scale) =>
                // dsk_copy_columns, dsk_silu_and_mul, dsk_softmax, dsk_elementwise: the op API's contiguous rows, one dtype
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"{SmallOpKernel(op.Op)} takes f32 or bf16, not {op.X.Name()}"
                : op.Weight != null || op.Scheme != null ? $"{op.Op} takes no weight"
                : op.StridedRows ? $"{SmallOpKernel(op.Op)} reads the op API's dense rows"
                : null,
            nameof(Ops.GroupedLinear) or nameof(Ops.GroupedLinearSiluMul) =>
                op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_grouped_linear takes f32 or bf16 activations, not {op.X.Name()}"
                : !IsWeight(op) ? $"dsk_grouped_linear takes a dense f32/bf16, FP8 block or INT4 group weight, not {op}"
                : null,
            nameof(Ops.DequantizeFp8) =>
                op.X != ElementType.F32 || op.Scheme != WeightScheme.Fp8Block || op.Weight != ElementType.Fp8E4M3
                    ? "dsk_dequantize_fp8 takes an FP8 block weight to f32"
                    : null,
            _ => $"no {op.Op} kernel yet",
        };

    /// <summary>The C entry point behind a small op.</summary>
    static string SmallOpKernel(string op) => op switch
    {
        nameof(Ops.CopyColumns) => "dsk_copy_columns",
        nameof(Ops.SiluAndMul) => "dsk_silu_and_mul",
        nameof(Ops.Softmax) => "dsk_softmax",
        _ => "dsk_elementwise",
    };

    /// <summary>Whether the signature's weight is one a dsk_weight describes: dense f32/bf16, FP8 blocks, INT4 groups.</summary>
    static bool IsWeight(in OpSignature op) => (op.Scheme, op.Weight) is
        (WeightScheme.Dense, ElementType.F32 or ElementType.BF16) or (WeightScheme.Fp8Block, ElementType.Fp8E4M3)
        or (WeightScheme.Int4Group, ElementType.Int4);

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        RmsNormNative.Run(_runtime, x, residual, w, y, r, rows, cols, eps);

    public override void RmsNormRows<TW>(DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps) =>
        RmsNormNative.RunRows(_runtime, x, w, y, eps);

    public override void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        LinearNative.Linear(_runtime, x, w, bias, y);

    public override void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y) =>
        LinearNative.LinearSiluMul(_runtime, x, w, y);

    public override void HeadwiseLinear(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose) =>
        LinearNative.HeadwiseLinear(_runtime, x, w, y, transpose);

    public override void GroupedLinear(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        GroupedLinearNative.GroupedLinear(_runtime, x, offsets, w, y, m);

    public override void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        GroupedLinearNative.GroupedLinearSiluMul(_runtime, x, offsets, w, y, m);

    public override void Embedding(DeviceView<int> ids, WeightMatrix table, DeviceTensor y) =>
        EmbeddingNative.Run(_runtime, ids, table, y);

    public override void DequantizeFp8(WeightMatrix w, DeviceView<float> y) =>
        DequantizeFp8Native.Run(_runtime, w, y);

    public override void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales) =>
        Fp8ActivationNative.Quantize(_runtime, x, q, scales);

    public override void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads, int headStride,
        int ropeOffset, RopeLayout layout) =>
        RopeNative.Run(_runtime, x, positions, table, tokens, heads, headStride, ropeOffset, layout);

    public override void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages) =>
        KvAppendNative.Run(_runtime, keys, values, slotMapping, keyPages, valuePages);

    public override void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch,
        DeviceTensor destination, PagedAttentionShape shape) =>
        PagedAttentionNative.PagedAttention(_runtime, _attentionWorkspace, q, keyPages, valuePages, batch, destination, shape);

    public override void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        PagedAttentionNative.PagedMlaAttention(_runtime, _attentionWorkspace, q, latentPages, batch, destination, shape);

    public override void MoeRoute(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights,
        int tokens, MoeRouting routing) =>
        MoeNative.Route(_runtime, logits, bias, ids, weights, tokens, routing);

    public override void MoePermute(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets,
        DeviceView<int> slotRows, int tokens, int topK, int hidden, int experts, DeviceView<int> workspace) =>
        MoeNative.Permute(_runtime, _moeWorkspace, x, ids, permuted, offsets, slotRows, tokens, topK, hidden, experts, workspace);

    public override void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights,
        DeviceTensor y, int tokens, int topK, int hidden, bool accumulate) =>
        MoeNative.Combine(_runtime, expertOutput, slotRows, weights, y, tokens, topK, hidden, accumulate);

    public override void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns, int yOffset, int width, int rows) =>
        ElementwiseNative.CopyColumns(_runtime, x, xColumns, xOffset, y, yColumns, yOffset, width, rows);

    public override void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate) =>
        ElementwiseNative.SiluAndMul(_runtime, x, y, rows, intermediate);

    public override void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength) =>
        ElementwiseNative.Softmax(_runtime, x, y, rows, rowLength);

    public override void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z) => ElementwiseNative.Add(_runtime, x, y, z);

    public override void Scale(DeviceTensor x, float factor, DeviceTensor y) => ElementwiseNative.Scale(_runtime, x, factor, y);

    public override void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        Fp8ActivationNative.Linear(_runtime, qx, xScales, w, bias, y);

    public override void GroupedLinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        Fp8ActivationNative.GroupedLinear(_runtime, qx, xScales, offsets, w, y, m);
}
