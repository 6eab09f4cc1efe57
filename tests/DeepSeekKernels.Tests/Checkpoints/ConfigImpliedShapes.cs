using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Every weight a Hugging Face checkpoint of <see cref="ModelConfig"/> must hold for its decoder layers, with
/// the shape config.json implies, written out independently of the runner's loader (linear weights are
/// [out_features, in_features]). FP8 scale tensors and DeepSeek's MTP layers are not listed.
/// </summary>
public static class ConfigImpliedShapes
{
    public static Dictionary<string, long[]> For(ModelConfig c)
    {
        long h = c.HiddenSize;
        var shapes = new Dictionary<string, long[]>
        {
            ["model.embed_tokens.weight"] = [c.VocabSize, h],
            ["model.norm.weight"] = [h],
        };
        if (!c.TieWordEmbeddings)
            shapes["lm_head.weight"] = [c.VocabSize, h];

        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            shapes[p + "input_layernorm.weight"] = [h];
            shapes[p + "post_attention_layernorm.weight"] = [h];
            if (c.IsDeepSeek)
            {
                long heads = c.NumAttentionHeads;
                if (c.QLoraRank is int q)
                {
                    shapes[p + "self_attn.q_a_proj.weight"] = [q, h];
                    shapes[p + "self_attn.q_a_layernorm.weight"] = [q];
                    shapes[p + "self_attn.q_b_proj.weight"] = [heads * (c.QkNopeHeadDim + c.QkRopeHeadDim), q];
                }
                else
                {
                    shapes[p + "self_attn.q_proj.weight"] = [heads * (c.QkNopeHeadDim + c.QkRopeHeadDim), h];
                }
                shapes[p + "self_attn.kv_a_proj_with_mqa.weight"] = [c.KvLoraRank + c.QkRopeHeadDim, h];
                shapes[p + "self_attn.kv_a_layernorm.weight"] = [c.KvLoraRank];
                shapes[p + "self_attn.kv_b_proj.weight"] = [heads * (c.QkNopeHeadDim + c.VHeadDim), c.KvLoraRank];
                shapes[p + "self_attn.o_proj.weight"] = [h, heads * c.VHeadDim];
            }
            else
            {
                long q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim;
                shapes[p + "self_attn.q_proj.weight"] = [q, h];
                shapes[p + "self_attn.k_proj.weight"] = [kv, h];
                shapes[p + "self_attn.v_proj.weight"] = [kv, h];
                shapes[p + "self_attn.o_proj.weight"] = [h, q];
                if (c.QkvBias)
                {
                    shapes[p + "self_attn.q_proj.bias"] = [q];
                    shapes[p + "self_attn.k_proj.bias"] = [kv];
                    shapes[p + "self_attn.v_proj.bias"] = [kv];
                }
            }

            if (c.IsMoeLayer(l))
            {
                long experts = c.NRoutedExperts!.Value, m = c.MoeIntermediateSize;
                shapes[p + "mlp.gate.weight"] = [experts, h];
                if (c.Architecture == ModelArchitecture.DeepSeekV3)
                    shapes[p + "mlp.gate.e_score_correction_bias"] = [experts];
                for (int e = 0; e < experts; e++)
                    AddMlp(shapes, $"{p}mlp.experts.{e}.", h, m);
                if (c.NSharedExperts > 0)
                    AddMlp(shapes, p + "mlp.shared_experts.", h, m * c.NSharedExperts);
            }
            else
            {
                AddMlp(shapes, p + "mlp.", h, c.IntermediateSize);
            }
        }
        return shapes;
    }

    static void AddMlp(Dictionary<string, long[]> shapes, string prefix, long hidden, long intermediate)
    {
        shapes[prefix + "gate_proj.weight"] = [intermediate, hidden];
        shapes[prefix + "up_proj.weight"] = [intermediate, hidden];
        shapes[prefix + "down_proj.weight"] = [hidden, intermediate];
    }
}
