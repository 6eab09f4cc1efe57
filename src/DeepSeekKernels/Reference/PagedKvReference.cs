using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// The paged KV cache ops, the specification for KvAppend, PagedAttention and PagedMlaAttention. A pool layer is
/// [pages, pageSize, width], i.e. flat rows indexed by slot = page * pageSize + offset. Attention gathers each
/// sequence's keys and values through its pages (an f32 pool in place; a bf16 one gathered into float32 rows, widened
/// exactly) and runs <see cref="AttentionReference"/> on them, so a paged f32 cache gives bitwise the results of a contiguous one.
/// Device-held metadata has been checked by the caller (the error word); arguments are assumed valid.
/// </summary>
internal static unsafe class PagedKvReference
{
    /// <summary>Row <paramref name="slot"/> of a pool of <paramref name="width"/>-wide rows, written from float32 x.</summary>
    public static void WriteRow(float* x, nint pages, ElementType pageType, long slot, int width)
    {
        if (pageType == ElementType.F32)
        {
            new ReadOnlySpan<float>(x, width).CopyTo(new Span<float>((float*)pages + slot * width, width));
            return;
        }
        BFloat16Conversions.FromSingle(new ReadOnlySpan<float>(x, width), new Span<BFloat16>((BFloat16*)pages + slot * width, width));
    }

    /// <summary>Row <paramref name="slot"/> of a pool as float32 into <paramref name="destination"/>.</summary>
    public static void ReadRow(nint pages, ElementType pageType, long slot, Span<float> destination)
    {
        int width = destination.Length;
        if (pageType == ElementType.F32)
            new ReadOnlySpan<float>((float*)pages + slot * width, width).CopyTo(destination);
        else
            BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((BFloat16*)pages + slot * width, width), destination);
    }

    /// <summary>
    /// Keys of positions 0 .. length - 1 of one sequence, gathered from its pages into [length, width] float32.
    /// </summary>
    public static float[] Gather(nint pages, ElementType pageType, int pageSize, int width, ReadOnlySpan<int> pagesOfSequence, int length)
    {
        var rows = new float[(long)length * width];
        for (int p = 0; p < length; p++)
        {
            long slot = (long)pagesOfSequence[p / pageSize] * pageSize + p % pageSize;
            ReadRow(pages, pageType, slot, rows.AsSpan(p * width, width));
        }
        return rows;
    }

    /// <summary>
    /// Attention of one sequence: queries [count, qHeads, headDim] at q (the last count positions of length keys),
    /// output [count, qHeads, vHeadDim] at y. An f32 pool is read in place through the sequence's pages; a bf16 pool is
    /// gathered into float32 rows first (widened exactly). For MLA the values are the first vHeadDim elements of the key
    /// rows (valuePages == keyPages).
    /// </summary>
    public static void Sequence(nint q, nint keyPages, nint valuePages, ElementType pageType, ReadOnlySpan<int> pagesOfSequence,
        int length, int count, nint y, PagedAttentionShape s, bool mla)
    {
        int keyWidth = s.KvHeads * s.HeadDim, valueWidth = mla ? keyWidth : s.KvHeads * s.VHeadDim;
        var shape = new AttentionShape(count, s.QHeads, s.KvHeads, s.HeadDim, s.VHeadDim, length, length - count, s.Scale);
        if (pageType == ElementType.F32)
        {
            var pages = pagesOfSequence.ToArray();
            AttentionReference.Attention(q, new AttentionReference.Rows(keyPages, keyWidth, pages, s.PageSize),
                new AttentionReference.Rows(valuePages, valueWidth, pages, s.PageSize), y, shape);
            return;
        }
        var keys = Gather(keyPages, pageType, s.PageSize, keyWidth, pagesOfSequence, length);
        fixed (float* k = keys)
        {
            if (mla)
            {
                AttentionReference.Attention(q, (nint)k, keyWidth, (nint)k, keyWidth, y, shape);
                return;
            }
            var values = Gather(valuePages, pageType, s.PageSize, valueWidth, pagesOfSequence, length);
            fixed (float* v = values)
                AttentionReference.Attention(q, (nint)k, keyWidth, (nint)v, valueWidth, y, shape);
        }
    }
}
