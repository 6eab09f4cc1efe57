namespace DeepSeekKernels;

/// <summary>
/// How the CPU backend's decode products (<see cref="Backend.Cpu"/>, up to eight activation rows) multiply activations with
/// INT4 group-wise weights.
/// </summary>
public enum CpuInt4Dot
{
    /// <summary>
    /// The op's own arithmetic (the default): every weight dequantised to the reference's value,
    /// bf16((code - zero) * scale), and multiplied with the float32 activations in float32: within float32 rounding of the
    /// reference, and the conformance suite holds it there.
    /// </summary>
    Float32,

    /// <summary>
    /// An approximation for speed, as llama.cpp's Q4_0 x Q8_0 dot product: each activation row is quantised per weight group
    /// to int8 (symmetric: d = max|x| / 127 over the group's columns, q = round-to-even(x * 127 / max|x|)), each group's
    /// codes are dotted with those int8 values in integer arithmetic (exact), and the row's output is
    /// <c>sum over groups g of scale_g * d_g * (dot_g - zero_g * sum_g(q))</c> in float32 (the weight's value taken as
    /// (code - zero) * scale, not rounded to bf16). It reads the same bytes with about a third of the instructions of
    /// <see cref="Float32"/>; its error against the exact product is bounded by half an int8 step of each activation times
    /// the weights' magnitudes (plus the bf16 rounding the reference applies to each weight). Prefill (more than eight rows,
    /// the cache-blocked GEMM) keeps the float32 arithmetic.
    /// </summary>
    Int8,
}
