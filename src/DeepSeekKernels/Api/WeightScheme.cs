namespace DeepSeekKernels;

/// <summary>How a <see cref="WeightMatrix"/> stores its values: the data, the scales and zero points that go with it.</summary>
public enum WeightScheme
{
    /// <summary>Dense float32 or bfloat16, no scales (<see cref="WeightMatrix.Dense{T}"/>).</summary>
    Dense,

    /// <summary>
    /// FP8 e4m3 with one float32 scale per block of BlockRows x BlockCols (DeepSeek-V3: 128 x 128),
    /// <see cref="WeightMatrix.Fp8"/>.
    /// </summary>
    Fp8Block,

    /// <summary>
    /// Unsigned 4-bit codes with one bfloat16 scale and one bfloat16 zero point per GroupSize consecutive in
    /// features of a row (GPTQ/AWQ-style, group 128 by default), <see cref="WeightMatrix.Int4"/>.
    /// </summary>
    Int4Group,
}
