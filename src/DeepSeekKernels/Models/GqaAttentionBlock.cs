using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// Grouped-query attention (Llama, Qwen2): q/k/v projections (with biases for Qwen2), half-split RoPE on q
/// and k, keys and values appended to the paged cache through the slot mapping, causal attention of every
/// sequence of the step over its pages, o_proj.
/// </summary>
internal sealed class GqaAttentionBlock(ModelShape s, WeightMatrix q, DeviceBuffer<float>? qBias, WeightMatrix k,
    DeviceBuffer<float>? kBias, WeightMatrix v, DeviceBuffer<float>? vBias, WeightMatrix o, RopeTable rope) : IAttentionBlock
{
    public void Forward(Ops ops, Workspace ws, in ForwardStep step, int layer, DeviceTensor input, DeviceTensor output)
    {
        long t = step.Tokens;
        int kvWidth = s.KvHeads * s.HeadDim;
        var qOut = ws.A(Q, t * s.Heads * s.HeadDim);
        var keys = ws.A(K, t * kvWidth);
        var values = ws.A(V, t * kvWidth);
        Projection.Linear(ops, ws, input, q, qBias?.View ?? default, qOut);
        Projection.Linear(ops, ws, input, k, kBias?.View ?? default, keys);
        Projection.Linear(ops, ws, input, v, vBias?.View ?? default, values);
        ops.Rope(qOut, step.Positions, rope, s.Heads, s.HeadDim, 0, RopeLayout.HalfSplit);
        ops.Rope(keys, step.Positions, rope, s.KvHeads, s.HeadDim, 0, RopeLayout.HalfSplit);
        var keyPages = step.Cache.KeyPages(layer);
        var valuePages = step.Cache.ValuePages(layer);
        ops.KvAppend(keys.Reshape(t, kvWidth), values.Reshape(t, kvWidth), step.Slots, keyPages, valuePages);
        var heads = ws.A(AttentionHeadsOut, t * s.Heads * s.HeadDim);
        ops.PagedAttention(qOut.Reshape(t, s.Heads, s.HeadDim), keyPages, valuePages, step.Batch, heads.Reshape(t, s.Heads, s.HeadDim),
            s.KvHeads, 1f / MathF.Sqrt(s.HeadDim));
        Projection.Linear(ops, ws, heads, o, default, output);
    }

    public void Dispose() { }
}
