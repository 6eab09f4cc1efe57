using System.Numerics.Tensors;

namespace DeepSeekKernels.Reference;

/// <summary>
/// Causal attention of one sequence, the specification for Attention and MlaAttention. For query token t at
/// position p = queryStart + t and query head h (kv head h / (qHeads / kvHeads)), in float32:
/// <code>
///   s[j] = scale * dot(q[t, h], k[j, kvh])      for j = 0 .. p
///   w    = exp(s - max(s)) / sum(exp(s - max(s)))
///   y[t, h] = sum_j w[j] * v[j, kvh]            (in j order)
/// </code>
/// (t, h) pairs run in parallel when the work is large. Arguments are assumed valid (the op API checks them).
/// </summary>
internal static unsafe class AttentionReference
{
    const long ParallelThreshold = 1 << 16; // multiply-adds

    /// <summary>
    /// Where key (or value) row j is: <c>Base + slot(j) * RowStride</c> floats, with slot(j) = j for a contiguous cache,
    /// else <c>Pages[j / PageSize] * PageSize + j % PageSize</c> (a paged f32 pool read in place).
    /// </summary>
    public readonly record struct Rows(nint Base, long RowStride, int[]? Pages = null, int PageSize = 0)
    {
        /// <summary>A cursor over rows 0, 1, 2, ... (no division per row: it steps through each page).</summary>
        public Cursor Start() => new(this);
    }

    /// <summary>Walks the rows of <see cref="Rows"/> in order, one page at a time.</summary>
    public struct Cursor(Rows rows)
    {
        int _page, _offset;
        float* _base = rows.Pages == null ? (float*)rows.Base : (float*)rows.Base + (long)rows.Pages[0] * rows.PageSize * rows.RowStride;

        /// <summary>The next row's address.</summary>
        public float* Next()
        {
            if (rows.Pages != null && _offset == rows.PageSize)
            {
                _page++;
                _offset = 0;
                _base = (float*)rows.Base + (long)rows.Pages[_page] * rows.PageSize * rows.RowStride;
            }
            return _base + _offset++ * rows.RowStride;
        }
    }

    /// <summary>
    /// q [tokens, qHeads, headDim]; k rows of <paramref name="kRowStride"/> elements, kv head kvh at kvh * headDim;
    /// v rows of <paramref name="vRowStride"/> elements, kv head kvh at kvh * vHeadDim; y [tokens, qHeads, vHeadDim].
    /// </summary>
    public static void Attention(nint q, nint k, long kRowStride, nint v, long vRowStride, nint y, AttentionShape s) =>
        Attention(q, new Rows(k, kRowStride), new Rows(v, vRowStride), y, s);

    /// <summary>As above, with keys and values wherever <paramref name="k"/> and <paramref name="v"/> say their rows are.</summary>
    public static void Attention(nint q, Rows k, Rows v, nint y, AttentionShape s)
    {
        int group = s.QHeads / s.KvHeads;
        void Pair(int pair, float[] scratch)
        {
            int t = pair / s.QHeads, h = pair % s.QHeads, kvh = h / group;
            int keys = s.QueryStart + t + 1; // the causal mask: keys 0 .. position
            var scores = new Span<float>(scratch, 0, keys);
            var query = new ReadOnlySpan<float>((float*)q + (long)pair * s.HeadDim, s.HeadDim);
            var keyRows = k.Start();
            for (int j = 0; j < keys; j++)
            {
                var key = new ReadOnlySpan<float>(keyRows.Next() + (long)kvh * s.HeadDim, s.HeadDim);
                scores[j] = s.Scale * TensorPrimitives.Dot(query, key);
            }
            float max = TensorPrimitives.Max(scores);
            TensorPrimitives.Subtract(scores, max, scores);
            TensorPrimitives.Exp(scores, scores);
            float sum = TensorPrimitives.Sum(scores);
            TensorPrimitives.Divide(scores, sum, scores);
            var output = new Span<float>((float*)y + (long)pair * s.VHeadDim, s.VHeadDim);
            output.Clear();
            var valueRows = v.Start();
            for (int j = 0; j < keys; j++)
            {
                var value = new ReadOnlySpan<float>(valueRows.Next() + (long)kvh * s.VHeadDim, s.VHeadDim);
                TensorPrimitives.MultiplyAdd(value, scores[j], output, output);
            }
        }
        int pairs = s.Tokens * s.QHeads;
        long work = (long)pairs * (s.QueryStart + s.Tokens) * (s.HeadDim + s.VHeadDim);
        if (work < ParallelThreshold)
        {
            var scratch = new float[s.KvLength];
            for (int pair = 0; pair < pairs; pair++)
                Pair(pair, scratch);
            return;
        }
        Parallel.For(0, pairs, () => new float[s.KvLength], (pair, _, scratch) => { Pair(pair, scratch); return scratch; }, _ => { });
    }
}
