namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// RoPE scaling, read from either form Hugging Face writes: the hub's <c>rope_scaling</c> object (type under
/// "rope_type" or the older "type") or transformers 5's <c>rope_parameters</c>. Both forms of one model give
/// equal records. The base frequency is <see cref="ModelConfig.RopeTheta"/>. Fields that do not apply to
/// <see cref="Type"/> keep their defaults.
/// </summary>
public sealed record RopeScalingConfig
{
    /// <summary>No scaling.</summary>
    public static RopeScalingConfig None { get; } = new();

    /// <summary><c>rope_type</c> (or <c>type</c>); <see cref="RopeKind.Default"/> when there is no scaling.</summary>
    public RopeKind Type { get; init; } = RopeKind.Default;

    /// <summary><c>factor</c>: the context extension (linear, yarn, llama3); 1 for default.</summary>
    public double Factor { get; init; } = 1;

    /// <summary>
    /// <c>original_max_position_embeddings</c>: the pre-training context (yarn: optional, and when present
    /// Hugging Face computes the attention factor from max_position_embeddings / this instead of
    /// <see cref="Factor"/>; llama3: required).
    /// </summary>
    public int? OriginalMaxPositionEmbeddings { get; init; }

    /// <summary><c>beta_fast</c> (yarn): the fast boundary of the NTK-by-parts ramp, in rotations; default 32.</summary>
    public double BetaFast { get; init; } = 32;

    /// <summary><c>beta_slow</c> (yarn): the slow boundary, in rotations; default 1.</summary>
    public double BetaSlow { get; init; } = 1;

    /// <summary><c>mscale</c> (yarn, DeepSeek): numerator of the attention factor; null when absent.</summary>
    public double? Mscale { get; init; }

    /// <summary><c>mscale_all_dim</c> (yarn, DeepSeek): denominator of the attention factor, and DeepSeek's softmax-scale correction; null when absent.</summary>
    public double? MscaleAllDim { get; init; }

    /// <summary><c>attention_factor</c> (yarn): an explicit attention factor, overriding the mscale computation; null when absent.</summary>
    public double? AttentionFactor { get; init; }

    /// <summary><c>truncate</c> (yarn): whether the correction range is rounded to whole dimensions (Hugging Face's default, true, when null).</summary>
    public bool? Truncate { get; init; }

    /// <summary><c>low_freq_factor</c> (llama3).</summary>
    public double LowFreqFactor { get; init; }

    /// <summary><c>high_freq_factor</c> (llama3).</summary>
    public double HighFreqFactor { get; init; }
}
