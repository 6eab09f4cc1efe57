namespace DeepSeekKernels.Checkpoints;

/// <summary>How a DeepSeek router turns gate logits into scores (config.json <c>scoring_func</c>).</summary>
public enum MoeScoringFunction
{
    /// <summary>"softmax" over all experts (DeepSeek-V2).</summary>
    Softmax,
    /// <summary>"sigmoid" of each logit (DeepSeek-V3).</summary>
    Sigmoid,
}
