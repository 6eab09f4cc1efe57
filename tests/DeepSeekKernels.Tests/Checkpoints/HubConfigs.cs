namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// The config.json files of real hub models, as the hub ships them (written out from the published files,
/// extra keys and all): the shapes <see cref="DeepSeekKernels.Checkpoints.ModelConfig"/> must accept.
/// </summary>
public static class HubConfigs
{
    /// <summary>deepseek-ai/DeepSeek-V3 (R1 has the same architecture).</summary>
    public const string DeepSeekV3 = """
    {
      "architectures": ["DeepseekV3ForCausalLM"],
      "attention_bias": false,
      "attention_dropout": 0.0,
      "auto_map": {
        "AutoConfig": "configuration_deepseek.DeepseekV3Config",
        "AutoModel": "modeling_deepseek.DeepseekV3Model",
        "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"
      },
      "aux_loss_alpha": 0.001,
      "bos_token_id": 0,
      "eos_token_id": 1,
      "ep_size": 1,
      "first_k_dense_replace": 3,
      "hidden_act": "silu",
      "hidden_size": 7168,
      "initializer_range": 0.02,
      "intermediate_size": 18432,
      "kv_lora_rank": 512,
      "max_position_embeddings": 163840,
      "model_type": "deepseek_v3",
      "moe_intermediate_size": 2048,
      "moe_layer_freq": 1,
      "n_group": 8,
      "n_routed_experts": 256,
      "n_shared_experts": 1,
      "norm_topk_prob": true,
      "num_attention_heads": 128,
      "num_experts_per_tok": 8,
      "num_hidden_layers": 61,
      "num_key_value_heads": 128,
      "num_nextn_predict_layers": 1,
      "pretraining_tp": 1,
      "q_lora_rank": 1536,
      "qk_nope_head_dim": 128,
      "qk_rope_head_dim": 64,
      "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128]
      },
      "rms_norm_eps": 1e-06,
      "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 40,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096,
        "type": "yarn"
      },
      "rope_theta": 10000,
      "routed_scaling_factor": 2.5,
      "scoring_func": "sigmoid",
      "seq_aux": true,
      "tie_word_embeddings": false,
      "topk_group": 4,
      "topk_method": "noaux_tc",
      "torch_dtype": "bfloat16",
      "transformers_version": "4.33.1",
      "use_cache": true,
      "v_head_dim": 128,
      "vocab_size": 129280
    }
    """;

    /// <summary>deepseek-ai/DeepSeek-V2-Lite.</summary>
    public const string DeepSeekV2Lite = """
    {
      "architectures": ["DeepseekV2ForCausalLM"],
      "attention_bias": false,
      "attention_dropout": 0.0,
      "auto_map": {
        "AutoConfig": "configuration_deepseek.DeepseekV2Config",
        "AutoModel": "modeling_deepseek.DeepseekV2Model",
        "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM"
      },
      "aux_loss_alpha": 0.001,
      "bos_token_id": 100000,
      "eos_token_id": 100001,
      "first_k_dense_replace": 1,
      "hidden_act": "silu",
      "hidden_size": 2048,
      "initializer_range": 0.02,
      "intermediate_size": 10944,
      "kv_lora_rank": 512,
      "max_position_embeddings": 163840,
      "model_type": "deepseek_v2",
      "moe_intermediate_size": 1408,
      "moe_layer_freq": 1,
      "n_group": 1,
      "n_routed_experts": 64,
      "n_shared_experts": 2,
      "norm_topk_prob": false,
      "num_attention_heads": 16,
      "num_experts_per_tok": 6,
      "num_hidden_layers": 27,
      "num_key_value_heads": 16,
      "pretraining_tp": 1,
      "q_lora_rank": null,
      "qk_nope_head_dim": 128,
      "qk_rope_head_dim": 64,
      "rms_norm_eps": 1e-06,
      "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 40,
        "mscale": 0.707,
        "mscale_all_dim": 0.707,
        "original_max_position_embeddings": 4096,
        "type": "yarn"
      },
      "rope_theta": 10000,
      "routed_scaling_factor": 1.0,
      "scoring_func": "softmax",
      "seq_aux": true,
      "tie_word_embeddings": false,
      "topk_group": 1,
      "topk_method": "greedy",
      "torch_dtype": "bfloat16",
      "transformers_version": "4.33.1",
      "use_cache": true,
      "v_head_dim": 128,
      "vocab_size": 102400
    }
    """;

    /// <summary>deepseek-ai/DeepSeek-R1-Distill-Llama-8B.</summary>
    public const string R1DistillLlama8B = """
    {
      "architectures": ["LlamaForCausalLM"],
      "attention_bias": false,
      "attention_dropout": 0.0,
      "bos_token_id": 128000,
      "eos_token_id": 128001,
      "hidden_act": "silu",
      "hidden_size": 4096,
      "initializer_range": 0.02,
      "intermediate_size": 14336,
      "max_position_embeddings": 131072,
      "mlp_bias": false,
      "model_type": "llama",
      "num_attention_heads": 32,
      "num_hidden_layers": 32,
      "num_key_value_heads": 8,
      "pretraining_tp": 1,
      "rms_norm_eps": 1e-05,
      "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3"
      },
      "rope_theta": 500000.0,
      "tie_word_embeddings": false,
      "torch_dtype": "bfloat16",
      "transformers_version": "4.43.0.dev0",
      "use_cache": true,
      "vocab_size": 128256
    }
    """;

    /// <summary>deepseek-ai/DeepSeek-R1-Distill-Llama-70B.</summary>
    public const string R1DistillLlama70B = """
    {
      "architectures": ["LlamaForCausalLM"],
      "attention_bias": false,
      "attention_dropout": 0.0,
      "bos_token_id": 128000,
      "eos_token_id": 128001,
      "hidden_act": "silu",
      "hidden_size": 8192,
      "initializer_range": 0.02,
      "intermediate_size": 28672,
      "max_position_embeddings": 131072,
      "mlp_bias": false,
      "model_type": "llama",
      "num_attention_heads": 64,
      "num_hidden_layers": 80,
      "num_key_value_heads": 8,
      "pretraining_tp": 1,
      "rms_norm_eps": 1e-05,
      "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3"
      },
      "rope_theta": 500000.0,
      "tie_word_embeddings": false,
      "torch_dtype": "bfloat16",
      "transformers_version": "4.47.0.dev0",
      "use_cache": true,
      "vocab_size": 128256
    }
    """;

    /// <summary>deepseek-ai/DeepSeek-R1-Distill-Qwen-7B.</summary>
    public const string R1DistillQwen7B = """
    {
      "architectures": ["Qwen2ForCausalLM"],
      "attention_dropout": 0.0,
      "bos_token_id": 151643,
      "eos_token_id": 151643,
      "hidden_act": "silu",
      "hidden_size": 3584,
      "initializer_range": 0.02,
      "intermediate_size": 18944,
      "max_position_embeddings": 131072,
      "max_window_layers": 28,
      "model_type": "qwen2",
      "num_attention_heads": 28,
      "num_hidden_layers": 28,
      "num_key_value_heads": 4,
      "rms_norm_eps": 1e-06,
      "rope_theta": 10000,
      "sliding_window": 4096,
      "tie_word_embeddings": false,
      "torch_dtype": "bfloat16",
      "transformers_version": "4.44.0",
      "use_cache": true,
      "use_mrope": false,
      "use_sliding_window": false,
      "vocab_size": 152064
    }
    """;
}
