using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using static System.FormattableString;

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
        // Counted once here, so that an inventory too large for 64 bits is refused when it is made.
        Total = SizeMath.Sum(Invariant($"the number of parameters of the model (the sum of its {groups.Count} weight groups)"), "",
            groups.Select(g => g.Parameters));
        // A routed-expert group counts num_experts_per_tok of its n_routed_experts: no more than the group itself.
        ActivePerToken = SizeMath.Sum("the number of parameters active per token", "", groups.Select(g => g.Role == WeightRole.RoutedExperts
            ? SizeMath.Product($"the number of active parameters of {g.Name}", "", g.Parameters / shape.Experts, shape.ExpertsPerToken)
            : g.Parameters));
    }

    public ModelShape Shape { get; }
    public IReadOnlyList<WeightGroup> Groups { get; }

    /// <summary>All parameters.</summary>
    public long Total { get; }

    /// <summary>Parameters one token runs through: everything but the routed experts it was not sent to.</summary>
    public long ActivePerToken { get; }

    /// <summary>
    /// The weight groups of <paramref name="s"/>, counted in checked 64-bit arithmetic.
    /// </summary>
    /// <exception cref="OverflowException">A width, a group or the total is 2^63 parameters or more; the message names it.</exception>
    public static ParameterInventory Of(ModelShape s)
    {
        var groups = new List<WeightGroup>();
        long h = s.Hidden;
        groups.Add(new("embed_tokens", WeightRole.Embedding, s.Vocab, h, 1, false));
        if (!s.TieEmbeddings)
            groups.Add(new("lm_head", WeightRole.LmHead, s.Vocab, h, 1, true)); // quantised by --quant, unless tied
        groups.Add(new("norms", WeightRole.Small, 1, h, 2L * s.Layers + 1, false));

        long layers = s.Layers;
        if (s.IsMla)
        {
            long qOut = SizeMath.Product("the q projection's output width", "", s.Heads, (long)s.QkNopeHeadDim + s.QkRopeHeadDim);
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
            groups.Add(new("kv_a_proj_with_mqa", WeightRole.Attention, (long)s.KvLoraRank + s.QkRopeHeadDim, h, layers, true));
            groups.Add(new("kv_a_layernorm", WeightRole.Small, 1, s.KvLoraRank, layers, false));
            // Never quantised by the runner: loaded into dense per-head matrices (W_UK^T, W_UV), FP8 checkpoints' included.
            groups.Add(new("kv_b_proj", WeightRole.Attention, SizeMath.Product("kv_b_proj's output width", "", s.Heads, (long)s.QkNopeHeadDim + s.VHeadDim), s.KvLoraRank, layers, false));
            groups.Add(new("o_proj", WeightRole.Attention, h, checked((long)s.Heads * s.VHeadDim), layers, true));
        }
        else
        {
            long q = checked((long)s.Heads * s.HeadDim), kv = checked((long)s.KvHeads * s.HeadDim);
            groups.Add(new("q_proj", WeightRole.Attention, q, h, layers, true));
            groups.Add(new("k_proj", WeightRole.Attention, kv, h, layers, true));
            groups.Add(new("v_proj", WeightRole.Attention, kv, h, layers, true));
            groups.Add(new("o_proj", WeightRole.Attention, h, q, layers, true));
            if (s.QkvBias)
                groups.Add(new("q/k/v biases", WeightRole.Small, 1, SizeMath.Sum("the q/k/v bias width", "", [q, kv, kv]), layers, false));
        }

        long moeLayers = s.MoeLayers, denseLayers = layers - moeLayers;
        if (denseLayers > 0)
        {
            groups.Add(new("mlp gate/up_proj", WeightRole.Mlp, s.Intermediate, h, 2 * denseLayers, true));
            groups.Add(new("mlp down_proj", WeightRole.Mlp, h, s.Intermediate, denseLayers, true));
        }
        if (moeLayers > 0)
        {
            long experts = checked(moeLayers * s.Experts); // < 2^62, as are the other counts: ints taken in pairs
            groups.Add(new("experts gate/up_proj", WeightRole.RoutedExperts, s.MoeIntermediate, h, checked(2 * experts), true));
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
