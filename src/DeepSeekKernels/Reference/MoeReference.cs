using System.Buffers;
using System.Numerics.Tensors;

namespace DeepSeekKernels.Reference;

/// <summary>
/// Mixture-of-experts routing, permutation and combination: the specification of MoeRoute, MoePermute and
/// MoeCombine (see the op docs; routing mirrors transformers 5.x <c>DeepseekV3MoE.route_tokens_to_experts</c> and
/// <c>DeepseekV2Moe.route_tokens_to_experts</c>). Device data is checked where read: bad expert ids before anything is
/// written, a combine token with a bad row skipped. Arguments are otherwise assumed valid (the op API checks them).
/// </summary>
internal static unsafe class MoeReference
{
    /// <summary>expertIds/expertWeights [tokens, TopK] from routerLogits [tokens, Experts].</summary>
    public static void Route(nint logits, nint bias, nint ids, nint weights, int tokens, MoeRouting r)
    {
        int scratch = 2 * r.Experts + (r.Method != MoeTopKMethod.Greedy ? r.Groups : 1);
        if ((long)tokens * r.Experts < 1 << 14)
        {
            // a decode step's few tokens: one pooled scratch, no closure (the CPU backend's step allocates nothing)
            var buffers = ArrayPool<float>.Shared.Rent(scratch);
            for (int t = 0; t < tokens; t++)
                RouteToken(logits, bias, ids, weights, r, t, buffers);
            ArrayPool<float>.Shared.Return(buffers);
            return;
        }
        RouteInParallel(logits, bias, ids, weights, tokens, r, scratch);
    }

    static void RouteInParallel(nint logits, nint bias, nint ids, nint weights, int tokens, MoeRouting r, int scratch) =>
        Parallel.For(0, tokens, () => new float[scratch], (t, _, buffers) => { RouteToken(logits, bias, ids, weights, r, t, buffers); return buffers; }, _ => { });

    /// <summary>Token <paramref name="t"/>'s experts and weights; <paramref name="buffers"/> holds 2 * experts + groups floats.</summary>
    static void RouteToken(nint logits, nint bias, nint ids, nint weights, MoeRouting r, int t, float[] buffers)
    {
        int experts = r.Experts;
        bool grouped = r.Method != MoeTopKMethod.Greedy;
        int groups = grouped ? r.Groups : 1, perGroup = experts / groups;
        float scaling = (float)r.RoutedScalingFactor;
        var scores = new Span<float>(buffers, 0, experts);
        var choice = new Span<float>(buffers, experts, experts);
        var groupScores = new Span<float>(buffers, 2 * experts, groups);
        var logitRow = new ReadOnlySpan<float>((float*)logits + (long)t * experts, experts);
        if (r.Scoring == MoeScoring.Softmax)
        {
            // router_logits.softmax(dim=-1, dtype=torch.float32)
            float max = TensorPrimitives.Max(logitRow);
            TensorPrimitives.Subtract(logitRow, max, scores);
            TensorPrimitives.Exp(scores, scores);
            TensorPrimitives.Divide(scores, TensorPrimitives.Sum(scores), scores);
        }
        else
        {
            // router_logits.sigmoid() = 1 / (1 + exp(-x))
            TensorPrimitives.Negate(logitRow, scores);
            TensorPrimitives.Exp(scores, scores);
            TensorPrimitives.Add(scores, 1f, scores);
            TensorPrimitives.Divide(1f, scores, scores);
        }
        // scores_for_choice = scores + e_score_correction_bias
        if (bias != 0)
            TensorPrimitives.Add(scores, new ReadOnlySpan<float>((float*)bias, experts), choice);
        else
            scores.CopyTo(choice);
        if (grouped)
        {
            for (int g = 0; g < groups; g++)
            {
                var members = choice.Slice(g * perGroup, perGroup);
                groupScores[g] = r.Method == MoeTopKMethod.GroupLimitedGreedy
                    ? TensorPrimitives.Max(members)   // .max(dim=-1).values
                    : SumOfTopTwo(members);           // .topk(2, dim=-1)[0].sum(dim=-1)
            }
            // keep the topk_group best groups; masked_fill(~score_mask, 0.0) for the others
            Span<int> kept = stackalloc int[r.TopKGroups];
            TopK(groupScores, kept);
            for (int g = 0; g < groups; g++)
            {
                if (!kept.Contains(g))
                    choice.Slice(g * perGroup, perGroup).Clear();
            }
        }
        var idRow = new Span<int>((int*)ids + (long)t * r.TopK, r.TopK);
        var weightRow = new Span<float>((float*)weights + (long)t * r.TopK, r.TopK);
        TopK(choice, idRow);
        for (int k = 0; k < r.TopK; k++)
            weightRow[k] = scores[idRow[k]]; // scores.gather(1, topk_indices): unbiased
        if (r.NormalizeTopK)
        {
            float denominator = TensorPrimitives.Sum<float>(weightRow) + 1e-20f;
            TensorPrimitives.Divide(weightRow, denominator, weightRow);
        }
        TensorPrimitives.Multiply(weightRow, scaling, weightRow);
    }

    static float SumOfTopTwo(ReadOnlySpan<float> values)
    {
        Span<int> best = stackalloc int[2];
        TopK(values, best);
        return values[best[0]] + values[best[1]];
    }

    /// <summary>
    /// The indices of the destination.Length largest values, largest first; ties go to the lower index, and NaN
    /// counts as larger than any number (as torch.topk).
    /// </summary>
    static void TopK(ReadOnlySpan<float> values, Span<int> destination)
    {
        for (int k = 0; k < destination.Length; k++)
        {
            int best = -1;
            for (int i = 0; i < values.Length; i++)
            {
                if (destination[..k].Contains(i))
                    continue;
                if (best < 0 || Greater(values[i], values[best]))
                    best = i;
            }
            destination[k] = best;
        }
    }

    static bool Greater(float a, float b) => float.IsNaN(a) ? !float.IsNaN(b) : a > b;

    /// <summary>
    /// Stable counting sort of the slots s = t * topK + k by expert: offsets, slotRows (slot -> row) and permuted rows.
    /// Every expert id is checked first: the first outside [0, experts) throws naming it and its index.
    /// </summary>
    public static void Permute(nint x, ReadOnlySpan<int> expertIds, nint permuted, Span<int> offsets, Span<int> slotRows,
        int topK, int hidden, int experts)
    {
        for (int s = 0; s < expertIds.Length; s++)
        {
            if ((uint)expertIds[s] >= (uint)experts)
                throw new ArgumentOutOfRangeException("expertIds", expertIds[s],
                    $"MoePermute: expertIds[{s}] = {expertIds[s]} is outside [0, {experts}).");
        }
        offsets.Clear();
        foreach (int e in expertIds)
            offsets[e + 1]++;
        for (int e = 0; e < experts; e++)
            offsets[e + 1] += offsets[e];
        var cursor = ArrayPool<int>.Shared.Rent(experts);
        offsets[..experts].CopyTo(cursor);
        for (int s = 0; s < expertIds.Length; s++)
        {
            int row = cursor[expertIds[s]]++;
            slotRows[s] = row;
            new ReadOnlySpan<float>((float*)x + (long)(s / topK) * hidden, hidden)
                .CopyTo(new Span<float>((float*)permuted + (long)row * hidden, hidden));
        }
        ArrayPool<int>.Shared.Return(cursor);
    }

    /// <summary>
    /// y[t] = (accumulate ? y[t] : 0) + sum_k w[t, k] * expertOutput[slotRows[t * topK + k]]. A token one of whose rows is
    /// outside [0, tokens * topK) is skipped (its row of y left as it was), as the kernels skip it.
    /// </summary>
    public static void Combine(nint expertOutput, ReadOnlySpan<int> slotRows, nint weights, nint y, int tokens, int topK,
        int hidden, bool accumulate)
    {
        if ((long)slotRows.Length * hidden < 1 << 16)
        {
            // a decode step's few tokens: one pooled accumulator, no closure (the CPU backend's step allocates nothing)
            var sum = ArrayPool<float>.Shared.Rent(hidden);
            for (int t = 0; t < tokens; t++)
                CombineToken(expertOutput, slotRows, weights, y, t, topK, hidden, accumulate, sum);
            ArrayPool<float>.Shared.Return(sum);
            return;
        }
        CombineInParallel(expertOutput, slotRows.ToArray(), weights, y, tokens, topK, hidden, accumulate);
    }

    static void CombineInParallel(nint expertOutput, int[] rowOfSlot, nint weights, nint y, int tokens, int topK, int hidden, bool accumulate) =>
        Parallel.For(0, tokens, () => new float[hidden],
            (t, _, sum) => { CombineToken(expertOutput, rowOfSlot, weights, y, t, topK, hidden, accumulate, sum); return sum; }, _ => { });

    /// <summary>Token <paramref name="t"/>'s row of y; <paramref name="sum"/> holds at least <paramref name="hidden"/> floats.</summary>
    static void CombineToken(nint expertOutput, ReadOnlySpan<int> rowOfSlot, nint weights, nint y, int t, int topK, int hidden, bool accumulate,
        float[] sum)
    {
        int slots = rowOfSlot.Length;
        for (int k = 0; k < topK; k++)
        {
            if ((uint)rowOfSlot[t * topK + k] >= (uint)slots)
                return;
        }
        var acc = sum.AsSpan(0, hidden);
        acc.Clear();
        for (int k = 0; k < topK; k++)
        {
            int slot = t * topK + k;
            var output = new ReadOnlySpan<float>((float*)expertOutput + (long)rowOfSlot[slot] * hidden, hidden);
            TensorPrimitives.MultiplyAdd(output, ((float*)weights)[slot], acc, acc);
        }
        var destination = new Span<float>((float*)y + (long)t * hidden, hidden);
        if (accumulate)
            TensorPrimitives.Add(destination, acc, destination);
        else
            acc.CopyTo(destination);
    }
}
