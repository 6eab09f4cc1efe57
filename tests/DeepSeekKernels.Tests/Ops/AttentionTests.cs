using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Attention and MlaAttention against a float64 loop: causal masking, the GQA head mapping, caches longer than
/// kvLength (their tail is NaN, so reading it shows), prefill from a non-zero start and one-token decode.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class AttentionTests
{
    /// <summary>Causal GQA attention in float64, as the op docs state it.</summary>
    static (double[] Output, double[] Scale) Oracle(float[] q, float[] k, float[] v, int tokens, int qHeads, int kvHeads, int headDim,
        int vHeadDim, int queryStart, float scale, int kRowStride = -1, int vRowStride = -1)
    {
        if (kRowStride < 0)
            kRowStride = kvHeads * headDim;
        if (vRowStride < 0)
            vRowStride = kvHeads * vHeadDim;
        var output = new double[tokens * qHeads * vHeadDim];
        var magnitude = new double[output.Length];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < qHeads; h++)
            {
                int kvh = h / (qHeads / kvHeads), keys = queryStart + t + 1;
                var scores = new double[keys];
                for (int j = 0; j < keys; j++)
                {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++)
                        dot += (double)q[(t * qHeads + h) * headDim + i] * k[j * kRowStride + kvh * headDim + i];
                    scores[j] = scale * dot;
                }
                double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                for (int j = 0; j < keys; j++)
                {
                    double w = Math.Exp(scores[j] - max) / sum;
                    for (int i = 0; i < vHeadDim; i++)
                    {
                        double term = w * v[j * vRowStride + kvh * vHeadDim + i];
                        output[(t * qHeads + h) * vHeadDim + i] += term;
                        magnitude[(t * qHeads + h) * vHeadDim + i] += Math.Abs(term) + Math.Abs(v[j * vRowStride + kvh * vHeadDim + i]) * 1e-1;
                    }
                }
            }
        return (output, magnitude);
    }

    public static TheoryData<int, int, int, int, int, int, int> Cases() => new()
    {
        // tokens, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart
        { 1, 1, 1, 1, 1, 1, 0 },
        { 7, 4, 4, 8, 8, 7, 0 },       // prefill, MHA
        { 5, 6, 2, 16, 12, 9, 4 },     // GQA, vHeadDim != headDim, prefill continuing a cache
        { 1, 8, 2, 33, 7, 40, 39 },    // decode: one query at the end of a cache
        { 3, 3, 1, 7, 5, 20, 10 },     // MQA, kvLength past the last query
    };

    [Theory, MemberData(nameof(Cases))]
    public void AttentionMatchesFloat64(int tokens, int qHeads, int kvHeads, int headDim, int vHeadDim, int kvLength, int queryStart)
    {
        const int spareRows = 3; // cache rows past kvLength, NaN: reading them would poison the output
        float scale = 1f / MathF.Sqrt(headDim);
        var q = RandomValues(tokens * qHeads * headDim, 1);
        var k = RandomValues(kvLength * kvHeads * headDim, 2);
        var v = RandomValues(kvLength * kvHeads * vHeadDim, 3);
        using var dq = Upload(q);
        using var dk = Upload(k.Concat(Nan(spareRows * kvHeads * headDim)).ToArray());
        using var dv = Upload(v.Concat(Nan(spareRows * kvHeads * vHeadDim)).ToArray());
        using var dy = Poisoned(tokens * qHeads * vHeadDim + 4);

        ReferenceOps.Attention(dq.View, dk.View, dv.View, dy.View, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, scale);

        var (expected, magnitude) = Oracle(q, k, v, tokens, qHeads, kvHeads, headDim, vHeadDim, queryStart, scale);
        var actual = dy.ToArray();
        Close(expected, magnitude, actual.AsSpan(0, expected.Length), "attention", relative: 2e-5);
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void ALaterKeyDoesNotChangeEarlierQueries()
    {
        const int tokens = 6, heads = 2, dim = 8;
        var q = RandomValues(tokens * heads * dim, 11);
        var k = RandomValues(tokens * heads * dim, 12);
        var v = RandomValues(tokens * heads * dim, 13);
        using var dq = Upload(q);
        using var dk = Upload(k);
        using var dv = Upload(v);
        using var before = Poisoned(tokens * heads * dim);
        using var after = Poisoned(tokens * heads * dim);
        ReferenceOps.Attention(dq.View, dk.View, dv.View, before.View, heads, heads, dim, dim, tokens, 0, 0.3f);

        // change key and value 4 (both heads): queries 0..3 must not see it, queries 4 and 5 must
        for (int i = 4 * heads * dim; i < 5 * heads * dim; i++)
        {
            k[i] = -3 * k[i];
            v[i] += 1;
        }
        dk.CopyFromHost(k);
        dv.CopyFromHost(v);
        ReferenceOps.Attention(dq.View, dk.View, dv.View, after.View, heads, heads, dim, dim, tokens, 0, 0.3f);

        var x = before.ToArray();
        var y = after.ToArray();
        int rowElements = heads * dim;
        Exact(x.AsSpan(0, 4 * rowElements), y.AsSpan(0, 4 * rowElements), "queries before the changed key");
        for (int t = 4; t < tokens; t++)
            Assert.False(x.AsSpan(t * rowElements, rowElements).SequenceEqual(y.AsSpan(t * rowElements, rowElements)), $"query {t} sees key 4");
    }

    [Fact]
    public void QueryHeadsShareTheirGroupsKvHead()
    {
        // 4 query heads, 2 kv heads: heads 0, 1 read kv head 0 and heads 2, 3 read kv head 1. With identical queries
        // per head, heads in one group agree exactly and the groups differ.
        const int dim = 5, keys = 4;
        var head = RandomValues(dim, 21);
        var q = Enumerable.Repeat(head, 4).SelectMany(h => h).ToArray();
        var k = RandomValues(keys * 2 * dim, 22);
        var v = RandomValues(keys * 2 * dim, 23);
        using var dq = Upload(q);
        using var dk = Upload(k);
        using var dv = Upload(v);
        using var dy = Poisoned(4 * dim);
        ReferenceOps.Attention(dq.View, dk.View, dv.View, dy.View, 4, 2, dim, dim, keys, keys - 1, 0.5f);
        var y = dy.ToArray();
        Exact(y.AsSpan(0, dim), y.AsSpan(dim, dim), "heads 0 and 1");
        Exact(y.AsSpan(2 * dim, dim), y.AsSpan(3 * dim, dim), "heads 2 and 3");
        Assert.False(y.AsSpan(0, dim).SequenceEqual(y.AsSpan(2 * dim, dim)));
    }

    [Theory]
    [InlineData(1, 2, 16, 4, 5, 0)]
    [InlineData(3, 4, 32, 8, 11, 8)]
    [InlineData(1, 3, 7, 0, 9, 8)]
    public void MlaAttentionIsAttentionOverTheLatentCache(int tokens, int heads, int latentDim, int ropeDim, int kvLength, int queryStart)
    {
        int rowDim = latentDim + ropeDim;
        float scale = 0.2f;
        var q = RandomValues(tokens * heads * rowDim, 31);
        var cache = RandomValues(kvLength * rowDim, 32);
        using var dq = Upload(q);
        using var dcache = Upload(cache.Concat(Nan(2 * rowDim)).ToArray()); // a longer cache, NaN past kvLength
        using var dy = Poisoned(tokens * heads * latentDim);
        ReferenceOps.MlaAttention(dq.View, dcache.View, dy.View, heads, latentDim, ropeDim, kvLength, queryStart, scale);
        var actual = dy.ToArray();

        // the same as Attention with one kv head, k = the cache rows, v = their latent part
        var values = new float[kvLength * latentDim];
        for (int j = 0; j < kvLength; j++)
            Array.Copy(cache, j * rowDim, values, j * latentDim, latentDim);
        using var dk = Upload(cache);
        using var dv = Upload(values);
        using var viaAttention = Poisoned(tokens * heads * latentDim);
        ReferenceOps.Attention(dq.View, dk.View, dv.View, viaAttention.View, heads, 1, rowDim, latentDim, kvLength, queryStart, scale);
        Exact(viaAttention.ToArray(), actual, "MLA vs attention");

        var (expected, magnitude) = Oracle(q, cache, cache, tokens, heads, 1, rowDim, latentDim, queryStart, scale, rowDim, rowDim);
        Close(expected, magnitude, actual, "MLA", relative: 2e-5);
    }
}
