using System.Globalization;

namespace DeepSeekKernels.Models;

/// <summary>How the loader reads a group of tensors (<see cref="CheckpointLayout"/>).</summary>
internal enum LayoutKind
{
    /// <summary>One matrix, or a stack of same-shaped matrices read as one weight (a layer's routed experts):
    /// <c>{prefix}.weight</c> [Rows, Cols] per prefix, with <c>{prefix}.weight_scale_inv</c> where stored in FP8; or, in a GPTQ/AWQ
    /// checkpoint, <c>{prefix}.qweight</c>, <c>.qzeros</c>, <c>.scales</c> (and <c>.g_idx</c>) of the same matrix (<see cref="Int4CheckpointWeights"/>).</summary>
    Matrices,

    /// <summary>A vector of Rows floats (a norm's weight, a bias, DeepSeek-V3's router correction bias), the full name.</summary>
    Vector,

    /// <summary>MLA's kv_b_proj: <c>{prefix}.weight</c> [Rows, Cols] (or a GPTQ/AWQ layer, dequantised), read on the host and split per head.</summary>
    HostMatrix,
}

/// <summary>One group of tensors the loader reads: names (prefixes for matrices), rows and columns (0 for a vector).</summary>
internal sealed record LayoutEntry(LayoutKind Kind, IReadOnlyList<string> Names, int Rows, int Cols);

/// <summary>
/// Every tensor the loader (<see cref="ModelLoader"/>, <see cref="WeightLoader"/>) reads for a model shape, in the order it
/// reads them, with the shape config.json implies: the one statement of a checkpoint's layout. <see cref="CheckpointConformance"/>
/// checks a checkpoint's headers against it, and <see cref="RandomCheckpoint"/> writes a random-weight checkpoint from it.
/// Lazy, layer by layer: a config that claims more layers than a checkpoint holds fails at the first missing tensor.
/// </summary>
internal static class CheckpointLayout
{
    public static IEnumerable<LayoutEntry> Of(ModelShape s)
    {
        yield return Matrix("model.embed_tokens", s.Vocab, s.Hidden);
        if (!s.TieEmbeddings)
            yield return Matrix("lm_head", s.Vocab, s.Hidden);
        yield return Vector("model.norm.weight", s.Hidden);
        for (int layer = 0; layer < s.Layers; layer++)
        {
            string p = string.Create(CultureInfo.InvariantCulture, $"model.layers.{layer}.");
            yield return Vector(p + "input_layernorm.weight", s.Hidden);
            yield return Vector(p + "post_attention_layernorm.weight", s.Hidden);
            foreach (var entry in s.IsMla ? Mla(s, p + "self_attn") : Gqa(s, p + "self_attn"))
                yield return entry;
            foreach (var entry in s.IsMoeLayer(layer) ? Moe(s, p + "mlp") : Dense(p + "mlp", s.Intermediate, s.Hidden))
                yield return entry;
        }
    }

    static LayoutEntry Matrix(string prefix, int rows, int cols) => new(LayoutKind.Matrices, [prefix], rows, cols);
    static LayoutEntry Vector(string name, int length) => new(LayoutKind.Vector, [name], length, 0);

    static IEnumerable<LayoutEntry> Dense(string prefix, int intermediate, int hidden)
    {
        yield return Matrix(prefix + ".gate_proj", intermediate, hidden);
        yield return Matrix(prefix + ".up_proj", intermediate, hidden);
        yield return Matrix(prefix + ".down_proj", hidden, intermediate);
    }

    static IEnumerable<LayoutEntry> Moe(ModelShape s, string prefix)
    {
        yield return Matrix(prefix + ".gate", s.Experts, s.Hidden);
        if (s.Architecture == Checkpoints.ModelArchitecture.DeepSeekV3)
            yield return Vector(prefix + ".gate.e_score_correction_bias", s.Experts);
        yield return new(LayoutKind.Matrices, new ExpertNames(prefix, "gate_proj", s.Experts), s.MoeIntermediate, s.Hidden);
        yield return new(LayoutKind.Matrices, new ExpertNames(prefix, "up_proj", s.Experts), s.MoeIntermediate, s.Hidden);
        yield return new(LayoutKind.Matrices, new ExpertNames(prefix, "down_proj", s.Experts), s.Hidden, s.MoeIntermediate);
        if (s.SharedExperts > 0)
            foreach (var entry in Dense(prefix + ".shared_experts", s.MoeIntermediate * s.SharedExperts, s.Hidden))
                yield return entry;
    }

    /// <summary>
    /// <c>{prefix}.experts.{e}.{projection}</c> for e in [0, count), each made when asked for: a config that claims billions of
    /// experts fails at the first one the checkpoint lacks instead of first listing them all.
    /// </summary>
    sealed class ExpertNames(string prefix, string projection, int count) : IReadOnlyList<string>
    {
        public int Count => count;

        public string this[int index] => (uint)index < (uint)count
            ? string.Create(CultureInfo.InvariantCulture, $"{prefix}.experts.{index}.{projection}")
            : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<string> GetEnumerator()
        {
            for (int e = 0; e < count; e++)
                yield return this[e];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    static IEnumerable<LayoutEntry> Mla(ModelShape s, string prefix)
    {
        if (s.QLoraRank is int qLora)
        {
            yield return Matrix(prefix + ".q_a_proj", qLora, s.Hidden);
            yield return Vector(prefix + ".q_a_layernorm.weight", qLora);
            yield return Matrix(prefix + ".q_b_proj", s.Heads * s.QkHeadDim, qLora);
        }
        else
        {
            yield return Matrix(prefix + ".q_proj", s.Heads * s.QkHeadDim, s.Hidden);
        }
        yield return Matrix(prefix + ".kv_a_proj_with_mqa", s.KvLoraRank + s.QkRopeHeadDim, s.Hidden);
        yield return Vector(prefix + ".kv_a_layernorm.weight", s.KvLoraRank);
        yield return new(LayoutKind.HostMatrix, [prefix + ".kv_b_proj"], s.Heads * (s.QkNopeHeadDim + s.VHeadDim), s.KvLoraRank);
        yield return Matrix(prefix + ".o_proj", s.Hidden, s.Heads * s.VHeadDim);
    }

    static IEnumerable<LayoutEntry> Gqa(ModelShape s, string prefix)
    {
        int q = s.Heads * s.HeadDim, kv = s.KvHeads * s.HeadDim;
        yield return Matrix(prefix + ".q_proj", q, s.Hidden);
        if (s.QkvBias)
            yield return Vector(prefix + ".q_proj.bias", q);
        yield return Matrix(prefix + ".k_proj", kv, s.Hidden);
        if (s.QkvBias)
            yield return Vector(prefix + ".k_proj.bias", kv);
        yield return Matrix(prefix + ".v_proj", kv, s.Hidden);
        if (s.QkvBias)
            yield return Vector(prefix + ".v_proj.bias", kv);
        yield return Matrix(prefix + ".o_proj", s.Hidden, q);
    }
}
