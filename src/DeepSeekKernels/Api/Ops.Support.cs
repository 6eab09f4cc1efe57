using DeepSeekKernels.Numerics;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// The signatures <see cref="SupportMatrix"/> reports, in a fixed order: every op of <see cref="OpNames"/> with f32
    /// activations and, where the op takes a weight, each weight form it accepts (f32 and bf16 dense, FP8 block, INT4
    /// group); RMSNorm's four f32/bf16 pairs; KV pages in f32 and bf16 (and bf16 keys); attention at DeepSeek's head
    /// sizes (128; MLA 512 + 64 = 576); Linear with strided rows (a column slice).
    /// </summary>
    public static IReadOnlyList<OpSignature> SupportSignatures { get; } = BuildSupportSignatures();

    static OpSignature[] BuildSupportSignatures()
    {
        const ElementType f32 = ElementType.F32, bf16 = ElementType.BF16;
        (WeightScheme Scheme, ElementType Type)[] all =
            [(WeightScheme.Dense, f32), (WeightScheme.Dense, bf16), (WeightScheme.Fp8Block, ElementType.Fp8E4M3), (WeightScheme.Int4Group, ElementType.Int4)];
        var list = new List<OpSignature>();
        foreach (string op in (string[])[nameof(RmsNorm), nameof(AddRmsNorm)])
            foreach (var x in (ElementType[])[f32, bf16])
                foreach (var w in (ElementType[])[f32, bf16])
                    list.Add(new OpSignature(op, x) { Weight = w });
        OpSignature Weighted(string op, (WeightScheme Scheme, ElementType Type) w) => new(op, f32) { Scheme = w.Scheme, Weight = w.Type };
        list.AddRange(all.Select(w => Weighted(nameof(Linear), w)));
        list.Add(Weighted(nameof(Linear), all[1]) with { StridedRows = true });
        list.AddRange(all.Select(w => Weighted(nameof(LinearSiluMul), w)));
        list.Add(Weighted(nameof(DequantizeFp8), all[2]));
        list.AddRange(all.Select(w => Weighted(nameof(HeadwiseLinear), w)));
        list.AddRange(all.Where(w => w.Scheme != WeightScheme.Fp8Block).Select(w => Weighted(nameof(Embedding), w)));
        list.Add(new OpSignature(nameof(Rope), f32));
        list.Add(new OpSignature(nameof(Attention), f32) { HeadDim = 128 });
        list.Add(new OpSignature(nameof(MlaAttention), f32) { HeadDim = 576 });
        list.Add(new OpSignature(nameof(KvAppend), f32) { Pages = f32 });
        list.Add(new OpSignature(nameof(KvAppend), f32) { Pages = bf16 });
        list.Add(new OpSignature(nameof(KvAppend), bf16) { Pages = bf16 });
        foreach (var pages in (ElementType[])[f32, bf16])
            list.Add(new OpSignature(nameof(PagedAttention), f32) { HeadDim = 128, Pages = pages });
        foreach (var pages in (ElementType[])[f32, bf16])
            list.Add(new OpSignature(nameof(PagedMlaAttention), f32) { HeadDim = 576, Pages = pages });
        foreach (string op in (string[])[nameof(CopyColumns), nameof(SiluAndMul), nameof(Softmax), nameof(Add), nameof(Scale),
                     nameof(MoeRoute), nameof(MoePermute)])
            list.Add(new OpSignature(op, f32));
        list.AddRange(all.Select(w => Weighted(nameof(GroupedLinear), w)));
        list.AddRange(all.Select(w => Weighted(nameof(GroupedLinearSiluMul), w)));
        list.Add(new OpSignature(nameof(MoeCombine), f32));
        list.Add(new OpSignature(nameof(QuantizeFp8Activations), f32));
        list.Add(Weighted(nameof(LinearW8A8), all[2]));
        list.Add(Weighted(nameof(GroupedLinearW8A8), all[2]));
        // the same ops on bf16 activations (fp32 accumulation), dense bf16 weights where they take one
        list.Add(Weighted(nameof(Linear), all[1]) with { X = bf16 });
        list.Add(Weighted(nameof(LinearSiluMul), all[1]) with { X = bf16 });
        list.Add(Weighted(nameof(HeadwiseLinear), all[1]) with { X = bf16 });
        list.Add(Weighted(nameof(Embedding), all[1]) with { X = bf16 });
        list.Add(Weighted(nameof(GroupedLinear), all[1]) with { X = bf16 });
        list.Add(Weighted(nameof(GroupedLinearSiluMul), all[1]) with { X = bf16 });
        list.Add(new OpSignature(nameof(Rope), bf16));
        list.Add(new OpSignature(nameof(Attention), bf16) { HeadDim = 128 });
        list.Add(new OpSignature(nameof(MlaAttention), bf16) { HeadDim = 576 });
        list.Add(new OpSignature(nameof(PagedAttention), bf16) { HeadDim = 128, Pages = bf16 });
        list.Add(new OpSignature(nameof(PagedMlaAttention), bf16) { HeadDim = 576, Pages = bf16 });
        foreach (string op in (string[])[nameof(CopyColumns), nameof(SiluAndMul), nameof(Softmax), nameof(Add), nameof(Scale),
                     nameof(MoeRoute), nameof(MoePermute), nameof(MoeCombine)])
            list.Add(new OpSignature(op, bf16));
        list.Add(new OpSignature(nameof(QuantizeFp8Activations), bf16));
        list.Add(Weighted(nameof(LinearW8A8), all[2]) with { X = bf16 });
        list.Add(Weighted(nameof(GroupedLinearW8A8), all[2]) with { X = bf16 });
        return [.. list];
    }

    /// <summary>
    /// Which of <paramref name="backends"/> support each of <see cref="SupportSignatures"/>, from their
    /// <see cref="Supports(in OpSignature)"/> (nothing runs; fallback does not count): the table `dsk check` prints.
    /// </summary>
    /// <param name="backends">The columns, in order (e.g. <see cref="Reference"/>, then ILGPU and native Ops).</param>
    public static OpSupportMatrix SupportMatrix(IEnumerable<Ops> backends)
    {
        ArgumentNullException.ThrowIfNull(backends);
        var columns = backends.ToArray();
        var signatures = SupportSignatures;
        var supported = new bool[signatures.Count, columns.Length];
        for (int r = 0; r < signatures.Count; r++)
            for (int c = 0; c < columns.Length; c++)
                supported[r, c] = columns[c].Supports(signatures[r]);
        return new OpSupportMatrix(columns.Select(o => o.Backend).ToArray(), columns.Select(o => o.Label).ToArray(), signatures, supported);
    }
}
