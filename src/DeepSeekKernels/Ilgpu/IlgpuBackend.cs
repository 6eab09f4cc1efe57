using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>The ILGPU kernels behind the op API, on one runtime's accelerator and stream.</summary>
internal sealed class IlgpuBackend(DeviceRuntime runtime) : KernelBackend
{
    readonly RmsNormIlgpu _rmsNorm = new(runtime);
    readonly ElementwiseIlgpu _elementwise = new(runtime);
    readonly Fp8ActivationIlgpu _fp8Activations = new(runtime);
    readonly LinearIlgpu _linear = new(runtime);
    readonly EmbeddingIlgpu _embedding = new(runtime);
    readonly DequantizeFp8Ilgpu _dequantizeFp8 = new(runtime);
    readonly RopeIlgpu _rope = new(runtime);
    readonly KvAppendIlgpu _kvAppend = new(runtime);
    readonly PagedAttentionIlgpu _pagedAttention = new(runtime);

    /// <summary>Device bytes the kernels allocated for themselves (split partials, the permutation's histograms): zero while every
    /// call brings its workspace, as the runner's steps do (for tests).</summary>
    internal long OwnScratchBytes => _pagedAttention.OwnScratchBytes + _moePermute.OwnScratchBytes;
    readonly MoeRouteIlgpu _moeRoute = new(runtime);
    readonly MoePermuteIlgpu _moePermute = new(runtime);
    readonly MoeCombineIlgpu _moeCombine = new(runtime);

    public override Backend Kind => Backend.Ilgpu;

    public override bool TakesKernelWorkspaces => true;

    /// <summary>
    /// What the kernels here do, for now: RMSNorm and add + RMSNorm over f32 or bf16 activations and f32 or bf16
    /// weights (all four pairs), and the small ops (CopyColumns, SiluAndMul, Softmax, Add, Scale) on f32 or bf16; all on
    /// dense rows; Linear, LinearSiluMul (the SiLU-and-mul epilogue in the same kernels) and HeadwiseLinear over every weight scheme (dense f32/bf16, FP8 blocks, INT4 groups) with f32 or
    /// bf16 activations and strided rows; Embedding of dense and INT4 tables into f32 or bf16; DequantizeFp8;
    /// Rope in place on f32 or bf16 x (both layouts); KvAppend of f32 or bf16 rows (strided allowed) into f32 or bf16 pages;
    /// PagedAttention and PagedMlaAttention with f32 or bf16 q and destination over f32 or bf16 pages, any head dims; the MoE
    /// ops: MoeRoute on f32 or bf16 logits, MoePermute and MoeCombine on f32 or bf16 rows, GroupedLinear and
    /// GroupedLinearSiluMul over every weight scheme Linear takes (the same kernels, a row tile per expert), f32 or bf16
    /// activations, strided destination rows. Every other
    /// signature is refused (or falls back to the reference, see Ops.WithReferenceFallback).
    /// </summary>
    public override bool Supports(in OpSignature op, out string? reason)
    {
        switch (op.Op)
        {
            case nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm):
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the RMSNorm kernels take f32 or bf16 activations, not {op.X.Name()}"
                    : op.Weight is not (ElementType.F32 or ElementType.BF16) || op.Scheme != null ? "the RMSNorm kernels take an f32 or bf16 weight vector"
                    : op.StridedRows ? "the RMSNorm kernels read dense rows"
                    : null;
                break;
            case nameof(Ops.CopyColumns) or nameof(Ops.SiluAndMul) or nameof(Ops.Softmax) or nameof(Ops.Add) or nameof(Ops.Scale):
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernel takes f32 or bf16, not {op.X.Name()}"
                    : op.Weight != null ? $"{op.Op} takes no weight"
                    : op.StridedRows ? $"the {op.Op} kernel reads dense rows"
                    : null;
                break;
            case nameof(Ops.QuantizeFp8Activations) or nameof(Ops.LinearW8A8) or nameof(Ops.GroupedLinearW8A8):
                // the op API admits only f32/bf16 activations and, for W8A8, FP8 128 x 128 weights; rows may be strided
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernel takes f32 or bf16 activations, not {op.X.Name()}"
                    : (op.Op != nameof(Ops.QuantizeFp8Activations)) != (op.Scheme == WeightScheme.Fp8Block) ? $"{op.Op} takes {(op.Op != nameof(Ops.QuantizeFp8Activations) ? "an FP8 block weight" : "no weight")}"
                    : null;
                break;
            case nameof(Ops.Linear) or nameof(Ops.LinearSiluMul) or nameof(Ops.HeadwiseLinear) or nameof(Ops.Embedding):
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernels take f32 or bf16 activations, not {op.X.Name()}"
                    : op.Scheme is null ? $"{op.Op} takes a weight matrix"
                    : op.Op == nameof(Ops.Embedding) && op.Scheme == WeightScheme.Fp8Block ? "an embedding table is dense or INT4"
                    : op.Op == nameof(Ops.Embedding) && op.StridedRows ? "the Embedding kernel writes dense rows"
                    : null;
                break;
            case nameof(Ops.DequantizeFp8):
                reason = op.Scheme != WeightScheme.Fp8Block ? "DequantizeFp8 takes an FP8 weight"
                    : op.X != ElementType.F32 ? $"DequantizeFp8 writes f32, not {op.X.Name()}"
                    : null;
                break;
            case nameof(Ops.Rope):
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the Rope kernel takes f32 or bf16 x, not {op.X.Name()}"
                    : op.Weight != null || op.Scheme != null ? "Rope takes no weight"
                    : op.StridedRows ? "the Rope kernel reads dense rows"
                    : null;
                break;
            case nameof(Ops.KvAppend) or nameof(Ops.PagedAttention) or nameof(Ops.PagedMlaAttention):
                // the op API admits f32/bf16 rows, q and destination and f32/bf16 pages; KvAppend's rows may be strided
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernels take f32 or bf16 activations, not {op.X.Name()}"
                    : op.Pages is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernels take f32 or bf16 pages"
                    : op.Weight != null || op.Scheme != null ? $"{op.Op} takes no weight"
                    : op.StridedRows && op.Op != nameof(Ops.KvAppend) ? $"the {op.Op} kernels read contiguous q"
                    : null;
                break;
            case nameof(Ops.MoeRoute) or nameof(Ops.MoePermute) or nameof(Ops.MoeCombine):
                // the op API admits f32/bf16 logits and rows, all dense
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernel takes f32 or bf16, not {op.X.Name()}"
                    : op.Weight != null || op.Scheme != null ? $"{op.Op} takes no weight"
                    : op.StridedRows ? $"the {op.Op} kernel reads dense rows"
                    : null;
                break;
            case nameof(Ops.GroupedLinear) or nameof(Ops.GroupedLinearSiluMul):
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernels take f32 or bf16 activations, not {op.X.Name()}"
                    : op.Scheme is null ? $"{op.Op} takes a weight matrix"
                    : null;
                break;
            default:
                reason = $"no {op.Op} kernel yet";
                break;
        }
        return reason == null;
    }

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        _rmsNorm.Run(x, residual, w, y, r, rows, cols, eps);

    public override void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) => _linear.Linear(x, w, bias, y);

    public override void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y) => _linear.LinearSiluMul(x, w, y);

    public override void HeadwiseLinear(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose) => _linear.Headwise(x, w, y, transpose);

    public override void Embedding(DeviceView<int> ids, WeightMatrix table, DeviceTensor y) => _embedding.Run(ids, table, y);

    public override void DequantizeFp8(WeightMatrix w, DeviceView<float> y) => _dequantizeFp8.Run(w, y);

    public override void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads, int headStride, int ropeOffset,
        RopeLayout layout) =>
        _rope.Run(x, positions, table, tokens, heads, headStride, ropeOffset, layout);

    public override void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages) =>
        _kvAppend.Run(keys, values, slotMapping, keyPages, valuePages);

    public override void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        _pagedAttention.Gqa(q, keyPages, valuePages, batch, destination, shape);

    public override void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        _pagedAttention.Mla(q, latentPages, batch, destination, shape);

    public override void MoeRoute(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights, int tokens,
        MoeRouting routing) =>
        _moeRoute.Run(logits, bias, ids, weights, tokens, routing);

    public override void MoePermute(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets, DeviceView<int> slotRows,
        int tokens, int topK, int hidden, int experts, DeviceView<int> workspace) =>
        _moePermute.Run(x, ids, permuted, offsets, slotRows, topK, hidden, experts, workspace);

    public override void GroupedLinear(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        _linear.Grouped(x, offsets, w, y, m, siluMul: false);

    public override void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        _linear.Grouped(x, offsets, w, y, m, siluMul: true);

    public override void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights, DeviceTensor y, int tokens,
        int topK, int hidden, bool accumulate) =>
        _moeCombine.Run(expertOutput, slotRows, weights, y, tokens, topK, hidden, accumulate);

    // The small kernels take contiguous f32 or bf16 operands of one element type (the op API's).
    public override void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns,
        int yOffset, int width, int rows) =>
        _elementwise.CopyColumns(x, xColumns, xOffset, y, yColumns, yOffset, width, rows);

    public override void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate) =>
        _elementwise.SiluAndMul(x, y, rows, intermediate);

    public override void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength) =>
        _elementwise.Softmax(x, y, rows, rowLength);

    public override void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z) => _elementwise.Add(x, y, z);

    public override void Scale(DeviceTensor x, float factor, DeviceTensor y) => _elementwise.Scale(x, factor, y);

    public override void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales) =>
        _fp8Activations.Quantize(x, q, scales);

    public override void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        _fp8Activations.Linear(qx, xScales, w, bias, y);

    public override void GroupedLinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        _fp8Activations.Grouped(qx, xScales, offsets, w, y, m);
}
