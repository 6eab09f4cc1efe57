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
    /// <para>
    /// W8A8 experts (DeepSeek-V3's FP8 prefill, as DeepGEMM runs it): when the scratch holds FP8 inputs
    /// (<see cref="MoeLayerScratch.Fp8Activations"/>), the call has at least <see cref="MoeLayerW8A8MinTokens"/> tokens, the
    /// experts' gate|up (fused, or gate and up apart) and down stacks are FP8 weights with 128 x 128 blocks, and the backend itself runs
    /// <see cref="QuantizeFp8Activations"/>, <see cref="GroupedLinearW8A8"/> and <see cref="SiluAndMul"/>, the experts run as
    /// quantise (1 x 128 per slot row), <see cref="GroupedLinearW8A8"/> (gate|up, or gate and up into the two column halves), <see cref="SiluAndMul"/>, quantise, and
    /// <see cref="GroupedLinearW8A8"/> (down): both products on FP8 tensor cores with fp32 promotion per 128-wide block,
    /// never dequantising the weights; the activations' e4m3 rounding moves the output by a few percent of its norm (see
    /// <see cref="LinearW8A8"/>). Otherwise (decode steps, other weights) the dequantising grouped GEMMs run.
    /// </para>
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
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, SizeText.Of("tokens * layer.Hidden", tokens, layer.Hidden));
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
        bool w8a8 = TakesW8A8(layer, scratch, tokens, act);
        var siluMul = layer.GateUp is { } fused ? OpSignature.WithWeight(nameof(GroupedLinearSiluMul), act, fused) : default;
        bool fusedSilu = layer.GateUp != null && BackendSupports(siluMul, out _);
        Admit(OpSignature.WithWeight(nameof(Linear), act, layer.Router));
        Admit(new OpSignature(nameof(MoeRoute), ElementType.F32));
        Admit(new OpSignature(nameof(MoePermute), act));
        if (w8a8)
        {
            // TakesW8A8 asked the backend for each of these; admitted here too, so that the chain's checks read as one list
            Admit(new OpSignature(nameof(QuantizeFp8Activations), act));
            if (layer.GateUp != null)
                Admit(OpSignature.WithWeight(nameof(GroupedLinearW8A8), act, layer.GateUp));
            else
            {
                Admit(OpSignature.WithWeight(nameof(GroupedLinearW8A8), act, layer.Gate!) with { StridedRows = true });
                Admit(OpSignature.WithWeight(nameof(GroupedLinearW8A8), act, layer.Up!) with { StridedRows = true });
            }
            Admit(new OpSignature(nameof(SiluAndMul), act));
            Admit(OpSignature.WithWeight(nameof(GroupedLinearW8A8), act, layer.Down));
        }
        else if (!fusedSilu)
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
        if (!w8a8)
            Admit(OpSignature.WithWeight(nameof(GroupedLinear), act, layer.Down));
        Admit(new OpSignature(nameof(MoeCombine), Activations(expertOutput, dst)));

        Linear(x, layer.Router, default, logits);
        MoeRoute(logits, layer.CorrectionBias, ids, weights, layer.Routing);
        MoePermute(x, ids, permuted, offsets, slotRows, layer.Experts, k, scratch.PermuteWorkspace);
        if (w8a8)
        {
            int h = layer.Hidden, block = Fp8ActivationBlock;
            long hBlocks = (h + block - 1) / block, iBlocks = (inter + block - 1) / block;
            var q = scratch.Fp8Inputs;
            var qs = scratch.Fp8Scales;
            var (qh, qhs) = (q.Slice(0, slots * h), qs.Slice(0, slots * hBlocks));
            QuantizeFp8Activations(permuted.Reshape(slots, h), qh, qhs);
            if (layer.GateUp != null)
                GroupedLinearW8A8(qh, qhs, offsets, layer.GateUp, gateUp);
            else
            {
                GroupedLinearW8A8(qh, qhs, offsets, layer.Gate!, gateUp.Columns(0, inter));
                GroupedLinearW8A8(qh, qhs, offsets, layer.Up!, gateUp.Columns(inter, inter));
            }
            SiluAndMul(gateUp, activated, inter);
            var (qi, qis) = (q.Slice(0, slots * inter), qs.Slice(0, slots * iBlocks));
            QuantizeFp8Activations(activated.Reshape(slots, inter), qi, qis);
            GroupedLinearW8A8(qi, qis, offsets, layer.Down, expertOutput.Reshape(slots, h));
            MoeCombine(expertOutput, slotRows, weights, dst, k, accumulate);
            return;
        }
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

    /// <summary>Fewest tokens from which <see cref="MoeLayer"/> runs FP8-block experts as W8A8 (prefill; a decode step's few rows per expert stream the weights either way).</summary>
    public const int MoeLayerW8A8MinTokens = 32;

    /// <summary>Whether <see cref="MoeLayer"/> runs this call's experts as W8A8 (see its remarks).</summary>
    internal bool TakesW8A8(MoeLayer layer, MoeLayerScratch scratch, int tokens, ElementType act)
    {
        static bool Fp8Blocks(WeightMatrix? w) =>
            w is { Scheme: WeightScheme.Fp8Block, BlockRows: Fp8ActivationBlock, BlockCols: Fp8ActivationBlock } && w.Cols % 16 == 0;
        bool fused = layer.GateUp != null;
        if (!scratch.Fp8Activations || tokens < MoeLayerW8A8MinTokens || !Fp8Blocks(layer.Down)
            || (fused ? !Fp8Blocks(layer.GateUp) : !Fp8Blocks(layer.Gate) || !Fp8Blocks(layer.Up)))
            return false;
        bool GroupedRuns(WeightMatrix w, bool strided) =>
            BackendSupports(OpSignature.WithWeight(nameof(GroupedLinearW8A8), act, w) with { StridedRows = strided }, out _);
        return BackendSupports(new OpSignature(nameof(QuantizeFp8Activations), act), out _)
            && (fused ? GroupedRuns(layer.GateUp!, false) : GroupedRuns(layer.Gate!, true) && GroupedRuns(layer.Up!, true))
            && GroupedRuns(layer.Down, false)
            && BackendSupports(new OpSignature(nameof(SiluAndMul), act), out _);
    }

    /// <summary>Throws <see cref="OpNotSupportedException"/> when a call of <paramref name="op"/> would be refused (strict, unsupported).</summary>
    void Admit(in OpSignature op)
    {
        if (!BackendSupports(op, out string? reason) && _fallback == null)
            throw new OpNotSupportedException(op, _backend.Kind, reason);
    }
}
