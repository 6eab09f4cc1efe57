using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// A backend that answers Supports as another backend would (a refusal function, e.g. <c>NativeBackend.Refusal</c>, which
/// needs no GPU) and runs every call it admits on the reference: a strict Ops over it runs a whole model exactly as far as
/// that backend would, so a model that completes proves the other backend has no gap on its path (it asks the same
/// questions, takes the same branches), and <see cref="Asked"/> lists the signatures it needed.
/// </summary>
internal sealed class ShadowBackend(Backend kind, Func<OpSignature, string?> refusal) : KernelBackend
{
    static readonly ReferenceBackend R = ReferenceBackend.Instance;

    /// <summary>Every signature Supports was asked about, in order (duplicates kept).</summary>
    public List<OpSignature> Asked { get; } = [];

    public override Backend Kind => kind;

    public override bool Supports(in OpSignature op, out string? reason)
    {
        lock (Asked)
            Asked.Add(op);
        reason = refusal(op);
        return reason == null;
    }

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y, DeviceView<T> r, int rows,
        int cols, float eps) => R.RmsNorm(x, residual, w, y, r, rows, cols, eps);
    public override void RmsNormRows<TW>(DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps) => R.RmsNormRows(x, w, y, eps);
    public override void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) => R.Linear(x, w, bias, y);
    public override void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y) => R.LinearSiluMul(x, w, y);
    public override void DequantizeFp8(WeightMatrix w, DeviceView<float> y) => R.DequantizeFp8(w, y);
    public override void HeadwiseLinear(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose) => R.HeadwiseLinear(x, w, y, transpose);
    public override void Embedding(DeviceView<int> ids, WeightMatrix table, DeviceTensor y) => R.Embedding(ids, table, y);
    public override void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads, int headStride, int ropeOffset,
        RopeLayout layout) => R.Rope(x, positions, table, tokens, heads, headStride, ropeOffset, layout);
    public override void Attention(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor y, AttentionShape shape) => R.Attention(q, k, v, y, shape);
    public override void MlaAttention(DeviceTensor q, DeviceTensor cache, DeviceTensor y, AttentionShape shape) => R.MlaAttention(q, cache, y, shape);
    public override void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages) =>
        R.KvAppend(keys, values, slotMapping, keyPages, valuePages);
    public override void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) => R.PagedAttention(q, keyPages, valuePages, batch, destination, shape);
    public override void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) => R.PagedMlaAttention(q, latentPages, batch, destination, shape);
    public override void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns, int yOffset, int width, int rows) =>
        R.CopyColumns(x, xColumns, xOffset, y, yColumns, yOffset, width, rows);
    public override void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate) => R.SiluAndMul(x, y, rows, intermediate);
    public override void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength) => R.Softmax(x, y, rows, rowLength);
    public override void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z) => R.Add(x, y, z);
    public override void Scale(DeviceTensor x, float factor, DeviceTensor y) => R.Scale(x, factor, y);
    /// <summary>Called after each MoeRoute with the experts it chose, [tokens, topK] (the calls' order is the model's).</summary>
    public Action<int[]>? OnRoute { get; init; }

    public override void MoeRoute(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights, int tokens,
        MoeRouting routing)
    {
        R.MoeRoute(logits, bias, ids, weights, tokens, routing);
        OnRoute?.Invoke(ids.Slice(0, tokens * routing.TopK).ToArray());
    }
    public override void MoePermute(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets, DeviceView<int> slotRows,
        int tokens, int topK, int hidden, int experts, DeviceView<int> workspace) => R.MoePermute(x, ids, permuted, offsets, slotRows, tokens, topK, hidden, experts, workspace);
    public override void GroupedLinear(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) => R.GroupedLinear(x, offsets, w, y, m);
    public override void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        R.GroupedLinearSiluMul(x, offsets, w, y, m);
    public override void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights, DeviceTensor y, int tokens,
        int topK, int hidden, bool accumulate) => R.MoeCombine(expertOutput, slotRows, weights, y, tokens, topK, hidden, accumulate);
    public override void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales) => R.QuantizeFp8Activations(x, q, scales);
    public override void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        R.LinearW8A8(qx, xScales, w, bias, y);

    public override void GroupedLinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        R.GroupedLinearW8A8(qx, xScales, offsets, w, y, m);
}
