namespace DeepSeekKernels;

/// <summary>How <see cref="Ops.MoeRoute"/> turns router logits into scores (config.json <c>scoring_func</c>).</summary>
public enum MoeScoring
{
    /// <summary>"softmax" over all experts, in float32 with the maximum subtracted (DeepSeek-V2).</summary>
    Softmax,
    /// <summary>"sigmoid" of each logit, 1 / (1 + exp(-logit)) (DeepSeek-V3).</summary>
    Sigmoid,
}
