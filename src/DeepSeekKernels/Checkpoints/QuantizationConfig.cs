namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// config.json <c>quantization_config</c> of a block-scaled FP8 checkpoint (DeepSeek-V3/R1 as shipped): every
/// linear weight float8 e4m3fn with a float32 <c>weight_scale_inv</c> per block of
/// <see cref="WeightBlockRows"/> x <see cref="WeightBlockCols"/> (ceil at the edges); dequantised weight =
/// fp8 value * the scale of its block. The only form accepted.
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary><c>quant_method</c>: "fp8".</summary>
    public string QuantMethod { get; init; } = "fp8";

    /// <summary><c>fmt</c>: "e4m3" (default when absent).</summary>
    public string Format { get; init; } = "e4m3";

    /// <summary><c>weight_block_size</c>[0]: rows (output features) per scale block; default 128.</summary>
    public int WeightBlockRows { get; init; } = 128;

    /// <summary><c>weight_block_size</c>[1]: columns (input features) per scale block; default 128.</summary>
    public int WeightBlockCols { get; init; } = 128;

    /// <summary><c>activation_scheme</c>: "dynamic" (activations quantised on the fly; the only scheme accepted).</summary>
    public string ActivationScheme { get; init; } = "dynamic";

    /// <summary>The shape of a weight's scale tensor: [ceil(rows / block rows), ceil(cols / block cols)].</summary>
    public long[] ScaleShape(long rows, long cols) =>
        [(rows + WeightBlockRows - 1) / WeightBlockRows, (cols + WeightBlockCols - 1) / WeightBlockCols];
}
