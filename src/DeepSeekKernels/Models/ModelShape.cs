using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Models;

/// <summary>
/// Every dimension the model code, the parameter count and the memory plan need, derived once from
/// config.json (see <see cref="ModelShapes.From"/>). Sizes are in elements.
/// </summary>
public sealed record ModelShape
{
    public required ModelArchitecture Architecture { get; init; }
    public required int Vocab { get; init; }
    public required int Hidden { get; init; }
    public required int Layers { get; init; }
    /// <summary>Attention (query) heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention); equal to <see cref="Heads"/> for MLA.</summary>
    public required int KvHeads { get; init; }
    /// <summary>Head size of grouped-query attention (Llama, Qwen2).</summary>
    public required int HeadDim { get; init; }
    /// <summary>Intermediate size of the dense MLP layers.</summary>
    public required int Intermediate { get; init; }
    public required float RmsNormEps { get; init; }
    public required int MaxPositions { get; init; }
    public required bool TieEmbeddings { get; init; }
    /// <summary>q/k/v projections have biases (Qwen2; Llama with attention_bias).</summary>
    public required bool QkvBias { get; init; }

    // MLA (DeepSeek)
    public bool IsMla => Architecture is ModelArchitecture.DeepSeekV3 or ModelArchitecture.DeepSeekV2;
    /// <summary>q_lora_rank; null when q is one projection (V2-Lite).</summary>
    public int? QLoraRank { get; init; }
    public int KvLoraRank { get; init; }
    public int QkNopeHeadDim { get; init; }
    public int QkRopeHeadDim { get; init; }
    public int VHeadDim { get; init; }
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

    // MoE (DeepSeek)
    /// <summary>Routed experts; 0 for dense models.</summary>
    public int Experts { get; init; }
    public int SharedExperts { get; init; }
    public int ExpertsPerToken { get; init; }
    public int MoeIntermediate { get; init; }
    public int FirstDenseLayers { get; init; }
    public int MoeLayerFrequency { get; init; } = 1;

    /// <summary>True for a layer whose MLP is a mixture of experts.</summary>
    public bool IsMoeLayer(int layer) => Experts > 0 && layer >= FirstDenseLayers && layer % MoeLayerFrequency == 0;

    /// <summary>
    /// Number of MoE layers: the multiples of <see cref="MoeLayerFrequency"/> in [<see cref="FirstDenseLayers"/>,
    /// <see cref="Layers"/>), counted in closed form (a config may claim int.MaxValue layers).
    /// </summary>
    public int MoeLayers
    {
        get
        {
            if (Experts <= 0)
                return 0;
            long first = Math.Max(0, FirstDenseLayers), f = Math.Max(1, MoeLayerFrequency);
            if (first >= Layers)
                return 0;
            // multiples of f in [0, n): ceil(n / f)
            static long MultiplesBelow(long n, long f) => (n + f - 1) / f;
            return (int)(MultiplesBelow(Layers, f) - MultiplesBelow(first, f));
        }
    }

    /// <summary>The 128x128-style block of FP8 weights, or null for an unquantised checkpoint.</summary>
    public (int Rows, int Cols)? Fp8Block { get; init; }

    /// <summary>The INT4 scheme of a GPTQ or AWQ checkpoint (its quantised layers stored as qweight, qzeros and scales), else null.</summary>
    public Checkpoints.Int4CheckpointScheme? Int4Checkpoint { get; init; }
}
