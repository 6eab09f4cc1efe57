using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// DeepSeek's mixture of experts: route each token to its top-k experts (V3: sigmoid scores, correction
/// bias, group-limited; V2: softmax), permute the token rows by expert, run every expert's SwiGLU MLP on its
/// rows as grouped GEMMs (the fused gate|up weight with SiLU-and-mul in the epilogue where the backend runs it), and combine the
/// outputs weighted per token onto the shared experts' MLP output.
/// </summary>
internal sealed class MoeMlpBlock(ModelShape s, WeightMatrix router, DeviceBuffer<float>? correctionBias, MoeRouting routing,
    GateUp gateUps, WeightMatrix downs, DenseMlpBlock? shared) : IMlpBlock
{
    public void Forward(Ops ops, Workspace ws, int count, DeviceTensor input, DeviceTensor output)
    {
        long t = count;
        int k = s.ExpertsPerToken, inter = s.MoeIntermediate, experts = s.Experts;
        long m = t * k;

        // the shared experts first, straight into the output: the routed sum is combined onto it
        shared?.Forward(ops, ws, count, input, output);

        var logits = ws.F(RouterLogits, t * experts);
        ops.Linear(input, router, default, logits);
        var ids = ws.I(ExpertIds, m);
        var weights = ws.F(ExpertWeights, m);
        ops.MoeRoute(logits, correctionBias?.View ?? default, ids, weights, routing);

        var permuted = ws.A(PermutedTokens, m * s.Hidden);
        var offsets = ws.I(ExpertOffsets, experts + 1);
        var slotRows = ws.I(SlotRows, m);
        ops.MoePermute(input, ids, permuted, offsets, slotRows, experts);

        var act = ws.A(MlpActivation, m * inter);
        if (gateUps.Fused is { } fused && ops.Supports(OpSignature.WithWeight(nameof(Ops.GroupedLinearSiluMul), permuted.ElementType, fused)))
        {
            ops.GroupedLinearSiluMul(permuted, offsets, fused, act); // each expert's fused weight read once, SiLU in the epilogue
        }
        else
        {
            var gu = ws.A(MlpGateUp, 2 * m * inter);
            gateUps.ProjectGrouped(ops, permuted, offsets, gu.Reshape(m, 2L * inter));
            ops.SiluAndMul(gu, act, inter);
        }
        var expertOut = ws.A(ExpertOut, m * s.Hidden);
        ops.GroupedLinear(act, offsets, downs, expertOut);
        ops.MoeCombine(expertOut, slotRows, weights, output, k, accumulate: shared != null);
    }

    public void Dispose() { }
}
