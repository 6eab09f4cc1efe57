namespace DeepSeekKernels;

/// <summary>Which elements of a head's rotary part <see cref="Ops.Rope"/> rotates together.</summary>
public enum RopeLayout
{
    /// <summary>
    /// Llama and Qwen (<c>rotate_half</c>): element i pairs with element i + d/2 and turns by angle index i.
    /// </summary>
    HalfSplit,
    /// <summary>
    /// DeepSeek (the original complex form): element 2i pairs with element 2i + 1 and turns by angle index i.
    /// </summary>
    Interleaved,
}
