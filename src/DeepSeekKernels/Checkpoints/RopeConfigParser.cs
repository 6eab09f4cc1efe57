using System.Globalization;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// RoPE settings from either form: the hub's top-level <c>rope_theta</c> + <c>rope_scaling</c> (type under
/// "rope_type" or the older "type"), or transformers 5's <c>rope_parameters</c> (rope_type, rope_theta and
/// the scaling keys in one object; for models with per-layer-type RoPE, its "full_attention" entry). When a
/// config holds both forms they must agree.
/// </summary>
internal static class RopeConfigParser
{
    const string Supported = "default, linear, yarn, llama3";

    public static (double Theta, RopeScalingConfig Scaling) Parse(ConfigJson c)
    {
        double? topTheta = c.Double("rope_theta");
        RopeScalingConfig? legacy = c.Object("rope_scaling") is ConfigJson s ? ParseScaling(s) : null;
        double theta;
        RopeScalingConfig scaling;
        if (c.Object("rope_parameters") is ConfigJson p)
        {
            if (!p.Has("rope_type") && !p.Has("rope_theta") && p.Object("full_attention") is ConfigJson full)
                p = full;
            double? parameterTheta = p.Double("rope_theta");
            if (parameterTheta is double pt && topTheta is double tt && pt != tt)
                throw c.Error("rope_parameters", $"says rope_theta {Text(pt)} but rope_theta says {Text(tt)}");
            theta = parameterTheta ?? topTheta ?? 10000;
            scaling = ParseScaling(p);
            if (legacy != null && legacy != scaling)
                throw c.Error("rope_parameters", "and rope_scaling describe different RoPE scalings");
        }
        else
        {
            theta = topTheta ?? 10000;
            scaling = legacy ?? RopeScalingConfig.None;
        }
        if (theta <= 0)
            throw c.Error("rope_theta", $"must be positive, got {Text(theta)}");
        return (theta, scaling);
    }

    static RopeScalingConfig ParseScaling(ConfigJson s)
    {
        string? ropeType = s.String("rope_type");
        string? type = s.String("type");
        if (ropeType != null && type != null && ropeType != type)
            throw s.Error("rope_type", $"('{ropeType}') and 'type' ('{type}') disagree");
        string? name = ropeType ?? type;
        if (name == null)
        {
            if (s.Has("factor"))
                throw s.Error("rope_type", "is missing (there is a factor, but no rope_type or type to say how to apply it)");
            name = "default";
        }

        double partial = s.Double("partial_rotary_factor") ?? 1;
        if (partial != 1)
            throw s.Unsupported("partial_rotary_factor", Text(partial), "1");

        string typeKey = ropeType != null ? "rope_type" : "type";
        switch (name)
        {
            case "default":
                return RopeScalingConfig.None;
            case "linear":
                return new RopeScalingConfig { Type = RopeKind.Linear, Factor = Factor(s) };
            case "yarn":
            {
                double betaFast = s.Double("beta_fast") ?? 32, betaSlow = s.Double("beta_slow") ?? 1;
                if (betaFast <= betaSlow)
                    throw s.Error("beta_fast", $"({Text(betaFast)}) must be greater than beta_slow ({Text(betaSlow)})");
                int? original = s.Int("original_max_position_embeddings");
                if (original is int o && o <= 0)
                    throw s.Error("original_max_position_embeddings", $"must be positive, got {o}");
                double? attentionFactor = s.Double("attention_factor");
                if (attentionFactor is double af && af <= 0)
                    throw s.Error("attention_factor", $"must be positive, got {Text(af)}");
                return new RopeScalingConfig
                {
                    Type = RopeKind.Yarn,
                    Factor = Factor(s),
                    OriginalMaxPositionEmbeddings = original,
                    BetaFast = betaFast,
                    BetaSlow = betaSlow,
                    Mscale = s.Double("mscale"),
                    MscaleAllDim = s.Double("mscale_all_dim"),
                    AttentionFactor = attentionFactor,
                    Truncate = s.Bool("truncate"),
                };
            }
            case "llama3":
            {
                double low = s.Double("low_freq_factor") ?? throw s.Error("low_freq_factor", "is missing (llama3 RoPE needs it)");
                double high = s.Double("high_freq_factor") ?? throw s.Error("high_freq_factor", "is missing (llama3 RoPE needs it)");
                if (low <= 0 || high <= low)
                    throw s.Error("high_freq_factor", $"({Text(high)}) must be greater than low_freq_factor ({Text(low)}) > 0");
                return new RopeScalingConfig
                {
                    Type = RopeKind.Llama3,
                    Factor = Factor(s),
                    LowFreqFactor = low,
                    HighFreqFactor = high,
                    OriginalMaxPositionEmbeddings = s.Int("original_max_position_embeddings") is int o && o > 0
                        ? o : throw s.Error("original_max_position_embeddings", "must be a positive integer (llama3 RoPE needs it)"),
                };
            }
            default:
                throw s.Unsupported(typeKey, name, Supported);
        }
    }

    static double Factor(ConfigJson s)
    {
        double factor = s.Double("factor") ?? throw s.Error("factor", "is missing");
        if (factor <= 0)
            throw s.Error("factor", $"must be positive, got {Text(factor)}");
        return factor;
    }

    static string Text(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
