namespace DeepSeekKernels;

/// <summary>
/// A mixture-of-experts router's configuration, as config.json gives it: what <see cref="Ops.MoeRoute"/> needs.
/// </summary>
/// <remarks>
/// DeepSeek-V3: <c>Sigmoid</c>, <c>NoAuxTc</c>, Experts 256, TopK 8, Groups 8, TopKGroups 4, NormalizeTopK true,
/// RoutedScalingFactor 2.5, plus the e_score_correction_bias. DeepSeek-V2: <c>Softmax</c>, <c>GroupLimitedGreedy</c>
/// (V2-Lite: <c>Greedy</c>); Hugging Face transformers 5.x ignores <c>norm_topk_prob</c> for V2 and always
/// multiplies by <c>routed_scaling_factor</c>, so pass NormalizeTopK = false to reproduce it.
/// </remarks>
public sealed record MoeRouting
{
    /// <summary>Routed experts (<c>n_routed_experts</c>); at least 1.</summary>
    public int Experts { get; init; }

    /// <summary>Experts per token (<c>num_experts_per_tok</c>); 1 to Experts.</summary>
    public int TopK { get; init; }

    /// <summary>Logits to scores (<c>scoring_func</c>).</summary>
    public MoeScoring Scoring { get; init; } = MoeScoring.Softmax;

    /// <summary>Expert choice (<c>topk_method</c>).</summary>
    public MoeTopKMethod Method { get; init; } = MoeTopKMethod.Greedy;

    /// <summary>Expert groups (<c>n_group</c>); Experts must be a multiple. Ignored by <see cref="MoeTopKMethod.Greedy"/>.</summary>
    public int Groups { get; init; } = 1;

    /// <summary>Groups kept per token (<c>topk_group</c>); 1 to Groups. Ignored by <see cref="MoeTopKMethod.Greedy"/>.</summary>
    public int TopKGroups { get; init; } = 1;

    /// <summary>Divide the chosen weights by their sum (+ 1e-20) (<c>norm_topk_prob</c>).</summary>
    public bool NormalizeTopK { get; init; }

    /// <summary>Multiplies the weights, after normalisation (<c>routed_scaling_factor</c>).</summary>
    public double RoutedScalingFactor { get; init; } = 1.0;
}
