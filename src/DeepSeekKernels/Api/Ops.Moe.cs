using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// Mixture-of-experts routing, as Hugging Face transformers 5.x routes DeepSeek-V3 (<c>DeepseekV3MoE.route_tokens_to_experts</c>)
    /// and DeepSeek-V2 (<c>DeepseekV2Moe.route_tokens_to_experts</c>). Effectively computes, per token t:
    /// <list type="number">
    /// <item><c>scores = softmax(logits)</c> (float32, maximum subtracted) or <c>sigmoid(logits)</c>, per <see cref="MoeRouting.Scoring"/>;</item>
    /// <item><c>choice = scores + correctionBias</c> (or scores when correctionBias is default);</item>
    /// <item>for <see cref="MoeTopKMethod.GroupLimitedGreedy"/> / <see cref="MoeTopKMethod.NoAuxTc"/>: split the experts
    /// into Groups consecutive groups; a group scores the maximum / the sum of the two largest of its choice values;
    /// keep the TopKGroups best groups and set every other expert's choice to 0 (<c>masked_fill(~mask, 0.0)</c>);</item>
    /// <item><c>expertIds[t, :]</c> = the TopK experts with the largest choice, in descending order of choice (ties:
    /// lower expert index first; groups are ranked the same way);</item>
    /// <item><c>expertWeights[t, k] = scores[expertIds[t, k]]</c> (without the bias); if NormalizeTopK, divided by
    /// (their sum + 1e-20); then multiplied by RoutedScalingFactor.</item>
    /// </list>
    /// </summary>
    /// <remarks>
    /// transformers picks with <c>topk(sorted=False)</c>, so its order within a token is unspecified; the set of
    /// experts and each expert's weight are what must agree, and this op fixes the order. transformers' DeepSeek-V2
    /// ignores <c>norm_topk_prob</c> (it always scales by <c>routed_scaling_factor</c>): pass NormalizeTopK = false
    /// to reproduce it. A TopK larger than the experts of the kept groups (TopKGroups * Experts / Groups) is refused, as
    /// config.json parsing refuses it: transformers would hand out experts of groups the token was not routed to.
    /// </remarks>
    /// <param name="routerLogits">[tokens, routing.Experts] the gate linear's output, float32; at least one token.</param>
    /// <param name="correctionBias">[routing.Experts] DeepSeek-V3's e_score_correction_bias (used only to choose), or <c>default</c>.</param>
    /// <param name="expertIds">[tokens, routing.TopK] output (at least that long).</param>
    /// <param name="expertWeights">[tokens, routing.TopK] output (at least that long); must not overlap the logits or the bias.</param>
    /// <param name="routing">The router's configuration.</param>
    /// <exception cref="ArgumentNullException"><paramref name="routing"/> is null.</exception>
    /// <exception cref="ArgumentException">The routing configuration is inconsistent (ParamName "routing"), a view is default or on another runtime, a length is wrong, or an output overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void MoeRoute(DeviceTensor routerLogits, DeviceView<float> correctionBias, DeviceView<int> expertIds,
        DeviceView<float> expertWeights, MoeRouting routing)
    {
        const string op = nameof(MoeRoute);
        if (routing is null)
            ThrowHelper.ArgumentNull(op, nameof(routing));
        routerLogits = Act(op, nameof(routerLogits), routerLogits, null);
        CheckOptionalView(op, nameof(correctionBias), correctionBias, routerLogits.Runtime);
        CheckView(op, nameof(expertIds), expertIds, routerLogits.Runtime);
        CheckView(op, nameof(expertWeights), expertWeights, routerLogits.Runtime);
        CheckRouting(op, routing);
        int tokens = OpChecks.Rows(op, nameof(routerLogits), routerLogits.Length, routing.Experts, "routing.Experts");
        if (!correctionBias.IsNull)
            OpChecks.Length(op, nameof(correctionBias), correctionBias.Length, routing.Experts, "routing.Experts");
        long outputs = (long)tokens * routing.TopK;
        OpChecks.LongEnough(op, nameof(expertIds), expertIds.Length, outputs, SizeText.Of("tokens * routing.TopK", tokens, routing.TopK));
        OpChecks.LongEnough(op, nameof(expertWeights), expertWeights.Length, outputs, SizeText.Of("tokens * routing.TopK", tokens, routing.TopK));
        var weights = expertWeights.Slice(0, outputs);
        OpChecks.Disjoint(op, nameof(expertWeights), DeviceTensor.FromView(weights), nameof(routerLogits), routerLogits);
        OpChecks.Disjoint(op, nameof(expertWeights), weights, nameof(correctionBias), correctionBias);
        using var call = Dispatch(new OpSignature(op, routerLogits.ElementType));
        call.Backend.MoeRoute(routerLogits, correctionBias, expertIds.Slice(0, outputs), weights, tokens, routing);
    }

    static void CheckRouting(string op, MoeRouting r)
    {
        const string p = "routing";
        if (r.Experts < 1)
            ThrowHelper.Argument(op, p, $"routing.Experts must be at least 1 (got {r.Experts}).");
        if (r.TopK < 1 || r.TopK > r.Experts)
            ThrowHelper.Argument(op, p, $"routing.TopK must be in [1, routing.Experts = {r.Experts}] (got {r.TopK}).");
        if (!Enum.IsDefined(r.Scoring))
            ThrowHelper.Argument(op, p, $"routing.Scoring {r.Scoring} is not a MoeScoring.");
        if (!Enum.IsDefined(r.Method))
            ThrowHelper.Argument(op, p, $"routing.Method {r.Method} is not a MoeTopKMethod.");
        if (!double.IsFinite(r.RoutedScalingFactor))
            ThrowHelper.Argument(op, p, $"routing.RoutedScalingFactor must be finite (got {r.RoutedScalingFactor}).");
        if (r.Method == MoeTopKMethod.Greedy)
            return;
        if (r.Groups < 1)
            ThrowHelper.Argument(op, p, $"routing.Groups must be at least 1 (got {r.Groups}).");
        if (r.Experts % r.Groups != 0)
            ThrowHelper.Argument(op, p, $"routing.Experts = {r.Experts} is not a multiple of routing.Groups = {r.Groups}.");
        if (r.TopKGroups < 1 || r.TopKGroups > r.Groups)
            ThrowHelper.Argument(op, p, $"routing.TopKGroups must be in [1, routing.Groups = {r.Groups}] (got {r.TopKGroups}).");
        if (r.Method == MoeTopKMethod.NoAuxTc && r.Experts / r.Groups < 2)
            ThrowHelper.Argument(op, p, $"NoAuxTc scores a group by its two best experts; routing.Experts / routing.Groups = {r.Experts / r.Groups} is less than 2.");
        long reachable = (long)r.TopKGroups * (r.Experts / r.Groups);
        if (r.TopK > reachable)
            ThrowHelper.Argument(op, p, $"routing.TopK = {r.TopK} is more than the {reachable} experts of the routing.TopKGroups = {r.TopKGroups} kept groups of "
                + $"{r.Experts / r.Groups}: a token could only be given experts of groups it was not routed to.");
    }

    /// <summary>
    /// Groups tokens' rows by expert for <see cref="GroupedLinear"/>: effectively computes, for the slots
    /// s = t * topK + k (token t's k-th expert e = expertIds[t, k]), a stable counting sort by expert:
    /// <c>expertOffsets[e] .. expertOffsets[e + 1]</c> are expert e's rows of <c>permuted</c> (ascending expert; within
    /// an expert, ascending slot), <c>slotRows[s]</c> = the row slot s went to (the map <see cref="MoeCombine"/> gathers
    /// through) and <c>permuted[slotRows[s], :] = x[s / topK, :]</c>; <c>expertOffsets[0] = 0</c>,
    /// <c>expertOffsets[experts] = tokens * topK</c>. The rows are not padded: the grouped GEMMs tile on the offsets.
    /// </summary>
    /// <remarks>
    /// Expert ids are device data, checked where they are read: if one is outside [0, experts), the first (lowest slot)
    /// is recorded in the error word, nothing else is written, and the next synchronisation throws
    /// <see cref="DeviceIndexException"/> naming it and its index.
    /// </remarks>
    /// <param name="x">[tokens, hidden] the MoE input.</param>
    /// <param name="expertIds">[tokens, topK] from <see cref="MoeRoute"/> (exactly that long); at least one slot.</param>
    /// <param name="permuted">[tokens * topK, hidden] output (at least that long), of x's element type; must not overlap x.</param>
    /// <param name="expertOffsets">[experts + 1] output (at least that long).</param>
    /// <param name="slotRows">[tokens * topK] output (at least that long): slot -> permuted row.</param>
    /// <param name="experts">Routed experts (at least 1).</param>
    /// <param name="topK">
    /// Experts per token. 0 (the default) infers it: hidden = permuted.Length / expertIds.Length, which then must be
    /// exact, tokens = x.Length / hidden, topK = expertIds.Length / tokens.
    /// </param>
    /// <param name="workspace">
    /// Scratch for the counting sort (per-chunk histograms), at least <see cref="MoePermuteWorkspaceBytes"/> bytes, or default:
    /// the backend then grows its own to the largest call. Given, the call allocates nothing (a captured step stays valid).
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, the lengths do not fit together, or outputs overlap inputs or each other.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void MoePermute(DeviceTensor x, DeviceView<int> expertIds, DeviceTensor permuted, DeviceView<int> expertOffsets,
        DeviceView<int> slotRows, int experts, int topK = 0, DeviceView<int> workspace = default)
    {
        const string op = nameof(MoePermute);
        x = Act(op, nameof(x), x, null);
        CheckView(op, nameof(expertIds), expertIds, x.Runtime);
        permuted = Act(op, nameof(permuted), permuted, x.Runtime);
        if (permuted.ElementType != x.ElementType)
            ThrowHelper.Argument(op, nameof(permuted), $"permuted holds {permuted.ElementType.Name()}; it must hold x's {x.ElementType.Name()} (rows are copied bit for bit).");
        CheckView(op, nameof(expertOffsets), expertOffsets, x.Runtime);
        CheckView(op, nameof(slotRows), slotRows, x.Runtime);
        OpChecks.AtLeast1(op, nameof(experts), experts);
        OpChecks.NotNegative(op, nameof(topK), topK);
        if (expertIds.Length == 0)
            ThrowHelper.Argument(op, nameof(expertIds), "expertIds is empty: there are no tokens to permute.");
        if (expertIds.Length > int.MaxValue)
            ThrowHelper.Argument(op, nameof(expertIds), $"expertIds has {expertIds.Length} slots; at most {int.MaxValue} are supported.");
        long slots = expertIds.Length;
        long tokens, hidden;
        if (topK > 0)
        {
            if (slots % topK != 0)
                ThrowHelper.Argument(op, nameof(expertIds), $"expertIds has {slots} elements, not [tokens, topK] for topK = {topK}.");
            tokens = slots / topK;
            if (x.Length == 0 || x.Length % tokens != 0)
                ThrowHelper.Argument(op, nameof(x), $"x has {x.Length} elements, not [tokens, hidden] for tokens = expertIds.Length / topK = {tokens}.");
            hidden = x.Length / tokens;
        }
        else
        {
            if (permuted.Length == 0 || permuted.Length % slots != 0)
                ThrowHelper.Argument(op, nameof(permuted), $"permuted has {permuted.Length} elements, not [tokens * topK, hidden] for tokens * topK = "
                    + $"expertIds.Length = {slots}; with topK = 0 (inferred) permuted must be exactly that long, or pass topK.");
            hidden = permuted.Length / slots;
            if (x.Length == 0 || x.Length % hidden != 0)
                ThrowHelper.Argument(op, nameof(x), $"x has {x.Length} elements, not [tokens, hidden] for hidden = permuted.Length / expertIds.Length = {hidden}.");
            tokens = x.Length / hidden;
            if (slots % tokens != 0)
                ThrowHelper.Argument(op, nameof(expertIds), $"expertIds has {slots} elements, not [tokens, topK] for tokens = x.Length / hidden = {tokens}.");
            topK = (int)(slots / tokens);
        }
        if (hidden > int.MaxValue)
            ThrowHelper.Argument(op, nameof(x), $"x's rows have {hidden} elements; at most {int.MaxValue} are supported.");
        long permutedElements = slots * hidden;
        OpChecks.LongEnough(op, nameof(permuted), permuted.Length, permutedElements, SizeText.Of("tokens * topK * hidden", slots, hidden));
        OpChecks.LongEnough(op, nameof(expertOffsets), expertOffsets.Length, experts + 1L, "experts + 1");
        OpChecks.LongEnough(op, nameof(slotRows), slotRows.Length, slots, SizeText.Of("tokens * topK", slots));
        var rowsOut = permuted.Slice(0, permutedElements);
        var offsets = expertOffsets.Slice(0, experts + 1L);
        var slotsOut = slotRows.Slice(0, slots);
        OpChecks.Disjoint(op, nameof(permuted), rowsOut, nameof(x), x);
        OpChecks.Disjoint(op, nameof(expertOffsets), offsets, nameof(expertIds), expertIds);
        OpChecks.Disjoint(op, nameof(slotRows), slotsOut, nameof(expertIds), expertIds);
        OpChecks.Disjoint(op, nameof(slotRows), slotsOut, nameof(expertOffsets), offsets);
        if (!workspace.IsNull)
        {
            CheckView(op, nameof(workspace), workspace, x.Runtime);
            long need = MoePermuteWorkspaceBytes(slots, experts);
            if (workspace.Length * sizeof(int) < need)
                ThrowHelper.Argument(op, nameof(workspace), $"workspace holds {workspace.Length * sizeof(int):N0} bytes; {slots} slots over {experts} experts need {need:N0} (MoePermuteWorkspaceBytes).");
            if (workspace.Start % 4 != 0)
                ThrowHelper.Argument(op, nameof(workspace), $"workspace starts {workspace.Start * 4} bytes into its buffer; it must start at a multiple of 16 bytes.");
            OpChecks.Disjoint(op, nameof(workspace), DeviceTensor.FromView(workspace), nameof(x), x);
            OpChecks.Disjoint(op, nameof(workspace), DeviceTensor.FromView(workspace), nameof(permuted), rowsOut);
            OpChecks.Disjoint(op, nameof(workspace), workspace, nameof(expertIds), expertIds);
            OpChecks.Disjoint(op, nameof(workspace), workspace, nameof(expertOffsets), offsets);
            OpChecks.Disjoint(op, nameof(workspace), workspace, nameof(slotRows), slotsOut);
        }
        using var call = Dispatch(new OpSignature(op, Activations(x, rowsOut)));
        call.Backend.MoePermute(x, expertIds, rowsOut, offsets, slotsOut, (int)tokens, topK, (int)hidden, experts, workspace);
    }

    /// <summary>
    /// Bytes of a <see cref="MoePermute"/> workspace for <paramref name="slots"/> slots (tokens x topK) over
    /// <paramref name="experts"/> experts: the counting sort's histograms, [ceil(slots / 256), experts] int32, and a few
    /// words beside them (the hand kernel's per-chunk flags, ILGPU's flag and status), rounded up to 16 bytes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    public static long MoePermuteWorkspaceBytes(long slots, int experts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(experts, 1);
        long chunks = (slots + Ilgpu.MoePermuteIlgpu.Chunk - 1) / Ilgpu.MoePermuteIlgpu.Chunk;
        long ints = checked(chunks * experts + Math.Max(chunks + 1, Ilgpu.MoePermuteIlgpu.Header));
        return checked((ints * sizeof(int) + 15) / 16 * 16);
    }

    /// <summary>
    /// One linear layer per expert over its rows (the MoE experts' projections): effectively computes, for every
    /// expert e and every row r in <c>expertOffsets[e] .. expertOffsets[e + 1]</c>,
    /// <c>destination[r, :] = x[r, :] @ W[e]^T</c> (float32 accumulation, FP8 dequantised as in <see cref="Linear"/>).
    /// Rows outside <c>expertOffsets[0] .. expertOffsets[Count]</c> are left as they are.
    /// </summary>
    /// <remarks>
    /// The offsets are device data, checked where they are read: the reference requires
    /// <c>0 &lt;= expertOffsets[0] &lt;= ... &lt;= expertOffsets[Count] &lt;= M</c> and otherwise throws
    /// <see cref="ArgumentOutOfRangeException"/> (ParamName "expertOffsets") before it writes.
    /// </remarks>
    /// <param name="x">[M, weight.Cols] rows grouped by expert (<see cref="MoePermute"/>'s permuted); at least one row.</param>
    /// <param name="expertOffsets">[weight.Count + 1] (at least that long), from <see cref="MoePermute"/>.</param>
    /// <param name="weight">A stack of one [Rows, Cols] matrix per expert (Count = experts); dense, FP8 or INT4.</param>
    /// <param name="destination">[M, weight.Rows] (at least that long); must not overlap x or the weight.</param>
    /// <exception cref="ArgumentNullException"><paramref name="weight"/> is null.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void GroupedLinear(DeviceTensor x, DeviceView<int> expertOffsets, WeightMatrix weight, DeviceTensor destination)
    {
        const string op = nameof(GroupedLinear);
        x = Act(op, nameof(x), x, null);
        CheckView(op, nameof(expertOffsets), expertOffsets, x.Runtime);
        CheckWeight(op, nameof(weight), weight, x.Runtime);
        int m = OpChecks.Rows(op, nameof(x), x.Length, weight.Cols, "weight.Cols");
        OpChecks.LongEnough(op, nameof(expertOffsets), expertOffsets.Length, weight.Count + 1L, SizeText.PlusOne("weight.Count + 1", weight.Count));
        var dst = TensorChecks.OutputRows(op, nameof(destination), destination, x.Runtime, m, weight.Rows, SizeText.Of("M * weight.Rows", m, weight.Rows));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(x), x);
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(weight), DeviceTensor.FromView(weight.FloatView));
        using var call = Dispatch(OpSignature.WithWeight(op, Activations(x, dst), weight) with { StridedRows = Strided(dst) }, weight);
        call.Backend.GroupedLinear(x, expertOffsets.Slice(0, weight.Count + 1L), weight, dst, m);
    }

    /// <summary>
    /// The experts' gate and up projections with the activation fused in (<see cref="LinearSiluMul"/> per expert): for
    /// every expert e and row r in <c>expertOffsets[e] .. expertOffsets[e + 1]</c> and every j &lt; half = weight.Rows / 2,
    /// effectively computes <c>g = x[r, :] . W[e][j, :]</c> and <c>u = x[r, :] . W[e][half + j, :]</c> in float32, then
    /// <c>destination[r, j] = silu(g) * u</c> in float32, rounded once. Rows outside the offsets are left as they are.
    /// </summary>
    /// <remarks>The offsets are device data, checked as <see cref="GroupedLinear"/> checks them.</remarks>
    /// <param name="x">[M, weight.Cols] rows grouped by expert; at least one row.</param>
    /// <param name="expertOffsets">[weight.Count + 1] (at least that long), from <see cref="MoePermute"/>.</param>
    /// <param name="gateUp">A stack of one fused [gate | up] matrix per expert (Count = experts, Rows even).</param>
    /// <param name="destination">[M, weight.Rows / 2] (at least that long); must not overlap x or the weight.</param>
    /// <exception cref="ArgumentNullException"><paramref name="gateUp"/> is null.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, the weight has an odd number of rows, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> expertOffsets, WeightMatrix gateUp, DeviceTensor destination)
    {
        const string op = nameof(GroupedLinearSiluMul);
        x = Act(op, nameof(x), x, null);
        CheckView(op, nameof(expertOffsets), expertOffsets, x.Runtime);
        CheckWeight(op, nameof(gateUp), gateUp, x.Runtime);
        if (gateUp.Rows % 2 != 0)
            ThrowHelper.Argument(op, nameof(gateUp), $"gateUp has {gateUp.Rows} rows; a fused [gate | up] weight has an even number (gate's rows, then up's).");
        int half = gateUp.Rows / 2;
        int m = OpChecks.Rows(op, nameof(x), x.Length, gateUp.Cols, "gateUp.Cols");
        OpChecks.LongEnough(op, nameof(expertOffsets), expertOffsets.Length, gateUp.Count + 1L, SizeText.PlusOne("gateUp.Count + 1", gateUp.Count));
        var dst = TensorChecks.OutputRows(op, nameof(destination), destination, x.Runtime, m, half, SizeText.Of("M * gateUp.Rows / 2", m, half));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(x), x);
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(gateUp), DeviceTensor.FromView(gateUp.FloatView));
        using var call = Dispatch(OpSignature.WithWeight(op, Activations(x, dst), gateUp) with { StridedRows = Strided(dst) }, gateUp);
        call.Backend.GroupedLinearSiluMul(x, expertOffsets.Slice(0, gateUp.Count + 1L), gateUp, dst, m);
    }

    /// <summary>
    /// Gathers and sums each token's expert outputs: effectively computes, for every token t,
    /// <c>destination[t, :] = (accumulate ? destination[t, :] : 0) + sum_k expertWeights[t, k] * expertOutput[slotRows[t * topK + k], :]</c>;
    /// the sum is float32, in k order, and is added to destination after it is complete (one rounding).
    /// </summary>
    /// <remarks>
    /// slotRows is device data, checked where it is read: a value outside [0, tokens * topK) is recorded in the error
    /// word (the lowest index), its token's row is left as it was, and the next synchronisation throws
    /// <see cref="DeviceIndexException"/>. With accumulate, destination can hold the shared experts' output first.
    /// </remarks>
    /// <param name="expertOutput">[tokens * topK, hidden] expert outputs in permuted order (exactly that long).</param>
    /// <param name="slotRows">[tokens * topK] from <see cref="MoePermute"/> (exactly that long): slot -> row of expertOutput; at least one slot.</param>
    /// <param name="expertWeights">[tokens, topK] from <see cref="MoeRoute"/> (at least that long).</param>
    /// <param name="destination">[tokens, hidden] (at least that long); must not overlap expertOutput or expertWeights.</param>
    /// <param name="topK">Experts per token (at least 1).</param>
    /// <param name="accumulate">Add to destination (e.g. onto the shared experts' output) instead of overwriting it.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="topK"/> is less than 1.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, the lengths do not fit together, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> expertWeights,
        DeviceTensor destination, int topK, bool accumulate)
    {
        const string op = nameof(MoeCombine);
        expertOutput = Act(op, nameof(expertOutput), expertOutput, null);
        CheckView(op, nameof(slotRows), slotRows, expertOutput.Runtime);
        CheckView(op, nameof(expertWeights), expertWeights, expertOutput.Runtime);
        destination = Act(op, nameof(destination), destination, expertOutput.Runtime);
        OpChecks.AtLeast1(op, nameof(topK), topK);
        int tokens = OpChecks.Rows(op, nameof(slotRows), slotRows.Length, topK, "topK");
        long slots = slotRows.Length;
        if (expertOutput.Length == 0 || expertOutput.Length % slots != 0 || expertOutput.Length / slots > int.MaxValue)
            ThrowHelper.Argument(op, nameof(expertOutput), $"expertOutput has {expertOutput.Length} elements, not [tokens * topK, hidden] for tokens * topK = slotRows.Length = {slots}.");
        int hidden = (int)(expertOutput.Length / slots);
        OpChecks.LongEnough(op, nameof(expertWeights), expertWeights.Length, slots, SizeText.Of("tokens * topK", tokens, topK));
        long outputs = (long)tokens * hidden;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, SizeText.Of("tokens * hidden", tokens, hidden));
        var dst = destination.Slice(0, outputs);
        var weights = expertWeights.Slice(0, slots);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(expertOutput), expertOutput);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(expertWeights), DeviceTensor.FromView(weights));
        using var call = Dispatch(new OpSignature(op, Activations(expertOutput, dst)));
        call.Backend.MoeCombine(expertOutput, slotRows, weights, dst, tokens, topK, hidden, accumulate);
    }
}
