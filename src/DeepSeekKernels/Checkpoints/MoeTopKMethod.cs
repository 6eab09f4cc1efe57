namespace DeepSeekKernels.Checkpoints;

/// <summary>How a DeepSeek router picks its experts (config.json <c>topk_method</c>).</summary>
public enum MoeTopKMethod
{
    /// <summary>"greedy": the top num_experts_per_tok scores over all experts (DeepSeek-V2-Lite).</summary>
    Greedy,
    /// <summary>"group_limited_greedy": keep the topk_group groups with the best single score, then top-k inside them (DeepSeek-V2).</summary>
    GroupLimitedGreedy,
    /// <summary>"noaux_tc": scores plus e_score_correction_bias; keep the topk_group groups with the best sum of their top two, then top-k inside them; weights from the uncorrected scores (DeepSeek-V3).</summary>
    NoAuxTc,
}
