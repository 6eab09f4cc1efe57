using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;

namespace DeepSeekKernels.Planning;

/// <summary>
/// Every weight of a model, grouped, from its shape alone (no checkpoint needed): the basis of `dsk info`
/// (parameter counts, total and active per token) and `dsk plan` (bytes per storage format).
/// DeepSeek's multi-token-prediction layers are not counted (the runner does not load them).
/// </summary>
public sealed class ParameterInventory
{
    ParameterInventory(ModelShape shape, IReadOnlyList<WeightGroup> groups)
    {
        Shape = shape;
        Groups = groups;
    }

    public ModelShape Shape { get; }
    public IReadOnlyList<WeightGroup> Groups { get; }

    /// <summary>All parameters.</summary>
    public long Total => Groups.Sum(g => g.Parameters);

    /// <summary>Parameters one token runs through: everything but the routed experts it was not sent to.</summary>
    public long ActivePerToken => Groups.Sum(g => g.Role == WeightRole.RoutedExperts
        ? g.Parameters / Shape.Experts * Shape.ExpertsPerToken
        : g.Parameters);

    public static ParameterInventory Of(ModelShape s)
    {
        var groups = new List<WeightGroup>();
        long h = s.Hidden;
        groups.Add(new("embed_tokens", WeightRole.Embedding, s.Vocab, h, 1, false));
        if (!s.TieEmbeddings)
            groups.Add(new("lm_head", WeightRole.LmHead, s.Vocab, h, 1, false));
        groups.Add(new("norms", WeightRole.Small, 1, h, 2L * s.Layers + 1, false));

        long layers = s.Layers;
        if (s.IsMla)
        {
            long qOut = (long)s.Heads * s.QkHeadDim;
            if (s.QLoraRank is int qLora)
            {
                groups.Add(new("q_a_proj", WeightRole.Attention, qLora, h, layers, true));
                groups.Add(new("q_a_layernorm", WeightRole.Small, 1, qLora, layers, false));
                groups.Add(new("q_b_proj", WeightRole.Attention, qOut, qLora, layers, true));
            }
            else
            {
                groups.Add(new("q_proj", WeightRole.Attention, qOut, h, layers, true));
            }
            groups.Add(new("kv_a_proj_with_mqa", WeightRole.Attention, s.KvLoraRank + s.QkRopeHeadDim, h, layers, true));
            groups.Add(new("kv_a_layernorm", WeightRole.Small, 1, s.KvLoraRank, layers, false));
            groups.Add(new("kv_b_proj", WeightRole.Attention, (long)s.Heads * (s.QkNopeHeadDim + s.VHeadDim), s.KvLoraRank, layers, true));
            groups.Add(new("o_proj", WeightRole.Attention, h, (long)s.Heads * s.VHeadDim, layers, true));
        }
        else
        {
            long q = (long)s.Heads * s.HeadDim, kv = (long)s.KvHeads * s.HeadDim;
            groups.Add(new("q_proj", WeightRole.Attention, q, h, layers, true));
            groups.Add(new("k_proj", WeightRole.Attention, kv, h, layers, true));
            groups.Add(new("v_proj", WeightRole.Attention, kv, h, layers, true));
            groups.Add(new("o_proj", WeightRole.Attention, h, q, layers, true));
            if (s.QkvBias)
                groups.Add(new("q/k/v biases", WeightRole.Small, 1, q + 2 * kv, layers, false));
        }

        long moeLayers = s.MoeLayers, denseLayers = layers - moeLayers;
        if (denseLayers > 0)
        {
            groups.Add(new("mlp gate/up_proj", WeightRole.Mlp, s.Intermediate, h, 2 * denseLayers, true));
            groups.Add(new("mlp down_proj", WeightRole.Mlp, h, s.Intermediate, denseLayers, true));
        }
        if (moeLayers > 0)
        {
            long experts = moeLayers * s.Experts;
            groups.Add(new("experts gate/up_proj", WeightRole.RoutedExperts, s.MoeIntermediate, h, 2 * experts, true));
            groups.Add(new("experts down_proj", WeightRole.RoutedExperts, h, s.MoeIntermediate, experts, true));
            if (s.SharedExperts > 0)
            {
                long shared = (long)s.MoeIntermediate * s.SharedExperts;
                groups.Add(new("shared_experts gate/up_proj", WeightRole.Mlp, shared, h, 2 * moeLayers, true));
                groups.Add(new("shared_experts down_proj", WeightRole.Mlp, h, shared, moeLayers, true));
            }
            groups.Add(new("router gate", WeightRole.Small, s.Experts, h, moeLayers, false));
            if (s.Architecture == ModelArchitecture.DeepSeekV3)
                groups.Add(new("e_score_correction_bias", WeightRole.Small, 1, s.Experts, moeLayers, false));
        }
        return new ParameterInventory(s, groups);
    }
}
