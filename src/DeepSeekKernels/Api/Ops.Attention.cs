using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// Causal grouped-query attention for one sequence, reading a key/value cache: effectively computes, for every
    /// query token t (at position p = queryStart + t) and query head h, with g = qHeads / kvHeads and kv head h / g,
    /// <c>score[j] = scale * (q[t, h, :] . k[j, h / g, :])</c> for keys j = 0 .. p (the causal mask),
    /// <c>w = softmax(score)</c> in float32 with the maximum subtracted, and
    /// <c>destination[t, h, :] = sum_j w[j] * v[j, h / g, :]</c>.
    /// </summary>
    /// <param name="q">[tokens, qHeads, headDim] queries (roped); at least one token.</param>
    /// <param name="k">[&gt;= kvLength, kvHeads, headDim] keys (roped); a cache may be longer, only the first kvLength rows are read.</param>
    /// <param name="v">[&gt;= kvLength, kvHeads, vHeadDim] values.</param>
    /// <param name="destination">[tokens, qHeads, vHeadDim] output (at least that long); must not overlap q, k or v.</param>
    /// <param name="qHeads">Query heads (at least 1), a multiple of <paramref name="kvHeads"/>.</param>
    /// <param name="kvHeads">Key/value heads (at least 1).</param>
    /// <param name="headDim">Elements per query/key head (at least 1).</param>
    /// <param name="vHeadDim">Elements per value head (at least 1).</param>
    /// <param name="kvLength">Valid rows of k and v (at least 1); queryStart + tokens &lt;= kvLength.</param>
    /// <param name="queryStart">Position of the first query (0 for a prefill from scratch, the cache length before this step when decoding).</param>
    /// <param name="scale">Score scale, e.g. 1/sqrt(headDim) (DeepSeek: times mscale²); finite.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, qHeads is not a multiple of kvHeads, or the queries run past kvLength.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void Attention(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor destination,
        int qHeads, int kvHeads, int headDim, int vHeadDim, int kvLength, int queryStart, float scale)
    {
        const string op = nameof(Attention);
        q = Act(op, nameof(q), q, null);
        k = Act(op, nameof(k), k, q.Runtime);
        v = Act(op, nameof(v), v, q.Runtime);
        destination = Act(op, nameof(destination), destination, q.Runtime);
        OpChecks.AtLeast1(op, nameof(qHeads), qHeads);
        OpChecks.AtLeast1(op, nameof(kvHeads), kvHeads);
        OpChecks.AtLeast1(op, nameof(headDim), headDim);
        OpChecks.AtLeast1(op, nameof(vHeadDim), vHeadDim);
        OpChecks.AtLeast1(op, nameof(kvLength), kvLength);
        OpChecks.NotNegative(op, nameof(queryStart), queryStart);
        OpChecks.Finite(op, nameof(scale), scale);
        if (qHeads % kvHeads != 0)
            ThrowHelper.OutOfRange(op, nameof(kvHeads), kvHeads, $"qHeads = {qHeads} is not a multiple of kvHeads = {kvHeads}.");
        int tokens = OpChecks.Rows(op, nameof(q), q.Length, (long)qHeads * headDim, SizeText.Of("qHeads * headDim", qHeads, headDim));
        CheckCausalRange(op, tokens, kvLength, queryStart);
        long kElements = (long)kvLength * kvHeads * headDim, vElements = (long)kvLength * kvHeads * vHeadDim;
        OpChecks.LongEnough(op, nameof(k), k.Length, kElements, SizeText.Of("kvLength * kvHeads * headDim", kvLength, kvHeads, headDim));
        OpChecks.LongEnough(op, nameof(v), v.Length, vElements, SizeText.Of("kvLength * kvHeads * vHeadDim", kvLength, kvHeads, vHeadDim));
        long outputs = (long)tokens * qHeads * vHeadDim;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, SizeText.Of("tokens * qHeads * vHeadDim", tokens, qHeads, vHeadDim));
        var dst = destination.Slice(0, outputs);
        var kUsed = k.Slice(0, kElements);
        var vUsed = v.Slice(0, vElements);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(q), q);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(k), kUsed);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(v), vUsed);
        using var call = Dispatch(new OpSignature(op, Activations(q, kUsed, vUsed, dst)) { HeadDim = headDim });
        call.Backend.Attention(q, kUsed, vUsed, dst,
            new AttentionShape(tokens, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, scale));
    }

    /// <summary>
    /// Multi-head latent attention over DeepSeek's compressed cache, the FlashMLA formulation (weights absorbed):
    /// every head attends the same cache rows [latent | rope]. Effectively computes, for every query token t (at
    /// position p = queryStart + t) and head h, <c>score[j] = scale * (q[t, h, :] . latentCache[j, :])</c> over all
    /// latentDim + ropeDim elements for keys j = 0 .. p, <c>w = softmax(score)</c> in float32 with the maximum
    /// subtracted, and <c>destination[t, h, :] = sum_j w[j] * latentCache[j, 0 : latentDim]</c>. This equals
    /// <see cref="Attention"/> with one kv head, k = latentCache and v = latentCache[:, :latentDim].
    /// </summary>
    /// <param name="q">[tokens, heads, latentDim + ropeDim]: the absorbed q_nope (W_UK^T q_nope) followed by the roped q_pe.</param>
    /// <param name="latentCache">[&gt;= kvLength, latentDim + ropeDim]: the normed compressed kv followed by the roped k_pe, shared by all heads.</param>
    /// <param name="destination">[tokens, heads, latentDim] output (at least that long; W_UV is applied after); must not overlap q or the cache.</param>
    /// <param name="heads">Query heads (at least 1).</param>
    /// <param name="latentDim">kv_lora_rank (at least 1).</param>
    /// <param name="ropeDim">qk_rope_head_dim (0 or more).</param>
    /// <param name="kvLength">Valid cache rows (at least 1); queryStart + tokens &lt;= kvLength.</param>
    /// <param name="queryStart">Position of the first query.</param>
    /// <param name="scale">Score scale: DeepSeek's softmax_scale, 1/sqrt(qk_nope_head_dim + qk_rope_head_dim) times mscale²; finite.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, or the queries run past kvLength.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void MlaAttention(DeviceTensor q, DeviceTensor latentCache, DeviceTensor destination, int heads,
        int latentDim, int ropeDim, int kvLength, int queryStart, float scale)
    {
        const string op = nameof(MlaAttention);
        q = Act(op, nameof(q), q, null);
        latentCache = Act(op, nameof(latentCache), latentCache, q.Runtime);
        destination = Act(op, nameof(destination), destination, q.Runtime);
        OpChecks.AtLeast1(op, nameof(heads), heads);
        OpChecks.AtLeast1(op, nameof(latentDim), latentDim);
        OpChecks.NotNegative(op, nameof(ropeDim), ropeDim);
        OpChecks.AtLeast1(op, nameof(kvLength), kvLength);
        OpChecks.NotNegative(op, nameof(queryStart), queryStart);
        OpChecks.Finite(op, nameof(scale), scale);
        long rowDim = (long)latentDim + ropeDim;
        if (rowDim > int.MaxValue)
            ThrowHelper.OutOfRange(op, nameof(ropeDim), ropeDim, "latentDim + ropeDim must fit in an int.");
        int tokens = OpChecks.Rows(op, nameof(q), q.Length, heads * rowDim, SizeText.Of("heads * (latentDim + ropeDim)", heads, rowDim));
        CheckCausalRange(op, tokens, kvLength, queryStart);
        long cacheElements = kvLength * rowDim;
        OpChecks.LongEnough(op, nameof(latentCache), latentCache.Length, cacheElements, SizeText.Of("kvLength * (latentDim + ropeDim)", kvLength, rowDim));
        long outputs = (long)tokens * heads * latentDim;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, SizeText.Of("tokens * heads * latentDim", tokens, heads, latentDim));
        var dst = destination.Slice(0, outputs);
        var cache = latentCache.Slice(0, cacheElements);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(q), q);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(latentCache), cache);
        using var call = Dispatch(new OpSignature(op, Activations(q, cache, dst)) { HeadDim = (int)rowDim });
        call.Backend.MlaAttention(q, cache, dst,
            new AttentionShape(tokens, heads, 1, (int)rowDim, latentDim, kvLength, queryStart, scale));
    }

    static void CheckCausalRange(string op, int tokens, int kvLength, int queryStart)
    {
        if ((long)queryStart + tokens > kvLength)
            ThrowHelper.OutOfRange(op, nameof(queryStart), queryStart,
                $"queryStart + tokens = {queryStart} + {tokens} is past kvLength = {kvLength}: the last query would attend keys not in the cache.");
    }
}
