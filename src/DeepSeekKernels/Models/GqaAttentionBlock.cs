using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// Grouped-query attention (Llama, Qwen2): q/k/v projections (with biases for Qwen2), half-split RoPE on q
/// and k, keys and values written straight into the cache rows, causal attention over the cache, o_proj.
/// </summary>
internal sealed class GqaAttentionBlock(ModelShape s, WeightMatrix q, DeviceBuffer<float>? qBias, WeightMatrix k,
    DeviceBuffer<float>? kBias, WeightMatrix v, DeviceBuffer<float>? vBias, WeightMatrix o, RopeTable rope) : IAttentionBlock
{
    public (int KeyWidth, int ValueWidth) CacheWidths => (s.KvHeads * s.HeadDim, s.KvHeads * s.HeadDim);

    public void Forward(Ops ops, Workspace ws, KvCache cache, int layer, int start, int count, DeviceView<float> input, DeviceView<float> output)
    {
        long t = count;
        int kvWidth = s.KvHeads * s.HeadDim;
        var positions = ws.I(Positions, t);
        var qOut = ws.F(Q, t * s.Heads * s.HeadDim);
        var keys = cache.Keys(layer);
        var values = cache.Values(layer);
        var kRows = keys.Slice((long)start * kvWidth, t * kvWidth);
        var vRows = values.Slice((long)start * kvWidth, t * kvWidth);
        ops.Linear(input, q, qBias?.View ?? default, qOut);
        ops.Linear(input, k, kBias?.View ?? default, kRows);
        ops.Linear(input, v, vBias?.View ?? default, vRows);
        ops.Rope(qOut, positions, rope, s.Heads, s.HeadDim, 0, RopeLayout.HalfSplit);
        ops.Rope(kRows, positions, rope, s.KvHeads, s.HeadDim, 0, RopeLayout.HalfSplit);
        var heads = ws.F(AttentionHeadsOut, t * s.Heads * s.HeadDim);
        ops.Attention(qOut, keys.View, values.View, heads, s.Heads, s.KvHeads, s.HeadDim, s.HeadDim, start + count, start,
            1f / MathF.Sqrt(s.HeadDim));
        ops.Linear(heads, o, default, output);
    }

    public void Dispose() { }
}
