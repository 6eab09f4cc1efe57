namespace DeepSeekKernels;

/// <summary>How a <see cref="RopeTable"/> computes its inverse frequencies (Hugging Face's <c>rope_type</c>).</summary>
public enum RopeKind
{
    /// <summary>"default" (no scaling): inv_freq[i] = 1 / theta^(2i / d).</summary>
    Default,
    /// <summary>"linear": the default frequencies divided by the factor.</summary>
    Linear,
    /// <summary>"yarn": NTK-by-parts interpolation with an attention factor (DeepSeek-V2/V3, Qwen2 long context).</summary>
    Yarn,
    /// <summary>"llama3": Llama 3.1's wavelength-dependent scaling.</summary>
    Llama3,
}
