namespace DeepSeekKernels;

/// <summary>How <see cref="Ops.MoeRoute"/> picks each token's experts (config.json <c>topk_method</c>).</summary>
public enum MoeTopKMethod
{
    /// <summary>"greedy": the TopK best choice scores over all experts (DeepSeek-V2-Lite).</summary>
    Greedy,
    /// <summary>
    /// "group_limited_greedy": a group's score is its best choice score; the TopKGroups best groups are kept, the
    /// other experts' choice scores set to 0, then the TopK best (DeepSeek-V2).
    /// </summary>
    GroupLimitedGreedy,
    /// <summary>
    /// "noaux_tc": a group's score is the sum of its two best choice scores; the TopKGroups best groups are kept,
    /// the other experts' choice scores set to 0, then the TopK best (DeepSeek-V3).
    /// </summary>
    NoAuxTc,
}
