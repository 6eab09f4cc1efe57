using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// DeepSeek's mixture of experts: route each token to its top-k experts (V3: sigmoid scores, correction
/// bias, group-limited; V2: softmax), permute the token rows by expert, run every expert's SwiGLU MLP on its
/// rows as grouped GEMMs (the fused gate|up weight with SiLU-and-mul in the epilogue where the backend runs it; W8A8 for
/// FP8 experts in prefill when the model runs FP8 activations), and combine the outputs weighted per token onto the shared
/// experts' MLP output.
/// </summary>
internal sealed class MoeMlpBlock(ModelShape s, MoeLayer routed, DenseMlpBlock? shared) : IMlpBlock
{
    public void Forward(Ops ops, Workspace ws, int count, DeviceTensor input, DeviceTensor output)
    {
        // the shared experts first, straight into the output: the routed sum is combined onto it
        shared?.Forward(ops, ws, count, input, output);
        ops.MoeLayer(routed, input, Scratch(ws), output, accumulate: shared != null);
    }

    // the views of the last workspace seen: a model keeps one workspace, so a decode step makes no new scratch object
    Workspace? _scratchOf;
    MoeLayerScratch? _scratch;

    /// <summary>The MoE layer's buffers inside the forward pass's workspace (sized for its tokens): views only, built once per workspace.</summary>
    MoeLayerScratch Scratch(Workspace ws)
    {
        if (!ReferenceEquals(ws, _scratchOf))
            (_scratch, _scratchOf) = (NewScratch(ws), ws);
        return _scratch!;
    }

    MoeLayerScratch NewScratch(Workspace ws)
    {
        long t = ws.Tokens, slots = t * s.ExpertsPerToken, inter = s.MoeIntermediate;
        return new MoeLayerScratch(ws.Tokens, ws.Activations, ws.F(RouterLogits, t * s.Experts), ws.I(ExpertIds, slots), ws.F(ExpertWeights, slots),
            ws.A(PermutedTokens, slots * s.Hidden), ws.I(ExpertOffsets, s.Experts + 1L), ws.I(SlotRows, slots), ws.A(MlpGateUp, 2 * slots * inter),
            ws.A(MlpActivation, slots * inter), ws.A(ExpertOut, slots * s.Hidden), ws.I(PermuteWorkspace, Ops.MoePermuteWorkspaceBytes(slots, s.Experts) / sizeof(int)),
            // with FP8 activations, the experts' W8A8 inputs (Ops.MoeLayer quantises each slot row of hidden, then of inter)
            ws.Fp8Activations ? ws.Fp8(Fp8Activations, slots * Math.Max(s.Hidden, inter)) : default,
            ws.Fp8Activations ? ws.F(Fp8ActivationScales, slots * ((Math.Max(s.Hidden, inter) + 127) / 128)) : default);
    }

    public void Dispose() { }
}
