using System.Globalization;
using System.Text.Json;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// config.json to <see cref="ModelConfig"/>: reads each key with Hugging Face's default, refuses what the
/// runner does not implement, then checks that the sizes fit together.
/// </summary>
internal static class ModelConfigParser
{
    public static ModelConfig Parse(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new CheckpointException($"{source}: not valid JSON ({ex.Message})", source, null, ex);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{source}: not a JSON object", source, null);
            return Parse(new ConfigJson(document.RootElement, source, ""));
        }
    }

    static ModelConfig Parse(ConfigJson c)
    {
        string modelType = c.String("model_type") ?? throw c.Error("model_type", "is missing");
        var architecture = modelType switch
        {
            "deepseek_v3" => ModelArchitecture.DeepSeekV3,
            "deepseek_v2" => ModelArchitecture.DeepSeekV2,
            "llama" => ModelArchitecture.Llama,
            "qwen2" => ModelArchitecture.Qwen2,
            _ => throw c.Unsupported("model_type", modelType, string.Join(", ", ModelConfig.SupportedModelTypes)),
        };
        bool deepSeek = architecture is ModelArchitecture.DeepSeekV3 or ModelArchitecture.DeepSeekV2;
        bool v3 = architecture == ModelArchitecture.DeepSeekV3;

        string hiddenAct = c.String("hidden_act") ?? "silu";
        if (hiddenAct != "silu")
            throw c.Unsupported("hidden_act", hiddenAct, "silu");
        if (architecture == ModelArchitecture.Llama && c.Bool("mlp_bias") == true)
            throw c.Unsupported("mlp_bias", "true", "false");
        if (architecture == ModelArchitecture.Qwen2 && c.Bool("use_sliding_window") == true)
            throw c.Unsupported("use_sliding_window", "true", "false (full attention in every layer)");
        var quantization = ParseQuantization(c);

        int vocab = c.RequiredPositive("vocab_size");
        int hidden = c.RequiredPositive("hidden_size");
        int intermediate = c.RequiredPositive("intermediate_size");
        int layers = c.RequiredPositive("num_hidden_layers");
        int heads = c.RequiredPositive("num_attention_heads");
        int kvHeads = c.Positive("num_key_value_heads", heads);
        if (heads % kvHeads != 0)
            throw c.Error("num_key_value_heads", $"({kvHeads}) must divide num_attention_heads ({heads})");
        int maxPositions = c.RequiredPositive("max_position_embeddings");
        double eps = c.Double("rms_norm_eps") ?? 1e-6;
        if (eps <= 0)
            throw c.Error("rms_norm_eps", $"must be positive, got {Text(eps)}");
        if (!float.IsFinite((float)eps) || (float)eps <= 0) // the norms compute in float32
            throw c.Error("rms_norm_eps", $"must be a positive float32 (about 1e-45 to 3e38), got {Text(eps)}");

        int? bos = c.Int("bos_token_id");
        if (bos is int b)
            CheckTokenId(c, "bos_token_id", b, vocab);
        var eos = c.IntOrIntList("eos_token_id") ?? [];
        foreach (int e in eos)
            CheckTokenId(c, "eos_token_id", e, vocab);

        var (ropeTheta, rope) = RopeConfigParser.Parse(c);

        int headDim, vHeadDim, kvLoraRank = 0, qkNope = 0, qkRope = 0;
        int? qLoraRank = null;
        if (deepSeek)
        {
            qLoraRank = c.Int("q_lora_rank");
            if (qLoraRank is int q && q <= 0)
                throw c.Error("q_lora_rank", $"must be positive or null, got {q}");
            kvLoraRank = c.RequiredPositive("kv_lora_rank");
            qkNope = c.RequiredPositive("qk_nope_head_dim");
            qkRope = c.RequiredPositive("qk_rope_head_dim");
            if (qkRope % 2 != 0)
                throw c.Error("qk_rope_head_dim", $"must be even (RoPE rotates pairs), got {qkRope}");
            vHeadDim = c.RequiredPositive("v_head_dim");
            headDim = qkRope;
        }
        else
        {
            int? explicitHeadDim = c.Int("head_dim");
            if (explicitHeadDim is int h)
            {
                headDim = h > 0 ? h : throw c.Error("head_dim", $"must be positive, got {h}");
            }
            else
            {
                if (hidden % heads != 0)
                    throw c.Error("num_attention_heads", $"({heads}) must divide hidden_size ({hidden}) when head_dim is not given");
                headDim = hidden / heads;
            }
            if (headDim % 2 != 0)
                throw c.Error("head_dim", $"must be even (RoPE rotates pairs), got {headDim}");
            vHeadDim = headDim;
        }

        var moe = deepSeek && c.Has("n_routed_experts") ? ParseMoe(c, v3) : DenseDefaults(v3);

        return new ModelConfig
        {
            Source = c.Source,
            ModelType = modelType,
            Architecture = architecture,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = eps,
            MaxPositionEmbeddings = maxPositions,
            BosTokenId = bos,
            EosTokenIds = eos,
            TieWordEmbeddings = c.Bool("tie_word_embeddings") ?? false,
            AttentionBias = architecture != ModelArchitecture.Qwen2 && (c.Bool("attention_bias") ?? false),
            HiddenAct = hiddenAct,
            Dtype = c.String("dtype") ?? c.String("torch_dtype"),
            RopeTheta = ropeTheta,
            RopeScaling = rope,
            RopeInterleave = c.Bool("rope_interleave") ?? deepSeek,
            QLoraRank = qLoraRank,
            KvLoraRank = kvLoraRank,
            QkNopeHeadDim = qkNope,
            QkRopeHeadDim = qkRope,
            VHeadDim = vHeadDim,
            NRoutedExperts = moe.Experts,
            NSharedExperts = moe.Shared,
            NumExpertsPerTok = moe.PerToken,
            MoeIntermediateSize = moe.Intermediate,
            FirstKDenseReplace = moe.FirstDense,
            MoeLayerFreq = moe.Freq,
            NGroup = moe.Groups,
            TopkGroup = moe.TopkGroup,
            TopkMethod = moe.Method,
            ScoringFunc = moe.Scoring,
            NormTopkProb = moe.NormTopk,
            RoutedScalingFactor = moe.Scaling,
            Quantization = quantization,
            NumNextnPredictLayers = deepSeek ? c.NonNegative("num_nextn_predict_layers", 0) : 0,
        };
    }

    /// <summary>The MoE keys of a DeepSeek config, checked against each other.</summary>
    readonly record struct Moe(int? Experts, int Shared, int PerToken, int Intermediate, int FirstDense, int Freq,
        int Groups, int TopkGroup, MoeTopKMethod Method, MoeScoring Scoring, bool NormTopk, double Scaling);

    static Moe ParseMoe(ConfigJson c, bool v3)
    {
        int experts = c.RequiredPositive("n_routed_experts");
        int perToken = c.RequiredPositive("num_experts_per_tok");
        if (perToken > experts)
            throw c.Error("num_experts_per_tok", $"({perToken}) is more than n_routed_experts ({experts})");
        int groups = c.Positive("n_group", 1);
        if (experts % groups != 0)
            throw c.Error("n_group", $"({groups}) must divide n_routed_experts ({experts})");
        int topkGroup = c.Positive("topk_group", 1);
        if (topkGroup > groups)
            throw c.Error("topk_group", $"({topkGroup}) is more than n_group ({groups})");
        var method = ParseTopKMethod(c, v3);
        int reachable = topkGroup * (experts / groups);
        if (method != MoeTopKMethod.Greedy && perToken > reachable)
            throw c.Error("num_experts_per_tok", $"({perToken}) is more than the {reachable} experts of topk_group ({topkGroup}) groups of {experts / groups}");
        double scaling = c.Double("routed_scaling_factor") ?? 1;
        if (scaling <= 0)
            throw c.Error("routed_scaling_factor", $"must be positive, got {Text(scaling)}");
        return new Moe(
            experts,
            c.NonNegative("n_shared_experts", v3 ? 1 : 0),
            perToken,
            c.RequiredPositive("moe_intermediate_size"),
            c.NonNegative("first_k_dense_replace", 0),
            c.Positive("moe_layer_freq", 1),
            groups,
            topkGroup,
            method,
            ParseScoring(c, v3),
            c.Bool("norm_topk_prob") ?? v3,
            scaling);
    }

    /// <summary>A dense model: no experts; the routing fields keep the architecture's defaults.</summary>
    static Moe DenseDefaults(bool v3) => new(null, 0, 0, 0, 0, 1, 1, 1,
        v3 ? MoeTopKMethod.NoAuxTc : MoeTopKMethod.Greedy,
        v3 ? MoeScoring.Sigmoid : MoeScoring.Softmax,
        v3, 1);

    static MoeTopKMethod ParseTopKMethod(ConfigJson c, bool v3) => c.String("topk_method") switch
    {
        null => v3 ? MoeTopKMethod.NoAuxTc : MoeTopKMethod.Greedy,
        "greedy" => MoeTopKMethod.Greedy,
        "group_limited_greedy" => MoeTopKMethod.GroupLimitedGreedy,
        "noaux_tc" => MoeTopKMethod.NoAuxTc,
        var other => throw c.Unsupported("topk_method", other, "greedy, group_limited_greedy, noaux_tc"),
    };

    static MoeScoring ParseScoring(ConfigJson c, bool v3) => c.String("scoring_func") switch
    {
        null => v3 ? MoeScoring.Sigmoid : MoeScoring.Softmax,
        "softmax" => MoeScoring.Softmax,
        "sigmoid" => MoeScoring.Sigmoid,
        var other => throw c.Unsupported("scoring_func", other, "softmax, sigmoid"),
    };

    static QuantizationConfig? ParseQuantization(ConfigJson root)
    {
        if (root.Object("quantization_config") is not ConfigJson q)
            return null;
        string method = q.String("quant_method") ?? throw q.Error("quant_method", "is missing");
        switch (method)
        {
            case "fp8":
                break;
            case "gptq":
            case "awq":
                return new QuantizationConfig { QuantMethod = method, Int4 = ParseInt4(q, method) };
            default:
                throw q.Unsupported("quant_method", method,
                    "fp8 (block-scaled e4m3, as DeepSeek-V3 ships), gptq and awq (4-bit, group-wise, as the hub's INT4 checkpoints)");
        }
        string format = q.String("fmt") ?? "e4m3";
        if (format != "e4m3")
            throw q.Unsupported("fmt", format, "e4m3");
        string scheme = q.String("activation_scheme") ?? "dynamic";
        if (scheme != "dynamic")
            throw q.Unsupported("activation_scheme", scheme, "dynamic");
        int rows = 128, cols = 128;
        if (q.TryGet("weight_block_size", out var block))
        {
            if (block.ValueKind != JsonValueKind.Array || block.GetArrayLength() != 2
                || !block[0].TryGetInt32(out rows) || !block[1].TryGetInt32(out cols) || rows <= 0 || cols <= 0)
                throw q.Error("weight_block_size", $"must be 2 positive integers [rows, cols], got {block.GetRawText()}");
        }
        return new QuantizationConfig { QuantMethod = method, Format = format, ActivationScheme = scheme, WeightBlockRows = rows, WeightBlockCols = cols };
    }

    /// <summary>
    /// A GPTQ or AWQ quantization_config: 4 bits (<c>bits</c>, AWQ also <c>w_bit</c>), <c>group_size</c> (AWQ also
    /// <c>q_group_size</c>) a positive multiple of 32 or -1, and the packing: GPTQ <c>checkpoint_format</c> "gptq" (default)
    /// or "gptq_v2", no act-order (<c>desc_act</c>), no Marlin repacking; AWQ <c>version</c> "gemm" with zero points.
    /// </summary>
    static Int4CheckpointScheme ParseInt4(ConfigJson q, string method)
    {
        bool awq = method == "awq";
        string bitsKey = awq && !q.Has("bits") && q.Has("w_bit") ? "w_bit" : "bits";
        int bits = q.Int(bitsKey) ?? throw q.Error(bitsKey, "is missing");
        if (bits != 4)
            throw q.Unsupported(bitsKey, bits.ToString(CultureInfo.InvariantCulture), "4 (the INT4 scheme the kernels run)");
        string groupKey = awq && !q.Has("group_size") && q.Has("q_group_size") ? "q_group_size" : "group_size";
        int group = q.Int(groupKey) ?? throw q.Error(groupKey, "is missing");
        if (group != -1 && (group <= 0 || group % 32 != 0))
            throw q.Unsupported(groupKey, group.ToString(CultureInfo.InvariantCulture),
                "a positive multiple of 32, or -1 (one group per row): an INT4 group must be whole 16-byte loads of codes");
        if (awq)
        {
            string version = q.String("version") ?? "gemm";
            if (!string.Equals(version, "gemm", StringComparison.OrdinalIgnoreCase))
                throw q.Unsupported("version", version, "gemm (AutoAWQ's GEMM packing; GEMV, Marlin and ExLlama repackings are not read)");
            if (q.Bool("zero_point") == false)
                throw q.Unsupported("zero_point", "false", "true (zero points stored in qzeros)");
            return new Int4CheckpointScheme(Int4CheckpointFormat.AwqGemm, group);
        }
        if (q.Bool("desc_act") == true)
            throw q.Unsupported("desc_act", "true",
                "false: act-order checkpoints permute each layer's groups through g_idx, which the INT4 kernels' contiguous groups cannot follow");
        if (q.Bool("is_marlin_format") == true)
            throw q.Unsupported("is_marlin_format", "true", "false (GPTQ's own packing)");
        var format = (q.String("checkpoint_format") ?? "gptq") switch
        {
            "gptq" => Int4CheckpointFormat.Gptq,
            "gptq_v2" => Int4CheckpointFormat.GptqV2,
            var other => throw q.Unsupported("checkpoint_format", other, "gptq, gptq_v2"),
        };
        return new Int4CheckpointScheme(format, group, q.Bool("sym") ?? true);
    }

    static void CheckTokenId(ConfigJson c, string key, int id, int vocab)
    {
        if (id < 0 || id >= vocab)
            throw c.Error(key, $"({id}) is outside the vocabulary [0, {vocab})");
    }

    static string Text(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
