namespace DeepSeekKernels;

/// <summary>
/// The RoPE parameters a <see cref="RopeTable"/> is built from: a model's <c>rope_theta</c>,
/// <c>rope_scaling</c> (<c>rope_parameters</c> in transformers 5) and <c>max_position_embeddings</c>. Fields a
/// kind does not use are ignored. The meaning of every field, and its default, is that of Hugging Face
/// transformers 5.x (<c>modeling_rope_utils.py</c>).
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The frequency computation (<c>rope_type</c>).</summary>
    public RopeKind Kind { get; init; } = RopeKind.Default;

    /// <summary>The base (<c>rope_theta</c>); finite and &gt; 0.</summary>
    public double Theta { get; init; } = 10000;

    /// <summary>
    /// The scaling factor (<c>factor</c>). Required for <see cref="RopeKind.Linear"/> and <see cref="RopeKind.Llama3"/>.
    /// For <see cref="RopeKind.Yarn"/>, null means <c>MaxPositions / OriginalMaxPositions</c> (transformers 5.x:
    /// an explicit factor takes precedence over that ratio).
    /// </summary>
    public double? Factor { get; init; }

    /// <summary>
    /// The pre-training context length (<c>original_max_position_embeddings</c>), used by
    /// <see cref="RopeKind.Yarn"/> and <see cref="RopeKind.Llama3"/>; null means <see cref="MaxPositions"/>,
    /// as transformers' rope standardisation defaults it.
    /// </summary>
    public int? OriginalMaxPositions { get; init; }

    /// <summary>The model's <c>max_position_embeddings</c> (0 if unknown): the fallback for the two fields above.</summary>
    public int MaxPositions { get; init; }

    /// <summary>YaRN <c>beta_fast</c> (0 means the default, 32, as transformers' <c>or 32</c>).</summary>
    public double BetaFast { get; init; } = 32;

    /// <summary>YaRN <c>beta_slow</c> (0 means the default, 1, as transformers' <c>or 1</c>).</summary>
    public double BetaSlow { get; init; } = 1;

    /// <summary>YaRN <c>mscale</c>: with <see cref="MscaleAllDim"/> (both non-null and non-zero) sets the attention factor.</summary>
    public double? Mscale { get; init; }

    /// <summary>YaRN <c>mscale_all_dim</c>.</summary>
    public double? MscaleAllDim { get; init; }

    /// <summary>
    /// YaRN <c>attention_factor</c> override; null means computed: <c>get_mscale(factor, mscale) /
    /// get_mscale(factor, mscale_all_dim)</c> when both are set (non-zero), else <c>get_mscale(factor)</c>,
    /// where <c>get_mscale(s, m) = s &lt;= 1 ? 1 : 0.1 * m * ln(s) + 1</c>. The other kinds use 1.
    /// </summary>
    public double? AttentionFactor { get; init; }

    /// <summary>YaRN <c>truncate</c>: floor/ceil the correction range (default true).</summary>
    public bool Truncate { get; init; } = true;

    /// <summary>Llama 3 <c>low_freq_factor</c> (1 in Llama 3.1).</summary>
    public double LowFreqFactor { get; init; } = 1;

    /// <summary>Llama 3 <c>high_freq_factor</c> (4 in Llama 3.1).</summary>
    public double HighFreqFactor { get; init; } = 4;

    /// <summary>Plain RoPE with base <paramref name="theta"/>.</summary>
    public static RopeScaling Plain(double theta) => new() { Theta = theta };
}
