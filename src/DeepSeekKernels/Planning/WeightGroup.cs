using static System.FormattableString;

namespace DeepSeekKernels.Planning;

/// <summary>What a group of weights is, for counting and for choosing how it is stored.</summary>
public enum WeightRole
{
    /// <summary>Token embedding table.</summary>
    Embedding,
    /// <summary>Output projection to the vocabulary.</summary>
    LmHead,
    /// <summary>Attention projections (q, k, v, o; MLA's q_a/q_b/kv_a/kv_b).</summary>
    Attention,
    /// <summary>Dense MLP and shared-expert projections.</summary>
    Mlp,
    /// <summary>Routed expert projections (only the chosen experts run per token).</summary>
    RoutedExperts,
    /// <summary>Norm weights, biases, the MoE router and its correction bias: small, kept in bf16/f32.</summary>
    Small,
}

/// <summary>
/// <paramref name="Count"/> matrices of [<paramref name="Rows"/>, <paramref name="Cols"/>] (out x in) with the
/// same role. <paramref name="Quantizable"/> weights are the linear layers the runner stores quantised under
/// <c>--quant int4|fp8</c> (<see cref="Quantization.WeightQuantization"/>): those DeepSeek's FP8 release stores in FP8
/// (it keeps embeddings, lm_head, norms and the router gate in bf16) and lm_head, less MLA's kv_b_proj, which the
/// runner loads into dense per-head matrices.
/// </summary>
public sealed record WeightGroup(string Name, WeightRole Role, long Rows, long Cols, long Count, bool Quantizable)
{
    /// <summary>Number of parameters.</summary>
    /// <exception cref="OverflowException">The count is 2^63 or more.</exception>
    public long Parameters
    {
        get
        {
            try
            {
                return checked(Rows * Cols * Count);
            }
            catch (OverflowException e)
            {
                throw SizeMath.TooLarge(Invariant($"the number of parameters of weight group '{Name}' ({Count:N0} matrices of [{Rows:N0}, {Cols:N0}])"), "", e);
            }
        }
    }
}
