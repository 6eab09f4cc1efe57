namespace DeepSeekKernels.Checkpoints;

/// <summary>The architectures the runner implements, one per supported config.json <c>model_type</c>.</summary>
public enum ModelArchitecture
{
    /// <summary>"deepseek_v3": DeepSeek-V3 and R1; MLA with q_lora_rank, sigmoid-scored grouped MoE.</summary>
    DeepSeekV3,
    /// <summary>"deepseek_v2": DeepSeek-V2 and V2-Lite; MLA (V2-Lite without q_lora_rank), softmax-scored MoE.</summary>
    DeepSeekV2,
    /// <summary>"llama": Llama 3 and the R1-Distill-Llama models; GQA.</summary>
    Llama,
    /// <summary>"qwen2": Qwen2.5 and the R1-Distill-Qwen models; GQA with q/k/v biases.</summary>
    Qwen2,
}
