using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// DeepSeek's mixture of experts: route each token to its top-k experts (V3: sigmoid scores, correction
/// bias, group-limited; V2: softmax), permute the token rows by expert, run every expert's SwiGLU MLP on its
/// rows as grouped GEMMs (gate and up into one buffer side by side), combine the outputs weighted per token, then add the shared experts' MLP.
/// </summary>
internal sealed class MoeMlpBlock(ModelShape s, WeightMatrix router, DeviceBuffer<float>? correctionBias, MoeRouting routing,
    GateUp gateUps, WeightMatrix downs, DenseMlpBlock? shared) : IMlpBlock
{
    public void Forward(Ops ops, Workspace ws, int count, DeviceTensor input, DeviceTensor output)
    {
        long t = count;
        int k = s.ExpertsPerToken, inter = s.MoeIntermediate, experts = s.Experts;
        long m = t * k;

        var logits = ws.F(RouterLogits, t * experts);
        ops.Linear(input, router, default, logits);
        var ids = ws.I(ExpertIds, m);
        var weights = ws.F(ExpertWeights, m);
        ops.MoeRoute(logits, correctionBias?.View ?? default, ids, weights, routing);

        var permuted = ws.A(PermutedTokens, m * s.Hidden);
        var offsets = ws.I(ExpertOffsets, experts + 1);
        var slots = ws.I(SourceSlots, m);
        ops.MoePermute(input, ids, permuted, offsets, slots, experts);

        var gu = ws.A(MlpGateUp, 2 * m * inter);
        gateUps.ProjectGrouped(ops, permuted, offsets, gu.Reshape(m, 2L * inter));
        var act = ws.A(MlpActivation, m * inter);
        ops.SiluAndMul(gu, act, inter);
        var expertOut = ws.A(ExpertOut, m * s.Hidden);
        ops.GroupedLinear(act, offsets, downs, expertOut);
        ops.MoeCombine(expertOut, slots, weights, output, k, accumulate: false);

        if (shared != null)
        {
            var sharedOut = ws.A(AttentionOut, t * s.Hidden); // free: the attention output was consumed by the residual add
            shared.Forward(ops, ws, count, input, sharedOut);
            ops.Add(output, sharedOut, output);
        }
    }

    public void Dispose() { }
}
