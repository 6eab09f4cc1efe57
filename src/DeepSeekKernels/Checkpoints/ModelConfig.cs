using System.Globalization;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// A model's config.json, read and checked: <see cref="Load"/> or <see cref="Parse"/>. Each property is the
/// PascalCase of its Hugging Face key (named in its doc) with Hugging Face's default where the key may be
/// absent. Unknown keys are ignored, null reads as absent, integers may be written as floats. A model the
/// runner does not implement is refused with an <see cref="UnsupportedModelException"/>; an impossible
/// config (non-positive sizes, heads that do not divide, more experts per token than experts, ...) with a
/// <see cref="CheckpointException"/>; both name the file and the key.
/// </summary>
public sealed class ModelConfig
{
    /// <summary>The model_type values supported, in the order error messages list them.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = ["deepseek_v3", "deepseek_v2", "llama", "qwen2"];

    internal ModelConfig() { }

    /// <summary>
    /// Reads <paramref name="pathToConfigJsonOrFolder"/>: a config.json file, or a model folder holding one.
    /// </summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable, not JSON, or the config is impossible.</exception>
    /// <exception cref="UnsupportedModelException">The model is not one the runner implements.</exception>
    public static ModelConfig Load(string pathToConfigJsonOrFolder)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathToConfigJsonOrFolder);
        string path = Path.GetFullPath(pathToConfigJsonOrFolder);
        if (Directory.Exists(path))
            path = Path.Combine(path, "config.json");
        if (!File.Exists(path))
            throw new CheckpointException($"{path}: config file not found", path, null);
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot read: {ex.Message}", path, null, ex);
        }
        return Parse(json, path);
    }

    /// <summary>Parses the text of a config.json; <paramref name="sourceName"/> (its path) names it in errors.</summary>
    /// <exception cref="CheckpointException">Not a JSON object, or the config is impossible.</exception>
    /// <exception cref="UnsupportedModelException">The model is not one the runner implements.</exception>
    public static ModelConfig Parse(string json, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourceName);
        return ModelConfigParser.Parse(json, sourceName);
    }

    /// <summary>Where the config came from (the config.json path, or the name given to <see cref="Parse"/>).</summary>
    public string Source { get; internal init; } = "";

    // ---- architecture ----

    /// <summary><c>model_type</c>, as written: "deepseek_v3", "deepseek_v2", "llama" or "qwen2".</summary>
    public string ModelType { get; internal init; } = "";

    /// <summary>The architecture <see cref="ModelType"/> names.</summary>
    public ModelArchitecture Architecture { get; internal init; }

    /// <summary>True for DeepSeek-V2/V3: MLA attention, and MoE layers when <see cref="NRoutedExperts"/> is set.</summary>
    public bool IsDeepSeek => Architecture is ModelArchitecture.DeepSeekV3 or ModelArchitecture.DeepSeekV2;

    /// <summary><c>vocab_size</c>: rows of the embedding and of lm_head.</summary>
    public int VocabSize { get; internal init; }

    /// <summary><c>hidden_size</c>: the residual stream's width.</summary>
    public int HiddenSize { get; internal init; }

    /// <summary><c>intermediate_size</c>: the dense MLP's width (DeepSeek: of the first <see cref="FirstKDenseReplace"/> layers).</summary>
    public int IntermediateSize { get; internal init; }

    /// <summary><c>num_hidden_layers</c>: decoder layers (DeepSeek's MTP layers not counted; see <see cref="NumNextnPredictLayers"/>).</summary>
    public int NumHiddenLayers { get; internal init; }

    /// <summary><c>num_attention_heads</c>: query heads.</summary>
    public int NumAttentionHeads { get; internal init; }

    /// <summary><c>num_key_value_heads</c>: key/value heads (GQA); defaults to <see cref="NumAttentionHeads"/>. Unused by MLA.</summary>
    public int NumKeyValueHeads { get; internal init; }

    /// <summary>
    /// <c>head_dim</c>: llama/qwen2: the width of each q, k and v head, default hidden_size / num_attention_heads.
    /// DeepSeek: as Hugging Face sets it, <see cref="QkRopeHeadDim"/> (the rotary width); see <see cref="QkHeadDim"/> and <see cref="VHeadDim"/>.
    /// </summary>
    public int HeadDim { get; internal init; }

    /// <summary>The width of each query and key head: qk_nope_head_dim + qk_rope_head_dim for DeepSeek, <see cref="HeadDim"/> otherwise.</summary>
    public int QkHeadDim => IsDeepSeek ? QkNopeHeadDim + QkRopeHeadDim : HeadDim;

    /// <summary><c>rms_norm_eps</c>: RMSNorm epsilon; default 1e-6.</summary>
    public double RmsNormEps { get; internal init; }

    /// <summary><c>max_position_embeddings</c>: the longest context the config allows.</summary>
    public int MaxPositionEmbeddings { get; internal init; }

    /// <summary><c>bos_token_id</c>; null when absent.</summary>
    public int? BosTokenId { get; internal init; }

    /// <summary><c>eos_token_id</c> (an int or a list in config.json); empty when absent.</summary>
    public IReadOnlyList<int> EosTokenIds { get; internal init; } = [];

    /// <summary><c>tie_word_embeddings</c>: lm_head shares the embedding (no lm_head.weight stored); default false.</summary>
    public bool TieWordEmbeddings { get; internal init; }

    /// <summary>
    /// <c>attention_bias</c>; default false. llama: biases on q, k, v and o projections. DeepSeek: on
    /// q_a_proj (or q_proj), kv_a_proj_with_mqa and o_proj. Not a qwen2 key (false); see <see cref="QkvBias"/>.
    /// </summary>
    public bool AttentionBias { get; internal init; }

    /// <summary>True when the q, k and v projections carry biases: always for qwen2, <see cref="AttentionBias"/> for llama.</summary>
    public bool QkvBias => Architecture == ModelArchitecture.Qwen2 || AttentionBias;

    /// <summary><c>hidden_act</c>: the MLP activation; always "silu" (anything else is refused).</summary>
    public string HiddenAct { get; internal init; } = "silu";

    /// <summary><c>dtype</c> (transformers 5) or <c>torch_dtype</c> (the hub's configs): "bfloat16", "float16", ...; null when absent.</summary>
    public string? Dtype { get; internal init; }

    // ---- RoPE ----

    /// <summary><c>rope_theta</c> (or <c>rope_parameters.rope_theta</c>): the RoPE base; default 10000.</summary>
    public double RopeTheta { get; internal init; }

    /// <summary><c>rope_scaling</c> (or the scaling keys of <c>rope_parameters</c>); <see cref="RopeScalingConfig.None"/> when absent.</summary>
    public RopeScalingConfig RopeScaling { get; internal init; } = RopeScalingConfig.None;

    /// <summary>
    /// <c>rope_interleave</c>: the rotary dimensions of q and k are stored interleaved (x0, y0, x1, y1, ...) rather
    /// than in halves; default true for DeepSeek, false otherwise.
    /// </summary>
    public bool RopeInterleave { get; internal init; }

    // ---- MLA (DeepSeek; 0 or null otherwise) ----

    /// <summary><c>q_lora_rank</c>: the rank of the query's low-rank projection (q_a_proj, q_b_proj); null means a plain q_proj (V2-Lite).</summary>
    public int? QLoraRank { get; internal init; }

    /// <summary><c>kv_lora_rank</c>: the width of the compressed KV latent (kv_a_proj_with_mqa, kv_b_proj).</summary>
    public int KvLoraRank { get; internal init; }

    /// <summary><c>qk_nope_head_dim</c>: the non-rotary part of each query/key head.</summary>
    public int QkNopeHeadDim { get; internal init; }

    /// <summary><c>qk_rope_head_dim</c>: the rotary part of each query/key head (the key's is shared by all heads).</summary>
    public int QkRopeHeadDim { get; internal init; }

    /// <summary><c>v_head_dim</c>: the width of each value head (DeepSeek); <see cref="HeadDim"/> for llama/qwen2.</summary>
    public int VHeadDim { get; internal init; }

    // ---- MoE (DeepSeek; only when NRoutedExperts is set) ----

    /// <summary><c>n_routed_experts</c>: routed experts per MoE layer; null for a dense model.</summary>
    public int? NRoutedExperts { get; internal init; }

    /// <summary><c>n_shared_experts</c>: shared experts (one MLP of n_shared_experts * moe_intermediate_size); default 1 for V3, 0 for V2.</summary>
    public int NSharedExperts { get; internal init; }

    /// <summary><c>num_experts_per_tok</c>: routed experts each token uses (top-k).</summary>
    public int NumExpertsPerTok { get; internal init; }

    /// <summary><c>moe_intermediate_size</c>: each expert's MLP width.</summary>
    public int MoeIntermediateSize { get; internal init; }

    /// <summary><c>first_k_dense_replace</c>: the first k layers have a dense MLP; default 0.</summary>
    public int FirstKDenseReplace { get; internal init; }

    /// <summary><c>moe_layer_freq</c>: every n-th layer from first_k_dense_replace on is MoE; default 1.</summary>
    public int MoeLayerFreq { get; internal init; } = 1;

    /// <summary><c>n_group</c>: expert groups for group-limited routing; default 1.</summary>
    public int NGroup { get; internal init; } = 1;

    /// <summary><c>topk_group</c>: groups a token may route into; default 1.</summary>
    public int TopkGroup { get; internal init; } = 1;

    /// <summary><c>topk_method</c>: default noaux_tc for V3, greedy for V2.</summary>
    public MoeTopKMethod TopkMethod { get; internal init; }

    /// <summary><c>scoring_func</c>: default sigmoid for V3, softmax for V2.</summary>
    public MoeScoring ScoringFunc { get; internal init; }

    /// <summary><c>norm_topk_prob</c>: renormalise the chosen experts' weights to sum to 1; default true for V3, false for V2.</summary>
    public bool NormTopkProb { get; internal init; }

    /// <summary><c>routed_scaling_factor</c>: multiplies the routed experts' weights; default 1.</summary>
    public double RoutedScalingFactor { get; internal init; } = 1;

    // ---- other ----

    /// <summary><c>quantization_config</c>: block-scaled FP8, or GPTQ/AWQ INT4; null for an unquantised checkpoint.</summary>
    public QuantizationConfig? Quantization { get; internal init; }

    /// <summary><c>num_nextn_predict_layers</c>: DeepSeek-V3's multi-token-prediction layers, stored after the decoder layers; the runner ignores them. Default 0.</summary>
    public int NumNextnPredictLayers { get; internal init; }

    /// <summary>True when the model has MoE layers (<see cref="NRoutedExperts"/> is set).</summary>
    public bool IsMoe => NRoutedExperts != null;

    /// <summary>
    /// True when decoder layer <paramref name="layer"/> has an MoE block rather than a dense MLP:
    /// n_routed_experts is set, layer &gt;= first_k_dense_replace and layer % moe_layer_freq == 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is not in [0, <see cref="NumHiddenLayers"/>).</exception>
    public bool IsMoeLayer(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, NumHiddenLayers);
        return NRoutedExperts != null && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;
    }

    /// <summary>One line: model type and the main sizes.</summary>
    public override string ToString()
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{ModelType}: {NumHiddenLayers} layers, hidden {HiddenSize}, {NumAttentionHeads} heads ({NumKeyValueHeads} kv), vocab {VocabSize}");
        if (IsMoe)
            text += string.Create(CultureInfo.InvariantCulture, $", {NRoutedExperts} experts (top {NumExpertsPerTok}, {NSharedExperts} shared)");
        if (Quantization != null)
            text += $", {Quantization.QuantMethod} {(Quantization.IsFp8 ? Quantization.Format : "int4")}";
        return text;
    }
}
