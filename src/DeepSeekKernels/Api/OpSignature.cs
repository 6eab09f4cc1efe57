using System.Text;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels;

/// <summary>
/// What decides whether a backend can run one call of an op (llama.cpp's <c>supports_op</c>): the op's name, the
/// element type of its activation operands, the weight's scheme and element type when the op takes a weight, and the
/// few shape facts a kernel may care about. Every op of <see cref="Ops"/> builds its signature after validating its
/// arguments and asks the backend (<see cref="Ops.Supports(in OpSignature)"/>); <see cref="Ops.FallbackReport"/> and
/// <see cref="Ops.SupportMatrix"/> are keyed by it. <see cref="ToString"/> reads like
/// "Linear(x=f32, w=bf16 dense)" or "PagedAttention(x=f32, head_dim=128, pages=bf16)".
/// </summary>
/// <param name="Op">The op's name, one of <see cref="Ops.OpNames"/> (e.g. "Linear").</param>
/// <param name="X">
/// Element type of the activation operands: the input rows (and, where the op has them, the output rows), e.g. q for
/// attention, keys for KvAppend, the destination for Embedding, DequantizeFp8, LinearW8A8 and GroupedLinearW8A8 (whose input is FP8).
/// </param>
public readonly record struct OpSignature(string Op, ElementType X)
{
    /// <summary>The weight's scheme for the ops that take a <see cref="WeightMatrix"/>; null for the others (RMSNorm's weight is a vector).</summary>
    public WeightScheme? Scheme { get; init; }

    /// <summary>The weight's element type (a WeightMatrix's, or RMSNorm's weight vector's); null when the op has no weight.</summary>
    public ElementType? Weight { get; init; }

    /// <summary>True when an activation operand's rows are strided: a row stride other than its width (a column slice of a wider matrix).</summary>
    public bool StridedRows { get; init; }

    /// <summary>Elements per query/key head of the attention ops (latentDim + ropeDim for MLA); 0 for the other ops.</summary>
    public int HeadDim { get; init; }

    /// <summary>Element type of the KV cache pages (KvAppend, PagedAttention, PagedMlaAttention); null for the other ops.</summary>
    public ElementType? Pages { get; init; }

    /// <summary>The signature of an op over <paramref name="weight"/>: its scheme and element type.</summary>
    public static OpSignature WithWeight(string op, ElementType x, WeightMatrix weight) =>
        new(op, x) { Scheme = weight.Scheme, Weight = weight.ElementType };

    /// <summary>"Op(x=f32, w=bf16 dense, strided, head_dim=128, pages=bf16)", naming only what the signature has.</summary>
    public override string ToString()
    {
        var text = new StringBuilder(Op).Append("(x=").Append(X.Name());
        if (Weight is { } w)
        {
            text.Append(", w=").Append(WeightName(w));
            if (Scheme is { } scheme)
                text.Append(' ').Append(SchemeName(scheme));
        }
        if (StridedRows)
            text.Append(", strided");
        if (HeadDim != 0)
            text.Append(", head_dim=").Append(HeadDim);
        if (Pages is { } pages)
            text.Append(", pages=").Append(pages.Name());
        return text.Append(')').ToString();
    }

    static string WeightName(ElementType type) => type switch
    {
        ElementType.Fp8E4M3 => "fp8",
        ElementType.Int4 => "int4",
        _ => type.Name(),
    };

    static string SchemeName(WeightScheme scheme) => scheme switch
    {
        WeightScheme.Dense => "dense",
        WeightScheme.Fp8Block => "block",
        WeightScheme.Int4Group => "group",
        _ => scheme.ToString(),
    };
}
