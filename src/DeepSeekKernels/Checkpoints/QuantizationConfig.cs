using System.Globalization;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// config.json <c>quantization_config</c>: how the checkpoint stores its linear weights. Two families are read:
/// <list type="bullet">
/// <item>block-scaled FP8 (<c>quant_method</c> "fp8", DeepSeek-V3/R1 as shipped): every linear weight float8 e4m3fn with a
/// float32 <c>weight_scale_inv</c> per block of <see cref="WeightBlockRows"/> x <see cref="WeightBlockCols"/> (ceil at the
/// edges); dequantised weight = fp8 value * the scale of its block;</item>
/// <item>group-wise INT4 (<c>quant_method</c> "gptq" or "awq", the hub's R1-Distill and DeepSeek-V2 INT4 checkpoints):
/// each quantised linear layer stored as <c>qweight</c>, <c>qzeros</c> and float16 <c>scales</c> (GPTQ also
/// <c>g_idx</c>) in the packing <see cref="Int4"/> names, converted to ours at load
/// (<see cref="Quantization.Int4Layout"/>); the layers it left alone keep their <c>weight</c>.</item>
/// </list>
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary><c>quant_method</c>: "fp8", "gptq" or "awq".</summary>
    public string QuantMethod { get; init; } = "fp8";

    /// <summary><c>fmt</c>: "e4m3" (default when absent). FP8 only.</summary>
    public string Format { get; init; } = "e4m3";

    /// <summary><c>weight_block_size</c>[0]: rows (output features) per scale block; default 128. FP8 only.</summary>
    public int WeightBlockRows { get; init; } = 128;

    /// <summary><c>weight_block_size</c>[1]: columns (input features) per scale block; default 128. FP8 only.</summary>
    public int WeightBlockCols { get; init; } = 128;

    /// <summary><c>activation_scheme</c>: "dynamic" (activations quantised on the fly; the only scheme accepted). FP8 only.</summary>
    public string ActivationScheme { get; init; } = "dynamic";

    /// <summary>The INT4 packing and group size of a GPTQ or AWQ checkpoint; null for FP8.</summary>
    public Int4CheckpointScheme? Int4 { get; init; }

    /// <summary>Whether the linear weights are block-scaled FP8 (else INT4, <see cref="Int4"/>).</summary>
    public bool IsFp8 => Int4 is null;

    /// <summary>The shape of a weight's scale tensor: [ceil(rows / block rows), ceil(cols / block cols)].</summary>
    public long[] ScaleShape(long rows, long cols) =>
        [(rows + WeightBlockRows - 1) / WeightBlockRows, (cols + WeightBlockCols - 1) / WeightBlockCols];

    /// <summary>One line, e.g. "fp8 e4m3, 128x128 blocks, activations dynamic" or "gptq int4, group 128, zero - 1 stored".</summary>
    public string Describe() => Int4 is { } q
        ? $"{QuantMethod} {q}"
        : string.Create(CultureInfo.InvariantCulture, $"{QuantMethod} {Format}, {WeightBlockRows}x{WeightBlockCols} blocks, activations {ActivationScheme}");
}

/// <summary>The packings of group-wise INT4 checkpoints the loader converts (<see cref="Quantization.Int4Layout"/>).</summary>
public enum Int4CheckpointFormat
{
    /// <summary>GPTQ (AutoGPTQ, the hub's GPTQ checkpoints; <c>checkpoint_format</c> "gptq" or absent): qweight [K / 8, N], qzeros storing zero - 1.</summary>
    Gptq,

    /// <summary>GPTQModel's "gptq_v2": as <see cref="Gptq"/> with qzeros storing the zero itself.</summary>
    GptqV2,

    /// <summary>AutoAWQ's GEMM packing (<c>version</c> "gemm"): qweight [K, N / 8] in AWQ's interleaved nibble order.</summary>
    AwqGemm,
}

/// <summary>
/// A GPTQ or AWQ checkpoint's INT4 scheme: 4-bit codes with a float16 scale and a 4-bit zero point per group of
/// <see cref="GroupSize"/> in features (-1: one group per row, the whole in-feature width) in the packing <see cref="Format"/>.
/// </summary>
/// <param name="Format">The packing of qweight and qzeros.</param>
/// <param name="GroupSize"><c>group_size</c> (AWQ's <c>q_group_size</c>): a positive multiple of 32, or -1 for one group per row.</param>
/// <param name="Symmetric">GPTQ's <c>sym</c> (informational: the stored zeros are used as they are either way).</param>
public sealed record Int4CheckpointScheme(Int4CheckpointFormat Format, int GroupSize, bool Symmetric = false)
{
    /// <summary>The group size of a matrix with <paramref name="cols"/> in features: <see cref="GroupSize"/>, or cols for -1.</summary>
    public int GroupOf(int cols) => GroupSize == -1 ? cols : GroupSize;

    /// <summary>"int4, group 128, qzeros hold zero - 1 (gptq)".</summary>
    public override string ToString() =>
        $"int4, {(GroupSize == -1 ? "one group per row" : string.Create(CultureInfo.InvariantCulture, $"group {GroupSize}"))}, " + Format switch
        {
            Int4CheckpointFormat.Gptq => "qzeros hold zero - 1 (gptq)",
            Int4CheckpointFormat.GptqV2 => "qzeros hold the zero (gptq_v2)",
            _ => "AWQ GEMM packing",
        };
}
