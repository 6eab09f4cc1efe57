using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Models;

/// <summary>Derives a <see cref="ModelShape"/> from a parsed config.json.</summary>
public static class ModelShapes
{
    public static ModelShape From(ModelConfig c) => new()
    {
        Architecture = c.Architecture,
        Vocab = c.VocabSize,
        Hidden = c.HiddenSize,
        Layers = c.NumHiddenLayers,
        Heads = c.NumAttentionHeads,
        KvHeads = c.Architecture is ModelArchitecture.DeepSeekV3 or ModelArchitecture.DeepSeekV2 ? c.NumAttentionHeads : c.NumKeyValueHeads,
        HeadDim = c.HeadDim,
        Intermediate = c.IntermediateSize,
        RmsNormEps = (float)c.RmsNormEps,
        MaxPositions = c.MaxPositionEmbeddings,
        TieEmbeddings = c.TieWordEmbeddings,
        QkvBias = c.Architecture == ModelArchitecture.Qwen2 || (c.Architecture == ModelArchitecture.Llama && c.AttentionBias),
        QLoraRank = c.QLoraRank,
        KvLoraRank = c.KvLoraRank,
        QkNopeHeadDim = c.QkNopeHeadDim,
        QkRopeHeadDim = c.QkRopeHeadDim,
        VHeadDim = c.VHeadDim,
        Experts = c.NRoutedExperts ?? 0,
        SharedExperts = c.NSharedExperts,
        ExpertsPerToken = c.NumExpertsPerTok,
        MoeIntermediate = c.MoeIntermediateSize,
        FirstDenseLayers = c.FirstKDenseReplace,
        MoeLayerFrequency = Math.Max(1, c.MoeLayerFreq),
        Fp8Block = c.Quantization is { IsFp8: true } q ? (q.WeightBlockRows, q.WeightBlockCols) : null,
        Int4Checkpoint = c.Quantization?.Int4,
    };
}
