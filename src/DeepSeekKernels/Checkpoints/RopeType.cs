namespace DeepSeekKernels.Checkpoints;

/// <summary>The RoPE variants the runner implements (Hugging Face's <c>rope_type</c>).</summary>
public enum RopeType
{
    /// <summary>"default" (or no scaling at all): inv_freq = theta^(-2i/d).</summary>
    Default,
    /// <summary>"linear": positions divided by the factor.</summary>
    Linear,
    /// <summary>"yarn": NTK-by-parts interpolation with an attention factor (DeepSeek-V2/V3 use it with mscale).</summary>
    Yarn,
    /// <summary>"llama3": Llama 3.1's frequency-dependent scaling.</summary>
    Llama3,
}
