using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// One mixture-of-experts layer's routed experts, chained on the device with no host round trip and no per-expert
    /// host loop: effectively computes, for every token t of x,
    /// <c>destination[t, :] = (accumulate ? destination[t, :] : 0) + sum_k w[t, k] * down[e_k] @ (silu(gate[e_k] @ x[t]) * (up[e_k] @ x[t]))</c>
    /// with <c>(e_k, w[t, k])</c> the token's experts and weights from the router (<c>Linear</c> into float32 logits, then
    /// <see cref="MoeRoute"/>); it runs <see cref="MoePermute"/>, <see cref="GroupedLinearSiluMul"/> (or
    /// <see cref="GroupedLinear"/> and <see cref="SiluAndMul"/>), <see cref="GroupedLinear"/> and <see cref="MoeCombine"/>,
    /// each a fixed number of launches whose sizes depend only on the token count, so the call can be captured in a CUDA
    /// graph (<see cref="DeviceRuntime.CaptureGraph"/>) and replayed with new inputs.
    /// </summary>
    /// <remarks>
    /// Every op of the chain is admitted before the first is enqueued: on a strict backend that lacks one, the call
    /// throws <see cref="OpNotSupportedException"/> naming that signature and nothing runs. With accumulate, destination
    /// can hold the shared experts' output first (DeepSeek's MoE = shared + routed).
    /// </remarks>
    /// <param name="layer">The router and the experts' weights.</param>
    /// <param name="x">[tokens, layer.Hidden] the layer's input, in scratch.Activations; 1 to scratch.MaxTokens tokens.</param>
    /// <param name="scratch">Buffers for this layer's shape (<see cref="MoeLayerScratch.Allocate"/>).</param>
    /// <param name="destination">[tokens, layer.Hidden] (at least that long); must not overlap x or the scratch.</param>
    /// <param name="accumulate">Add the routed experts' sum onto destination instead of overwriting it.</param>
    /// <exception cref="ArgumentNullException">layer or scratch is null.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, x has more tokens than the scratch holds or another activation type, or destination overlaps x.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend lacks an op of the chain and does not fall back (nothing ran).</exception>
    public void MoeLayer(MoeLayer layer, DeviceTensor x, MoeLayerScratch scratch, DeviceTensor destination, bool accumulate)
    {
        const string op = nameof(MoeLayer);
        if (layer is null)
            ThrowHelper.ArgumentNull(op, nameof(layer));
        if (scratch is null)
            ThrowHelper.ArgumentNull(op, nameof(scratch));
        x = Act(op, nameof(x), x, null);
        CheckWeight(op, nameof(layer), layer.Router, x.Runtime);
        if (!ReferenceEquals(scratch.Permuted.Runtime, x.Runtime))
            ThrowHelper.Argument(op, nameof(scratch), "scratch belongs to a different DeviceRuntime than x.");
        destination = Act(op, nameof(destination), destination, x.Runtime);
        int tokens = OpChecks.Rows(op, nameof(x), x.Length, layer.Hidden, "layer.Hidden");
        if (tokens > scratch.MaxTokens)
            ThrowHelper.Argument(op, nameof(x), $"x has {tokens} tokens; the scratch holds at most {scratch.MaxTokens}.");
        if (x.ElementType != scratch.Activations)
            ThrowHelper.Argument(op, nameof(x), $"x holds {x.ElementType.Name()}; the scratch's rows are {scratch.Activations.Name()}.");
        long outputs = (long)tokens * layer.Hidden;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, $"tokens * layer.Hidden = {tokens} * {layer.Hidden}");
        var dst = destination.Slice(0, outputs);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(x), x);

        int k = layer.TopK, inter = layer.Intermediate;
        long slots = (long)tokens * k;
        var act = x.ElementType;
        var logits = scratch.RouterLogits.Slice(0, (long)tokens * layer.Experts);
        var ids = scratch.ExpertIds.Slice(0, slots);
        var weights = scratch.ExpertWeights.Slice(0, slots);
        var permuted = scratch.Permuted.Slice(0, slots * layer.Hidden);
        var offsets = scratch.ExpertOffsets.Slice(0, layer.Experts + 1L);
        var slotRows = scratch.SlotRows.Slice(0, slots);
        var gateUp = scratch.GateUp.Slice(0, slots * 2 * inter).Reshape(slots, 2L * inter);
        var activated = scratch.Activated.Slice(0, slots * inter);
        var expertOutput = scratch.ExpertOutput.Slice(0, slots * layer.Hidden);

        // admit the whole chain before anything is enqueued
        var siluMul = layer.GateUp is { } fused ? OpSignature.WithWeight(nameof(GroupedLinearSiluMul), act, fused) : default;
        bool fusedSilu = layer.GateUp != null && BackendSupports(siluMul, out _);
        Admit(OpSignature.WithWeight(nameof(Linear), act, layer.Router));
        Admit(new OpSignature(nameof(MoeRoute), ElementType.F32));
        Admit(new OpSignature(nameof(MoePermute), act));
        if (!fusedSilu)
        {
            if (layer.GateUp != null)
                Admit(OpSignature.WithWeight(nameof(GroupedLinear), act, layer.GateUp));
            else
            {
                Admit(OpSignature.WithWeight(nameof(GroupedLinear), act, layer.Gate!) with { StridedRows = true });
                Admit(OpSignature.WithWeight(nameof(GroupedLinear), act, layer.Up!) with { StridedRows = true });
            }
            Admit(new OpSignature(nameof(SiluAndMul), act));
        }
        Admit(OpSignature.WithWeight(nameof(GroupedLinear), act, layer.Down));
        Admit(new OpSignature(nameof(MoeCombine), Activations(expertOutput, dst)));

        Linear(x, layer.Router, default, logits);
        MoeRoute(logits, layer.CorrectionBias, ids, weights, layer.Routing);
        MoePermute(x, ids, permuted, offsets, slotRows, layer.Experts, k, scratch.PermuteWorkspace);
        if (fusedSilu)
        {
            GroupedLinearSiluMul(permuted, offsets, layer.GateUp!, activated);
        }
        else
        {
            if (layer.GateUp != null)
                GroupedLinear(permuted, offsets, layer.GateUp, gateUp);
            else
            {
                GroupedLinear(permuted, offsets, layer.Gate!, gateUp.Columns(0, inter));
                GroupedLinear(permuted, offsets, layer.Up!, gateUp.Columns(inter, inter));
            }
            SiluAndMul(gateUp, activated, inter);
        }
        GroupedLinear(activated, offsets, layer.Down, expertOutput);
        MoeCombine(expertOutput, slotRows, weights, dst, k, accumulate);
    }

    /// <summary>Throws <see cref="OpNotSupportedException"/> when a call of <paramref name="op"/> would be refused (strict, unsupported).</summary>
    void Admit(in OpSignature op)
    {
        if (!BackendSupports(op, out string? reason) && _fallback == null)
            throw new OpNotSupportedException(op, _backend.Kind, reason);
    }
}
