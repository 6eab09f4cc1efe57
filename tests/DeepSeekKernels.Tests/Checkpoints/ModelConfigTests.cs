using DeepSeekKernels.Models;
using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using TopK = DeepSeekKernels.MoeTopKMethod;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>config.json: the real hub configs, both RoPE forms, defaults, and every refusal.</summary>
public class ModelConfigTests
{
    const string Source = "/models/test/config.json";

    static ModelConfig Parse(string json) => ModelConfig.Parse(json, Source);

    /// <summary><paramref name="json"/> with <paramref name="edit"/> applied.</summary>
    static string Edit(string json, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    static TException Refused<TException>(string json, params string[] fragments) where TException : CheckpointException
    {
        var ex = Assert.Throws<TException>(() => Parse(json));
        Assert.Contains(Source, ex.Message);
        foreach (var fragment in fragments)
            Assert.Contains(fragment, ex.Message);
        return ex;
    }

    // ---- the real configs ----

    [Fact]
    public void DeepSeekV3()
    {
        var c = Parse(HubConfigs.DeepSeekV3);
        Assert.Equal("deepseek_v3", c.ModelType);
        Assert.Equal(ModelArchitecture.DeepSeekV3, c.Architecture);
        Assert.True(c.IsDeepSeek);
        Assert.Equal((129280, 7168, 18432, 61, 128, 128), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads));
        Assert.Equal((1536, 512, 128, 64, 128), (c.QLoraRank!.Value, c.KvLoraRank, c.QkNopeHeadDim, c.QkRopeHeadDim, c.VHeadDim));
        Assert.Equal(192, c.QkHeadDim);
        Assert.Equal(64, c.HeadDim); // as Hugging Face sets it for DeepSeek: the rotary width
        Assert.Equal((256, 1, 8, 2048, 3, 1), (c.NRoutedExperts!.Value, c.NSharedExperts, c.NumExpertsPerTok, c.MoeIntermediateSize, c.FirstKDenseReplace, c.MoeLayerFreq));
        Assert.Equal((8, 4), (c.NGroup, c.TopkGroup));
        Assert.Equal(TopK.NoAuxTc, c.TopkMethod);
        Assert.Equal(MoeScoring.Sigmoid, c.ScoringFunc);
        Assert.True(c.NormTopkProb);
        Assert.Equal(2.5, c.RoutedScalingFactor);
        Assert.Equal(163840, c.MaxPositionEmbeddings);
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.Equal(10000, c.RopeTheta);
        Assert.Equal(new RopeScalingConfig
        {
            Type = RopeKind.Yarn, Factor = 40, OriginalMaxPositionEmbeddings = 4096, BetaFast = 32, BetaSlow = 1, Mscale = 1.0, MscaleAllDim = 1.0,
        }, c.RopeScaling);
        Assert.True(c.RopeInterleave);
        Assert.Equal(new QuantizationConfig(), c.Quantization);
        Assert.Equal([2L, 3], c.Quantization!.ScaleShape(129, 257));
        Assert.Equal(1, c.NumNextnPredictLayers);
        Assert.Equal("bfloat16", c.Dtype);
        Assert.Equal(0, c.BosTokenId);
        Assert.Equal([1], c.EosTokenIds);
        Assert.False(c.TieWordEmbeddings);
        Assert.Equal("silu", c.HiddenAct);
        Assert.False(c.IsMoeLayer(0));
        Assert.False(c.IsMoeLayer(2));
        Assert.True(c.IsMoeLayer(3));
        Assert.True(c.IsMoeLayer(60));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.IsMoeLayer(61));
        Assert.Equal(Source, c.Source);
        Assert.Contains("256 experts", c.ToString());
    }

    [Fact]
    public void DeepSeekV2Lite()
    {
        var c = Parse(HubConfigs.DeepSeekV2Lite);
        Assert.Equal(ModelArchitecture.DeepSeekV2, c.Architecture);
        Assert.Equal((102400, 2048, 10944, 27, 16), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads));
        Assert.Null(c.QLoraRank);
        Assert.Equal((512, 128, 64, 128), (c.KvLoraRank, c.QkNopeHeadDim, c.QkRopeHeadDim, c.VHeadDim));
        Assert.Equal((64, 2, 6, 1408, 1), (c.NRoutedExperts!.Value, c.NSharedExperts, c.NumExpertsPerTok, c.MoeIntermediateSize, c.FirstKDenseReplace));
        Assert.Equal(TopK.Greedy, c.TopkMethod);
        Assert.Equal(MoeScoring.Softmax, c.ScoringFunc);
        Assert.False(c.NormTopkProb);
        Assert.Equal(1.0, c.RoutedScalingFactor);
        Assert.Equal((1, 1), (c.NGroup, c.TopkGroup));
        Assert.Equal(new RopeScalingConfig
        {
            Type = RopeKind.Yarn, Factor = 40, OriginalMaxPositionEmbeddings = 4096, Mscale = 0.707, MscaleAllDim = 0.707,
        }, c.RopeScaling);
        Assert.True(c.RopeInterleave);
        Assert.Null(c.Quantization);
        Assert.Equal(0, c.NumNextnPredictLayers);
        Assert.False(c.IsMoeLayer(0));
        Assert.True(c.IsMoeLayer(1));
        Assert.True(c.IsMoeLayer(26));
    }

    [Theory]
    [InlineData(HubConfigs.R1DistillLlama8B, 4096, 32, 32, 8, 14336)]
    [InlineData(HubConfigs.R1DistillLlama70B, 8192, 80, 64, 8, 28672)]
    public void R1DistillLlama(string json, int hidden, int layers, int heads, int kvHeads, int intermediate)
    {
        var c = Parse(json);
        Assert.Equal(ModelArchitecture.Llama, c.Architecture);
        Assert.False(c.IsDeepSeek);
        Assert.Equal((128256, hidden, intermediate, layers, heads, kvHeads), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads));
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(128, c.QkHeadDim);
        Assert.Equal(128, c.VHeadDim);
        Assert.Equal(500000, c.RopeTheta);
        Assert.Equal(new RopeScalingConfig { Type = RopeKind.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 }, c.RopeScaling);
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.Equal(128000, c.BosTokenId);
        Assert.Equal([128001], c.EosTokenIds);
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.False(c.RopeInterleave);
        Assert.False(c.AttentionBias);
        Assert.False(c.QkvBias);
        Assert.Null(c.NRoutedExperts);
        Assert.False(c.IsMoe);
        Assert.False(c.IsMoeLayer(0));
        Assert.Null(c.QLoraRank);
        Assert.Equal(0, c.KvLoraRank);
    }

    [Fact]
    public void R1DistillQwen7B()
    {
        var c = Parse(HubConfigs.R1DistillQwen7B);
        Assert.Equal(ModelArchitecture.Qwen2, c.Architecture);
        Assert.Equal((152064, 3584, 18944, 28, 28, 4), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads));
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(10000, c.RopeTheta);
        Assert.Equal(RopeScalingConfig.None, c.RopeScaling);
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.Equal(151643, c.BosTokenId);
        Assert.Equal([151643], c.EosTokenIds);
        Assert.False(c.TieWordEmbeddings);
        Assert.True(c.QkvBias);
        Assert.False(c.AttentionBias);
        Assert.False(c.RopeInterleave);
    }

    // ---- RoPE forms ----

    /// <summary>The transformers 5 form of a hub config: rope_theta and rope_scaling folded into rope_parameters, dtype for torch_dtype.</summary>
    static string ToTransformers5(string hubJson) => Edit(hubJson, o =>
    {
        var parameters = new JsonObject { ["rope_theta"] = o["rope_theta"]!.DeepClone() };
        if (o["rope_scaling"] is JsonObject scaling)
        {
            foreach (var (key, value) in scaling)
                parameters[key == "type" ? "rope_type" : key] = value?.DeepClone();
        }
        else
        {
            parameters["rope_type"] = "default";
        }
        o.Remove("rope_theta");
        o.Remove("rope_scaling");
        o["rope_parameters"] = parameters;
        o["dtype"] = o["torch_dtype"]!.DeepClone();
        o.Remove("torch_dtype");
    });

    public static TheoryData<string> AllHubConfigs() => new(HubConfigs.DeepSeekV3, HubConfigs.DeepSeekV2Lite, HubConfigs.R1DistillLlama8B, HubConfigs.R1DistillLlama70B, HubConfigs.R1DistillQwen7B);

    [Theory, MemberData(nameof(AllHubConfigs))]
    public void BothRopeFormsGiveTheSameConfig(string hubJson)
    {
        string v5 = ToTransformers5(hubJson);
        Assert.Contains("rope_parameters", v5);
        Assert.DoesNotContain("rope_scaling", v5);
        var hub = Parse(hubJson);
        var five = Parse(v5);
        Assert.Equal(hub.RopeScaling, five.RopeScaling);
        Assert.Equal(hub.RopeTheta, five.RopeTheta);
        Assert.Equal(hub.Dtype, five.Dtype);
        Assert.Equal("bfloat16", five.Dtype);
    }

    [Fact]
    public void RopeParametersPerLayerTypeUseFullAttention()
    {
        string json = Edit(HubConfigs.R1DistillQwen7B, o =>
        {
            o.Remove("rope_theta");
            o["rope_parameters"] = new JsonObject { ["full_attention"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 1e6 } };
        });
        var c = Parse(json);
        Assert.Equal(1e6, c.RopeTheta);
        Assert.Equal(RopeScalingConfig.None, c.RopeScaling);
    }

    [Fact]
    public void TypeAndRopeTypeAreTheSameKey()
    {
        string withRopeType = Edit(HubConfigs.DeepSeekV3, o =>
        {
            var s = o["rope_scaling"]!.AsObject();
            s.Remove("type");
            s["rope_type"] = "yarn";
        });
        string withBoth = Edit(HubConfigs.DeepSeekV3, o => o["rope_scaling"]!["rope_type"] = "yarn");
        var expected = Parse(HubConfigs.DeepSeekV3).RopeScaling;
        Assert.Equal(expected, Parse(withRopeType).RopeScaling);
        Assert.Equal(expected, Parse(withBoth).RopeScaling);

        string disagreeing = Edit(HubConfigs.DeepSeekV3, o => o["rope_scaling"]!["rope_type"] = "linear");
        Refused<CheckpointException>(disagreeing, "rope_scaling.rope_type", "yarn", "linear");
    }

    [Fact]
    public void ContradictoryRopeFormsAreRefused()
    {
        string json = Edit(ToTransformers5(HubConfigs.R1DistillLlama8B), o => o["rope_theta"] = 10000);
        Refused<CheckpointException>(json, "rope_theta", "500000");

        string scaling = Edit(ToTransformers5(HubConfigs.R1DistillLlama8B), o => o["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 2 });
        Refused<CheckpointException>(scaling, "rope_parameters", "rope_scaling");
    }

    [Fact]
    public void LinearAndDefaultRope()
    {
        var linear = Parse(Edit(HubConfigs.R1DistillQwen7B, o => o["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4 }));
        Assert.Equal(new RopeScalingConfig { Type = RopeKind.Linear, Factor = 4 }, linear.RopeScaling);
        var explicitDefault = Parse(Edit(HubConfigs.R1DistillQwen7B, o => o["rope_scaling"] = new JsonObject { ["rope_type"] = "default" }));
        Assert.Equal(RopeScalingConfig.None, explicitDefault.RopeScaling);
        var noTheta = Parse(Edit(HubConfigs.R1DistillQwen7B, o => o.Remove("rope_theta")));
        Assert.Equal(10000, noTheta.RopeTheta);
    }

    [Fact]
    public void YarnOptionalKeys()
    {
        var c = Parse(Edit(HubConfigs.DeepSeekV3, o =>
        {
            var s = o["rope_scaling"]!.AsObject();
            s.Remove("beta_fast");
            s.Remove("beta_slow");
            s["attention_factor"] = 1.25;
            s["truncate"] = false;
        }));
        Assert.Equal(32, c.RopeScaling.BetaFast);
        Assert.Equal(1, c.RopeScaling.BetaSlow);
        Assert.Equal(1.25, c.RopeScaling.AttentionFactor);
        Assert.False(c.RopeScaling.Truncate);
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["rope_scaling"]!.AsObject().Remove("factor")), "rope_scaling.factor", "missing");
    }

    [Theory]
    [InlineData("dynamic")]
    [InlineData("longrope")]
    [InlineData("su")]
    public void UnsupportedRopeTypesAreNamed(string type)
    {
        string json = Edit(HubConfigs.R1DistillLlama8B, o => o["rope_scaling"] = new JsonObject { ["rope_type"] = type, ["factor"] = 2.0 });
        var ex = Refused<UnsupportedModelException>(json, $"'{type}'", "rope_scaling.rope_type", "yarn", "llama3");
        Assert.Equal(type, ex.Value);
        Assert.Equal("rope_scaling.rope_type", ex.Key);

        string v5 = Edit(ToTransformers5(HubConfigs.R1DistillLlama8B), o => o["rope_parameters"]!["rope_type"] = type);
        Refused<UnsupportedModelException>(v5, $"'{type}'", "rope_parameters.rope_type");
    }

    [Fact]
    public void Llama3RopeNeedsItsKeys()
    {
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["rope_scaling"]!.AsObject().Remove("low_freq_factor")), "low_freq_factor");
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["rope_scaling"]!.AsObject().Remove("original_max_position_embeddings")), "original_max_position_embeddings");
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["rope_scaling"]!["high_freq_factor"] = 0.5), "high_freq_factor");
    }

    [Fact]
    public void ScalingWithAFactorButNoType() =>
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["rope_scaling"]!.AsObject().Remove("rope_type")), "rope_scaling.rope_type", "missing");

    // ---- value forms ----

    [Fact]
    public void TorchDtypeAndDtypeAreTheSameKey()
    {
        Assert.Equal("bfloat16", Parse(HubConfigs.R1DistillQwen7B).Dtype);
        Assert.Equal("float16", Parse(Edit(HubConfigs.R1DistillQwen7B, o => { o.Remove("torch_dtype"); o["dtype"] = "float16"; })).Dtype);
        Assert.Null(Parse(Edit(HubConfigs.R1DistillQwen7B, o => o.Remove("torch_dtype"))).Dtype);
    }

    [Fact]
    public void EosMayBeAList()
    {
        var c = Parse(Edit(HubConfigs.R1DistillLlama8B, o => o["eos_token_id"] = new JsonArray(128001, 128008, 128009)));
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
        var none = Parse(Edit(HubConfigs.R1DistillLlama8B, o => { o["eos_token_id"] = null; o["bos_token_id"] = null; }));
        Assert.Empty(none.EosTokenIds);
        Assert.Null(none.BosTokenId);
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["eos_token_id"] = 128256), "eos_token_id", "128256", "vocabulary");
    }

    [Fact]
    public void IntegersWrittenAsFloatsAndNullsAreTolerated()
    {
        var c = Parse(Edit(HubConfigs.R1DistillLlama8B, o =>
        {
            o["hidden_size"] = 4096.0;
            o["num_key_value_heads"] = null; // defaults to num_attention_heads
            o["tie_word_embeddings"] = null;
            o["some_future_key"] = new JsonObject { ["nested"] = new JsonArray(1, 2) };
        }));
        Assert.Equal(4096, c.HiddenSize);
        Assert.Equal(32, c.NumKeyValueHeads);
        Assert.False(c.TieWordEmbeddings);

        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["hidden_size"] = 4096.5), "'hidden_size'", "integer");
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["hidden_size"] = "4096"), "'hidden_size'");
    }

    [Fact]
    public void DefaultsWhenKeysAreAbsent()
    {
        var v3 = Parse(Edit(HubConfigs.DeepSeekV3, o =>
        {
            foreach (var key in new[] { "topk_method", "scoring_func", "norm_topk_prob", "rope_interleave", "moe_layer_freq", "n_shared_experts", "routed_scaling_factor" })
                o.Remove(key);
        }));
        Assert.Equal(TopK.NoAuxTc, v3.TopkMethod);
        Assert.Equal(MoeScoring.Sigmoid, v3.ScoringFunc);
        Assert.True(v3.NormTopkProb);
        Assert.True(v3.RopeInterleave);
        Assert.Equal(1, v3.MoeLayerFreq);
        Assert.Equal(1, v3.NSharedExperts);
        Assert.Equal(1, v3.RoutedScalingFactor);

        var v2 = Parse(Edit(HubConfigs.DeepSeekV2Lite, o =>
        {
            foreach (var key in new[] { "topk_method", "scoring_func", "norm_topk_prob", "n_group", "topk_group", "first_k_dense_replace", "n_shared_experts" })
                o.Remove(key);
        }));
        Assert.Equal(TopK.Greedy, v2.TopkMethod);
        Assert.Equal(MoeScoring.Softmax, v2.ScoringFunc);
        Assert.False(v2.NormTopkProb);
        Assert.Equal((1, 1, 0, 0), (v2.NGroup, v2.TopkGroup, v2.FirstKDenseReplace, v2.NSharedExperts));

        var llama = Parse(Edit(HubConfigs.R1DistillLlama8B, o =>
        {
            foreach (var key in new[] { "rms_norm_eps", "hidden_act", "attention_bias", "tie_word_embeddings" })
                o.Remove(key);
        }));
        Assert.Equal(1e-6, llama.RmsNormEps);
        Assert.Equal("silu", llama.HiddenAct);
        Assert.False(llama.AttentionBias);

        var withBias = Parse(Edit(HubConfigs.R1DistillLlama8B, o => o["attention_bias"] = true));
        Assert.True(withBias.AttentionBias);
        Assert.True(withBias.QkvBias);

        var explicitHeadDim = Parse(Edit(HubConfigs.R1DistillLlama8B, o => o["head_dim"] = 64));
        Assert.Equal(64, explicitHeadDim.HeadDim);

        var denseDeepSeek = Parse(Edit(HubConfigs.DeepSeekV2Lite, o => o["n_routed_experts"] = null));
        Assert.False(denseDeepSeek.IsMoe);
        Assert.False(denseDeepSeek.IsMoeLayer(5));
    }

    // ---- refusals ----

    [Theory]
    [InlineData("mistral")]
    [InlineData("deepseek_v32")]
    [InlineData("qwen3")]
    public void UnknownModelType(string modelType)
    {
        var ex = Refused<UnsupportedModelException>(Edit(HubConfigs.R1DistillLlama8B, o => o["model_type"] = modelType),
            $"'{modelType}'", "deepseek_v3", "deepseek_v2", "llama", "qwen2");
        Assert.Equal("model_type", ex.Key);
        Assert.Equal(modelType, ex.Value);
    }

    [Fact]
    public void MissingModelType() =>
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o.Remove("model_type")), "model_type", "missing");

    [Theory]
    [InlineData("gelu")]
    [InlineData("relu")]
    public void UnsupportedHiddenAct(string act)
    {
        var ex = Refused<UnsupportedModelException>(Edit(HubConfigs.R1DistillQwen7B, o => o["hidden_act"] = act), "hidden_act", $"'{act}'", "silu");
        Assert.Equal("hidden_act", ex.Key);
    }

    [Fact]
    public void SlidingWindowQwen2IsRefused() =>
        Refused<UnsupportedModelException>(Edit(HubConfigs.R1DistillQwen7B, o => o["use_sliding_window"] = true), "use_sliding_window");

    [Fact]
    public void OtherQuantisationIsRefused()
    {
        var bnb = Refused<UnsupportedModelException>(Edit(HubConfigs.DeepSeekV3, o => o["quantization_config"] = new JsonObject { ["quant_method"] = "bitsandbytes", ["load_in_4bit"] = true }),
            "quantization_config.quant_method", "'bitsandbytes'", "fp8", "gptq", "awq");
        Assert.Equal("bitsandbytes", bnb.Value);
        Refused<UnsupportedModelException>(Edit(HubConfigs.DeepSeekV3, o => o["quantization_config"]!["fmt"] = "e5m2"), "quantization_config.fmt", "'e5m2'");
        Refused<UnsupportedModelException>(Edit(HubConfigs.DeepSeekV3, o => o["quantization_config"]!["activation_scheme"] = "static"), "activation_scheme", "'static'");
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["quantization_config"]!["weight_block_size"] = new JsonArray(128)), "weight_block_size");
        var defaultBlock = Parse(Edit(HubConfigs.DeepSeekV3, o => o["quantization_config"]!.AsObject().Remove("weight_block_size")));
        Assert.Equal((128, 128), (defaultBlock.Quantization!.WeightBlockRows, defaultBlock.Quantization.WeightBlockCols));
    }

    static string WithQuantization(string json, JsonObject quantization) => Edit(json, o => o["quantization_config"] = quantization);

    /// <summary>GPTQ and AWQ quantization_config blocks as the hub's R1-Distill INT4 checkpoints carry them (AutoGPTQ, GPTQModel, AutoAWQ, older AWQ keys).</summary>
    [Fact]
    public void GptqAndAwqConfigsAreRead()
    {
        var gptq = Parse(WithQuantization(HubConfigs.R1DistillQwen7B, new JsonObject
        {
            ["quant_method"] = "gptq", ["bits"] = 4, ["group_size"] = 128, ["desc_act"] = false, ["sym"] = true, ["damp_percent"] = 0.01,
            ["static_groups"] = false, ["true_sequential"] = true,
        })).Quantization!;
        Assert.Equal(new Int4CheckpointScheme(Int4CheckpointFormat.Gptq, 128, Symmetric: true), gptq.Int4);
        Assert.False(gptq.IsFp8);
        Assert.Equal("gptq int4, group 128, qzeros hold zero - 1 (gptq)", gptq.Describe());
        Assert.Null(ModelShapes.From(Parse(WithQuantization(HubConfigs.R1DistillQwen7B, new JsonObject { ["quant_method"] = "gptq", ["bits"] = 4, ["group_size"] = 128 }))).Fp8Block);

        var v2 = Parse(WithQuantization(HubConfigs.R1DistillLlama8B, new JsonObject
        {
            ["quant_method"] = "gptq", ["bits"] = 4, ["group_size"] = -1, ["sym"] = false, ["checkpoint_format"] = "gptq_v2",
        })).Quantization!;
        Assert.Equal(new Int4CheckpointScheme(Int4CheckpointFormat.GptqV2, -1), v2.Int4);
        Assert.Equal(4096, v2.Int4!.GroupOf(4096));
        Assert.Equal("gptq int4, one group per row, qzeros hold the zero (gptq_v2)", v2.Describe());

        var awq = Parse(WithQuantization(HubConfigs.R1DistillQwen7B, new JsonObject
        {
            ["quant_method"] = "awq", ["bits"] = 4, ["group_size"] = 128, ["version"] = "GEMM", ["zero_point"] = true, ["modules_to_not_convert"] = null,
        })).Quantization!;
        Assert.Equal(new Int4CheckpointScheme(Int4CheckpointFormat.AwqGemm, 128), awq.Int4);
        Assert.Equal("awq int4, group 128, AWQ GEMM packing", awq.Describe());

        var oldAwq = Parse(WithQuantization(HubConfigs.R1DistillQwen7B, new JsonObject { ["quant_method"] = "awq", ["w_bit"] = 4, ["q_group_size"] = 64, ["version"] = "gemm" }));
        Assert.Equal(new Int4CheckpointScheme(Int4CheckpointFormat.AwqGemm, 64), oldAwq.Quantization!.Int4);
        Assert.True(new QuantizationConfig().IsFp8);
    }

    [Theory]
    [InlineData("""{"quant_method": "gptq", "bits": 8, "group_size": 128}""", "quantization_config.bits", "'8'", "4")]
    [InlineData("""{"quant_method": "gptq", "bits": 4, "group_size": 48}""", "quantization_config.group_size", "'48'", "multiple of 32")]
    [InlineData("""{"quant_method": "gptq", "bits": 4, "group_size": 0}""", "quantization_config.group_size", "'0'")]
    [InlineData("""{"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": true}""", "quantization_config.desc_act", "act-order", "g_idx")]
    [InlineData("""{"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"}""", "quantization_config.checkpoint_format", "'marlin'", "gptq_v2")]
    [InlineData("""{"quant_method": "gptq", "bits": 4, "group_size": 128, "is_marlin_format": true}""", "quantization_config.is_marlin_format")]
    [InlineData("""{"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}""", "quantization_config.version", "'gemv'", "gemm")]
    [InlineData("""{"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": false}""", "quantization_config.zero_point", "'false'")]
    [InlineData("""{"quant_method": "awq", "w_bit": 3, "q_group_size": 128}""", "quantization_config.w_bit", "'3'")]
    public void UnsupportedInt4SchemesAreRefused(string quantization, params string[] fragments) =>
        Refused<UnsupportedModelException>(WithQuantization(HubConfigs.R1DistillQwen7B, JsonNode.Parse(quantization)!.AsObject()), fragments);

    [Fact]
    public void AnInt4ConfigWithoutBitsOrGroupIsRefused()
    {
        Refused<CheckpointException>(WithQuantization(HubConfigs.R1DistillQwen7B, new JsonObject { ["quant_method"] = "gptq", ["group_size"] = 128 }), "quantization_config.bits", "missing");
        Refused<CheckpointException>(WithQuantization(HubConfigs.R1DistillQwen7B, new JsonObject { ["quant_method"] = "awq", ["bits"] = 4 }), "quantization_config.group_size", "missing");
    }

    [Fact]
    public void HeadsMustDivideHiddenWhenHeadDimIsImplied()
    {
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => { o["num_attention_heads"] = 30; o["num_key_value_heads"] = 10; }),
            "'num_attention_heads'", "30", "hidden_size", "4096");
        // with an explicit head_dim, hidden need not be heads * head_dim
        var c = Parse(Edit(HubConfigs.R1DistillLlama8B, o => { o["num_attention_heads"] = 30; o["num_key_value_heads"] = 10; o["head_dim"] = 128; }));
        Assert.Equal(128, c.HeadDim);
    }

    [Fact]
    public void KeyValueHeadsMustDivideHeads() =>
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillQwen7B, o => o["num_key_value_heads"] = 3), "'num_key_value_heads'", "3", "28");

    [Theory]
    [InlineData("hidden_size", 0)]
    [InlineData("vocab_size", -1)]
    [InlineData("num_hidden_layers", 0)]
    [InlineData("intermediate_size", 0)]
    [InlineData("max_position_embeddings", 0)]
    [InlineData("num_key_value_heads", 0)]
    [InlineData("kv_lora_rank", 0)]
    [InlineData("qk_rope_head_dim", 0)]
    [InlineData("v_head_dim", -128)]
    [InlineData("q_lora_rank", 0)]
    [InlineData("moe_intermediate_size", 0)]
    [InlineData("n_routed_experts", 0)]
    [InlineData("num_experts_per_tok", 0)]
    [InlineData("moe_layer_freq", 0)]
    [InlineData("first_k_dense_replace", -1)]
    public void NonPositiveSizesAreNamed(string key, int value) =>
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o[key] = value), $"'{key}'");

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("vocab_size")]
    [InlineData("num_attention_heads")]
    [InlineData("kv_lora_rank")]
    [InlineData("moe_intermediate_size")]
    public void MissingRequiredKeysAreNamed(string key) =>
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o.Remove(key)), $"'{key}'", "missing");

    [Fact]
    public void ImpossibleRouting()
    {
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["num_experts_per_tok"] = 257), "'num_experts_per_tok'", "257", "n_routed_experts");
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["n_group"] = 7), "'n_group'", "7", "256");
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["topk_group"] = 9), "'topk_group'", "9", "n_group");
        // 8 groups of 32, top-1 group: at most 32 experts reachable
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => { o["topk_group"] = 1; o["num_experts_per_tok"] = 33; }), "'num_experts_per_tok'", "33");
        Refused<UnsupportedModelException>(Edit(HubConfigs.DeepSeekV3, o => o["topk_method"] = "random"), "topk_method", "'random'");
        Refused<UnsupportedModelException>(Edit(HubConfigs.DeepSeekV3, o => o["scoring_func"] = "tanh"), "scoring_func", "'tanh'");
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["routed_scaling_factor"] = 0), "'routed_scaling_factor'");
    }

    [Theory]
    [InlineData(0.0, "must be positive")]
    [InlineData(-1e-6, "must be positive")]
    [InlineData(1e40, "must be a positive float32")]  // found by ModelLoadingFuzzTests: loaded, then RMSNorm refused eps = Infinity
    [InlineData(1e-50, "must be a positive float32")] // rounds to 0 in float32
    public void RmsNormEpsilonMustBeAPositiveFloat32(double eps, string fragment) =>
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["rms_norm_eps"] = eps), "'rms_norm_eps'", fragment);

    [Fact]
    public void RopeDimensionsMustBeEven()
    {
        Refused<CheckpointException>(Edit(HubConfigs.DeepSeekV3, o => o["qk_rope_head_dim"] = 63), "'qk_rope_head_dim'", "even");
        Refused<CheckpointException>(Edit(HubConfigs.R1DistillLlama8B, o => o["head_dim"] = 127), "'head_dim'", "even");
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("[]")]
    [InlineData("")]
    public void NotAJsonObject(string json) => Refused<CheckpointException>(json);

    [Fact]
    public void LoadTakesAFileOrItsFolder()
    {
        string folder = CheckpointFixtures.HfTiny("qwen2");
        var fromFolder = ModelConfig.Load(folder);
        var fromFile = ModelConfig.Load(Path.Combine(folder, "config.json"));
        Assert.Equal(Path.GetFullPath(Path.Combine(folder, "config.json")), fromFolder.Source);
        Assert.Equal(fromFile.Source, fromFolder.Source);
        Assert.Equal(112, fromFolder.HiddenSize);
        Assert.Equal(16, fromFolder.HeadDim);
        Assert.Equal(1e6, fromFolder.RopeTheta);
        Assert.Null(fromFolder.BosTokenId);
        Assert.Empty(fromFolder.EosTokenIds);

        using var temp = new TempFolder();
        var missing = Assert.Throws<CheckpointException>(() => ModelConfig.Load(temp.Path));
        Assert.Contains(temp.File("config.json"), missing.Message);
    }
}
