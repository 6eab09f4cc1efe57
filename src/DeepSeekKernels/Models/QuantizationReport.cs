using DeepSeekKernels.Quantization;

namespace DeepSeekKernels.Models;

/// <summary>
/// What loading with <see cref="Requested"/> did to the checkpoint's linear weights, counted in checkpoint tensors
/// (one expert's gate_proj is one tensor): how many were quantised at load, how many the checkpoint already stored in
/// FP8 or, from a GPTQ/AWQ checkpoint, INT4 (kept as stored), and which could not be stored as asked and stayed dense
/// (INT4: in features not a multiple of 128). Embeddings, norms, biases, the MoE router and MLA's kv_b_proj are never candidates and are not counted.
/// </summary>
public sealed record QuantizationReport(WeightQuantization Requested, int Quantized, int AlreadyFp8, IReadOnlyList<string> KeptDense)
{
    /// <summary>The report of a model loaded without quantisation.</summary>
    public static QuantizationReport None { get; } = new(WeightQuantization.None, 0, 0, []);

    /// <summary>Linear weights a GPTQ/AWQ checkpoint stores in INT4 already (kept as stored).</summary>
    public int AlreadyInt4 { get; init; }

    /// <summary>
    /// One line for a user, e.g. "int4: 36 weight tensors quantised; 12 kept dense (in features not a multiple of 128:
    /// model.layers.0.mlp.down_proj.weight [128, 96], ...)"; empty when nothing was asked.
    /// </summary>
    public string Describe()
    {
        if (Requested == WeightQuantization.None)
            return "";
        var parts = new List<string> { Quantized == 0 ? "no weight tensor could be quantised" : $"{Quantized} weight tensor{S(Quantized)} quantised" };
        if (AlreadyFp8 > 0)
            parts.Add($"{AlreadyFp8} already FP8 in the checkpoint, kept as stored");
        if (AlreadyInt4 > 0)
            parts.Add($"{AlreadyInt4} already INT4 in the checkpoint (GPTQ/AWQ), kept as stored");
        if (KeptDense.Count > 0)
        {
            const int shown = 3;
            string names = string.Join(", ", KeptDense.Take(shown)) + (KeptDense.Count > shown ? $" and {KeptDense.Count - shown} more" : "");
            parts.Add($"{KeptDense.Count} kept dense (in features not a multiple of {WeightQuantizations.GroupSize}, which INT4 groups need: {names})");
        }
        return $"{Requested.Name()}: {string.Join("; ", parts)}";
    }

    static string S(int n) => n == 1 ? "" : "s";
}
