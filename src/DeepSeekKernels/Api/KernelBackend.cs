using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// One implementation of the ops, on device views and tensors. Activation tensors arrive flat (rank 1, contiguous)
/// unless the op takes strided rows, f32 or bf16 as the signature says (a backend that supports bf16 activations reads
/// and writes bf16 and accumulates in f32). The op API (<see cref="Ops"/>) validates arguments once
/// and then calls a backend, so backends assume valid, non-overlapping (or exactly aliased) arguments, views
/// cut to exactly the elements the op reads or writes, and shapes already derived (passed explicitly).
/// Optional operands are passed as <c>default</c> views.
/// <para>
/// A backend says which calls it runs (<see cref="Supports(in OpSignature, out string?)"/>: op, element types, weight
/// scheme, shape facts), and the op API asks before every call: an unsupported signature throws, or runs on the
/// reference with <see cref="Ops.WithReferenceFallback"/>. Every op but RMSNorm has a default body that throws
/// <see cref="NotImplementedException"/>, which only a backend whose Supports says yes without overriding the op can
/// reach (a bug). The reference backend supports every signature.
/// </para>
/// </summary>
internal abstract class KernelBackend
{
    public abstract Backend Kind { get; }

    /// <summary>
    /// Whether the kernels use a caller's scratch (<see cref="PagedBatch.Workspace"/>): the GPU backends' split-K
    /// partials. The host backends (reference, CPU) keep theirs on the host, so a KV cache made for them carves none.
    /// </summary>
    public virtual bool TakesKernelWorkspaces => false;

    /// <summary>
    /// Whether this backend runs a call of signature <paramref name="op"/> exactly as the op API specifies it; when
    /// not, <paramref name="reason"/> says why in a few words (e.g. "no Linear kernel yet"), else it is null.
    /// </summary>
    public abstract bool Supports(in OpSignature op, out string? reason);

    /// <summary>Whether this backend runs a call of signature <paramref name="op"/>.</summary>
    public bool Supports(in OpSignature op) => Supports(op, out _);

    /// <summary>The exception an op that Supports said yes to but this backend does not override throws: a bug in the backend.</summary>
    protected NotImplementedException Missing(string op) =>
        new($"The {Kind} backend says it supports {op} but does not implement it (a bug in the backend's Supports).");

    /// <summary>RMSNorm of [rows, cols] x into y; when residual is set, also r = x + residual (see RmsNormReference).</summary>
    public abstract void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps)
        where T : unmanaged where TW : unmanaged;

    /// <summary>RMSNorm of x [rows, cols] into y [rows, cols], rows strided (see <see cref="Ops.RmsNorm{TWeight}(DeviceTensor, DeviceView{TWeight}, DeviceTensor, int, float)"/>).</summary>
    public virtual void RmsNormRows<TW>(DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps) where TW : unmanaged =>
        throw Missing(nameof(Ops.RmsNorm));

    /// <summary>y [rows, w.Rows] = x [rows, w.Cols] @ w^T (+ bias [w.Rows]); w.Count = 1; x and y rank 2, rows may be strided.</summary>
    public virtual void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        throw Missing(nameof(Ops.Linear));

    /// <summary>y [rows, w.Rows / 2] = silu(x @ gate^T) * (x @ up^T), gate = w's first half of rows (see <see cref="Ops.LinearSiluMul"/>); x and y rank 2, rows may be strided.</summary>
    public virtual void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y) =>
        throw Missing(nameof(Ops.LinearSiluMul));

    /// <summary>y [Count, Rows, Cols] = dequantised FP8 w.</summary>
    public virtual void DequantizeFp8(WeightMatrix w, DeviceView<float> y) =>
        throw Missing(nameof(Ops.DequantizeFp8));

    /// <summary>y[t, h, :] = w[h] @ x[t, h, :] (or w[h]^T @ x[t, h, :] when transpose) for h &lt; w.Count; x and y rank 3, any outer strides.</summary>
    public virtual void HeadwiseLinear(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose) =>
        throw Missing(nameof(Ops.HeadwiseLinear));

    /// <summary>y [ids.Length, table.Cols] = table rows; ids outside [0, table.Rows) throw ArgumentOutOfRangeException.</summary>
    public virtual void Embedding(DeviceView<int> ids, WeightMatrix table, DeviceTensor y) =>
        throw Missing(nameof(Ops.Embedding));

    /// <summary>In place rotary embedding of x [tokens, heads, headStride] at positions [tokens].</summary>
    public virtual void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads,
        int headStride, int ropeOffset, RopeLayout layout) =>
        throw Missing(nameof(Ops.Rope));

    /// <summary>Causal grouped-query attention of one sequence (see <see cref="Ops.Attention"/>).</summary>
    public virtual void Attention(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor y,
        AttentionShape shape) =>
        throw Missing(nameof(Ops.Attention));

    /// <summary>Causal attention over a compressed MLA cache (see <see cref="Ops.MlaAttention"/>).</summary>
    public virtual void MlaAttention(DeviceTensor q, DeviceTensor cache, DeviceTensor y, AttentionShape shape) =>
        throw Missing(nameof(Ops.MlaAttention));

    /// <summary>Writes keys (and values) rows into their pages through the slot mapping (see <see cref="Ops.KvAppend"/>).</summary>
    public virtual void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages) =>
        throw Missing(nameof(Ops.KvAppend));

    /// <summary>Causal GQA of a batch over a paged cache (see <see cref="Ops.PagedAttention"/>).</summary>
    public virtual void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch,
        DeviceTensor destination, PagedAttentionShape shape) =>
        throw Missing(nameof(Ops.PagedAttention));

    /// <summary>MLA of a batch over a paged latent cache (see <see cref="Ops.PagedMlaAttention"/>); shape.VHeadDim is latentDim.</summary>
    public virtual void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        throw Missing(nameof(Ops.PagedMlaAttention));

    /// <summary>y[r, yOffset + c] = x[r, xOffset + c] for r &lt; rows, c &lt; width.</summary>
    public virtual void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns,
        int yOffset, int width, int rows) =>
        throw Missing(nameof(Ops.CopyColumns));

    /// <summary>y [rows, intermediate] = silu(x[:, :intermediate]) * x[:, intermediate:].</summary>
    public virtual void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate) =>
        throw Missing(nameof(Ops.SiluAndMul));

    /// <summary>Row-wise softmax of [rows, rowLength]; y may be exactly x.</summary>
    public virtual void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength) =>
        throw Missing(nameof(Ops.Softmax));

    /// <summary>z = x + y elementwise; z may be exactly x or y.</summary>
    public virtual void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z) =>
        throw Missing(nameof(Ops.Add));

    /// <summary>y = x * factor elementwise; y may be exactly x.</summary>
    public virtual void Scale(DeviceTensor x, float factor, DeviceTensor y) =>
        throw Missing(nameof(Ops.Scale));

    /// <summary>Top-k expert choice per token (see <see cref="Ops.MoeRoute"/>).</summary>
    public virtual void MoeRoute(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights,
        int tokens, MoeRouting routing) =>
        throw Missing(nameof(Ops.MoeRoute));

    /// <summary>Groups x's rows by expert (see <see cref="Ops.MoePermute"/>).</summary>
    public virtual void MoePermute(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets,
        DeviceView<int> slotRows, int tokens, int topK, int hidden, int experts, DeviceView<int> workspace) =>
        throw Missing(nameof(Ops.MoePermute));

    /// <summary>Per-expert row ranges of x [m, w.Cols] times w[e]^T into y [m, w.Rows] (rank 2, rows may be strided).</summary>
    public virtual void GroupedLinear(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        throw Missing(nameof(Ops.GroupedLinear));

    /// <summary>Per-expert gate/up projections with SiLU-and-mul (see <see cref="Ops.GroupedLinearSiluMul"/>).</summary>
    public virtual void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        throw Missing(nameof(Ops.GroupedLinearSiluMul));

    /// <summary>Weighted sum of each token's expert outputs (see <see cref="Ops.MoeCombine"/>).</summary>
    public virtual void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights,
        DeviceTensor y, int tokens, int topK, int hidden, bool accumulate) =>
        throw Missing(nameof(Ops.MoeCombine));

    /// <summary>q [m, cols] FP8 and scales [m, ceil(cols / 128)] from x [m, cols] (rank 2, rows may be strided): see <see cref="Ops.QuantizeFp8Activations"/>.</summary>
    public virtual void QuantizeFp8Activations(DeviceTensor x, DeviceView<Numerics.Float8E4M3> q, DeviceView<float> scales) =>
        throw Missing(nameof(Ops.QuantizeFp8Activations));

    /// <summary>y [m, w.Rows] (rank 2, rows may be strided) = W8A8 of qx [m, w.Cols] with xScales [m, ceil(w.Cols / 128)] and an FP8 128 x 128 w, Count 1: see <see cref="Ops.LinearW8A8"/>.</summary>
    public virtual void LinearW8A8(DeviceView<Numerics.Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        throw Missing(nameof(Ops.LinearW8A8));

    /// <summary>y [m, w.Rows] (rank 2, rows may be strided) = per expert e the W8A8 product of qx's rows offsets[e] .. offsets[e + 1] with matrix e of the FP8 128 x 128 stack w: see <see cref="Ops.GroupedLinearW8A8"/>.</summary>
    public virtual void GroupedLinearW8A8(DeviceView<Numerics.Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        throw Missing(nameof(Ops.GroupedLinearW8A8));
}

/// <summary>The shape of one attention call, derived and checked by the op API.</summary>
internal readonly record struct AttentionShape(
    int Tokens, int QHeads, int KvHeads, int HeadDim, int VHeadDim, int KvLength, int QueryStart, float Scale);
