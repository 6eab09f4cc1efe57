namespace DeepSeekKernels.Quantization;

/// <summary>
/// How the runner stores the linear weights a checkpoint holds in full precision (bf16, f16 or f32): as they are, or
/// quantised at load by round-to-nearest (<c>dsk --quant none|int4|fp8</c>, <see cref="Models.ModelLoader.Load(string, Ops, int, long?, int?, WeightQuantization, Numerics.ElementType, bool, Models.KvCacheRequest?)"/>,
/// and the columns of <c>dsk plan</c>, <see cref="Planning.MemoryPlan"/>).
/// </summary>
/// <remarks>
/// Quantised: the attention projections, the dense MLP, shared and routed experts, and lm_head unless it is tied to the
/// embeddings. Kept as stored: embeddings, norms, biases, the MoE router (<c>mlp.gate</c>) and MLA's per-head matrices
/// made from kv_b_proj (W_UK, W_UV, in kv_b_proj's precision); weights a checkpoint already stores in FP8 stay FP8 whatever is asked; under INT4
/// a matrix whose in features are not a multiple of 128 (the group) stays dense, and the model's
/// <see cref="Models.CausalLanguageModel.Quantization"/> says which.
/// </remarks>
public enum WeightQuantization
{
    /// <summary>Weights as the checkpoint stores them (bf16 stays bf16, f16 and f32 become f32, FP8 stays FP8).</summary>
    None,

    /// <summary>
    /// INT4 codes with a bf16 scale and zero point per group of 128 in features (<see cref="WeightScheme.Int4Group"/>,
    /// <see cref="Int4GroupQuantizer"/>): cols / 2 bytes per row plus 4 bytes per group.
    /// </summary>
    Int4,

    /// <summary>
    /// FP8 e4m3 with one float32 scale per 128x128 block, ragged edge blocks included (<see cref="WeightScheme.Fp8Block"/>,
    /// <see cref="Fp8BlockQuantizer"/>): 1 byte per weight plus 4 bytes per block.
    /// </summary>
    Fp8,
}

/// <summary>Names and storage arithmetic of <see cref="WeightQuantization"/>, shared by the loader, its estimate and the plan.</summary>
public static class WeightQuantizations
{
    /// <summary>In features per INT4 group, and rows and columns per FP8 block, when quantising at load.</summary>
    public const int GroupSize = 128;

    /// <summary>Rows and columns per FP8 scale block when quantising at load (DeepSeek-V3's block).</summary>
    public const int BlockSize = 128;

    /// <summary>"none", "int4" or "fp8": the word dsk's --quant takes.</summary>
    public static string Name(this WeightQuantization quantization) => quantization switch
    {
        WeightQuantization.None => "none",
        WeightQuantization.Int4 => "int4",
        WeightQuantization.Fp8 => "fp8",
        _ => throw new ArgumentOutOfRangeException(nameof(quantization), quantization, "Not a WeightQuantization."),
    };

    /// <summary>Whether a [rows, cols] matrix can be stored in <paramref name="quantization"/>: INT4 needs cols a multiple of 128; FP8 takes any shape.</summary>
    public static bool Fits(this WeightQuantization quantization, long cols) =>
        quantization != WeightQuantization.Int4 || cols % GroupSize == 0;

    /// <summary>
    /// Device bytes of <paramref name="count"/> [rows, cols] matrices stored in <paramref name="quantization"/> (which
    /// must be Int4 or Fp8 and <see cref="Fits"/> the shape), exactly as the loader stores them: INT4
    /// <c>rows * cols / 2 + rows * (cols / 128) * (2 + 2)</c> (codes, bf16 scale, bf16 zero point); FP8
    /// <c>rows * cols + ceil(rows / 128) * ceil(cols / 128) * 4</c> (codes, float32 block scales, ragged blocks counted).
    /// </summary>
    /// <exception cref="OverflowException">The size is 2^63 bytes or more.</exception>
    public static long QuantizedBytes(this WeightQuantization quantization, long rows, long cols, long count = 1)
    {
        return quantization switch
        {
            WeightQuantization.Int4 when cols % GroupSize == 0 => checked(count * (rows * (cols / 2) + rows * (cols / GroupSize) * 4)),
            WeightQuantization.Fp8 => checked(count * (rows * cols + Ceil(rows, BlockSize) * Ceil(cols, BlockSize) * 4)),
            _ => throw new ArgumentException($"{quantization.Name()} does not store a [{rows}, {cols}] matrix quantised.", nameof(quantization)),
        };
    }

    static long Ceil(long a, long b) => a / b + (a % b == 0 ? 0 : 1);
}
