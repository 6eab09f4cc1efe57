using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// One sequence of a paged attention batch as the host read (and checked) its metadata: its query rows are
/// q[QueryStart .. QueryStart + Count), it has Length keys (its queries are the last Count positions), and its pages are
/// blockTable[TableOffset .. TableOffset + ceil(Length / pageSize)) (for row b of a [batch, maxPages] table, b * maxPages).
/// </summary>
internal readonly record struct CpuPagedSequence(int QueryStart, int Count, int Length, int TableOffset);

/// <summary>
/// The CPU backend's attention over the paged KV cache (PagedAttention and PagedMlaAttention): effectively computes what
/// <see cref="Reference.PagedKvReference.Sequence"/> computes for each sequence, reading the pages in place (a bf16 row is
/// widened in registers, exactly) with Vector512 / Vector256 (AVX-512F, AVX2 + FMA; Vector128 elsewhere).
/// <para>
/// Work: the rows of one kv head of one sequence are its (query i, group head g) pairs, row = i * group + g, all of which
/// read the same keys and values. A work item is a block of up to 16 such rows (<see cref="MaxBlockRows"/>; a decode token
/// of a group of 4 is one block of 4 rows, a prefill of 512 tokens 128 blocks), so the q heads of a kv head and several
/// queries of a prefill share every key and value row: each 64-key tile is read from memory once per block and from L1
/// for the block's further 4-row passes. Items (sequence, kv head, block) run in parallel on the pool, the most keys first.
/// </para>
/// <para>
/// Softmax: two passes over a per-thread score buffer [rows / 4, keys, 4], not an online (streaming) softmax, so the
/// float32 steps are the reference's: s = scale * dot(q, k); the row's maximum subtracted; exp (TensorPrimitives.Exp, the
/// reference's); divided by the sum; then y = sum_j w[j] * v[j] in j order. Only the dot products' and the sum's order of
/// additions differ, so results agree to float32 rounding, and no running maximum is rescaled. The buffer holds 16 rows *
/// keys floats (256 KiB at 4096 keys); at long contexts blocks shrink to keep it within 4 MiB.
/// </para>
/// <para>
/// Causal mask: row (i, g) sees positions 0 .. L - n + i. A block computes scores up to its last row's position; the few
/// scores past a row's own position are set to -inf before the softmax (weight exactly 0), and no key past the sequence's
/// length is read. Arguments are assumed valid (the op API and the backend check them, as for the reference).
/// </para>
/// </summary>
internal static unsafe class CpuPagedAttention
{
    /// <summary>Rows of one block (work item): 4 passes of the 4-row micro-kernels.</summary>
    const int MaxBlockRows = 16;
    /// <summary>Keys per tile: 64 bf16 rows of 128 elements are 16 KiB, so a tile stays in L1 while a block's passes reuse it.</summary>
    const int KeyTile = 64;
    /// <summary>Most score floats a block may need (4 MiB); longer contexts take smaller blocks.</summary>
    const long ScoreBudget = 1L << 20;

    /// <summary>The widest vector this machine runs natively: 512 (AVX-512F), 256 (AVX2 + FMA) or 128.</summary>
    public static int VectorBits { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? 512 : Avx2.IsSupported && Fma.IsSupported ? 256 : 128;

    /// <summary>
    /// Attention of a batch of sequences over one layer of the pool. q [tokens, qHeads, headDim] f32; y [tokens, qHeads,
    /// vHeadDim] f32 (rows of the listed sequences written, nothing else); keyPages [pages, pageSize, kvHeads * headDim] and
    /// valuePages [pages, pageSize, kvHeads * vHeadDim] of <paramref name="pageType"/> (f32 or bf16). For MLA
    /// (<paramref name="mla"/>, kvHeads = 1) the values are the first vHeadDim elements of the key rows and valuePages is
    /// keyPages. Sequences with no queries are skipped.
    /// </summary>
    /// <param name="pool">Threads to run on (<see cref="CpuThreadPool.Shared"/> or the backend's).</param>
    /// <param name="q">Host address of q [tokens, qHeads, headDim] float32.</param>
    /// <param name="keyPages">Host address of the key pool layer.</param>
    /// <param name="valuePages">Host address of the value pool layer (MLA: keyPages).</param>
    /// <param name="pageType">The pools' element type: F32 or BF16.</param>
    /// <param name="blockTable">Page ids; each sequence's pages start at its <see cref="CpuPagedSequence.TableOffset"/>.</param>
    /// <param name="sequences">The sequences to compute, already checked (lengths, pages, query offsets).</param>
    /// <param name="y">Host address of the output [tokens, qHeads, vHeadDim] float32.</param>
    /// <param name="s">The call's shape (heads, head sizes, page size, scale; Tokens, Batch, MaxPages and Pages are not read).</param>
    /// <param name="mla">Values are the first vHeadDim elements of the key rows (PagedMlaAttention).</param>
    /// <param name="vectorBits">0: the widest this machine runs (<see cref="VectorBits"/>); 512, 256 or 128 to force one (tests).</param>
    public static void Run(CpuThreadPool pool, nint q, nint keyPages, nint valuePages, ElementType pageType, ReadOnlySpan<int> blockTable,
        ReadOnlySpan<CpuPagedSequence> sequences, nint y, PagedAttentionShape s, bool mla, int vectorBits = 0)
    {
        if (pageType != ElementType.F32 && pageType != ElementType.BF16)
            throw new NotSupportedException($"CpuPagedAttention reads f32 or bf16 pages, not {pageType}.");
        int bits = vectorBits == 0 ? VectorBits : vectorBits;
        if (bits is not (512 or 256 or 128) || bits > VectorBits)
            throw new ArgumentOutOfRangeException(nameof(vectorBits), vectorBits, $"0, or 128 .. {VectorBits} (this machine's widest) in powers of two.");
        var job = t_job ??= new Job();
        int group = s.QHeads / s.KvHeads, maxLength = 0;
        foreach (var sequence in sequences)
            if (sequence.Count > 0)
                maxLength = Math.Max(maxLength, sequence.Length);
        if (maxLength == 0)
            return;
        // block rows: 16, fewer when the score buffer would pass its budget or the batch has too few items for the threads
        int blockRows = MaxBlockRows;
        while (blockRows > 4 && (long)blockRows * maxLength > ScoreBudget)
            blockRows -= 4;
        while (blockRows > 4 && Items(sequences, group, s.KvHeads, blockRows) < 2 * pool.Threads)
            blockRows /= 2;
        if (job.ItemStarts.Length < sequences.Length + 1)
            job.ItemStarts = new int[sequences.Length + 1];
        int items = 0;
        for (int b = 0; b < sequences.Length; b++)
        {
            job.ItemStarts[b] = items;
            items += s.KvHeads * Blocks(sequences[b].Count, group, blockRows);
        }
        job.ItemStarts[sequences.Length] = items;
        fixed (int* table = blockTable)
        fixed (CpuPagedSequence* list = sequences)
        {
            job.Set((float*)q, (byte*)keyPages, (byte*)valuePages, pageType == ElementType.BF16, table, list, sequences.Length,
                (float*)y, s, mla, blockRows, bits);
            try
            {
                pool.For(items, job.Body);
            }
            finally
            {
                job.Clear();
            }
        }
    }

    /// <summary>
    /// One sequence, with the arguments of <see cref="Reference.PagedKvReference.Sequence"/>: q [count, qHeads, headDim] f32 (the
    /// last count of length positions), its pages in position order, y [count, qHeads, vHeadDim] f32.
    /// </summary>
    public static void Sequence(CpuThreadPool pool, nint q, nint keyPages, nint valuePages, ElementType pageType, ReadOnlySpan<int> pagesOfSequence,
        int length, int count, nint y, PagedAttentionShape s, bool mla, int vectorBits = 0)
    {
        var sequence = new CpuPagedSequence(0, count, length, 0);
        Run(pool, q, keyPages, valuePages, pageType, pagesOfSequence, new ReadOnlySpan<CpuPagedSequence>(in sequence), y, s, mla, vectorBits);
    }

    static int Blocks(int count, int group, int blockRows) => (int)(((long)count * group + blockRows - 1) / blockRows);

    static long Items(ReadOnlySpan<CpuPagedSequence> sequences, int group, int kvHeads, int blockRows)
    {
        long items = 0;
        foreach (var sequence in sequences)
            items += (long)kvHeads * Blocks(sequence.Count, group, blockRows);
        return items;
    }

    [ThreadStatic]
    static Job? t_job;

    /// <summary>One call's arguments, held per calling thread with a delegate made once (no allocation per call).</summary>
    sealed class Job
    {
        public readonly Action<int> Body;
        public int[] ItemStarts = new int[8]; // [sequences + 1]: first work item of each sequence
        public float* Q, Y;
        public byte* K, V;
        public bool Bf16, Mla;
        public int* Table;
        public CpuPagedSequence* Sequences;
        public int SequenceCount, BlockRows, Bits;
        public PagedAttentionShape S;

        public Job() => Body = Execute;

        public void Set(float* q, byte* k, byte* v, bool bf16, int* table, CpuPagedSequence* sequences, int sequenceCount, float* y,
            PagedAttentionShape s, bool mla, int blockRows, int bits)
        {
            Q = q;
            K = k;
            V = v;
            Table = table;
            Sequences = sequences;
            Y = y;
            (Bf16, SequenceCount, S, Mla, BlockRows, Bits) = (bf16, sequenceCount, s, mla, blockRows, bits);
        }

        public void Clear()
        {
            Q = Y = null;
            K = V = null;
            Table = null;
            Sequences = null;
        }

        void Execute(int item)
        {
            // the sequence: the last b with ItemStarts[b] <= item (sequences without queries own no items)
            int lo = 0, hi = SequenceCount - 1;
            while (lo < hi)
            {
                int mid = (lo + hi + 1) >> 1;
                if (ItemStarts[mid] <= item)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            int b = lo, local = item - ItemStarts[b], group = S.QHeads / S.KvHeads;
            int kvHead = local % S.KvHeads, blocks = Blocks(Sequences[b].Count, group, BlockRows);
            int block = blocks - 1 - local / S.KvHeads; // the last blocks (most keys) first
            int rowStart = block * BlockRows, rowEnd = (int)Math.Min(rowStart + BlockRows, (long)Sequences[b].Count * group);
            switch (Bits, Bf16)
            {
                case (512, false): Block<Lanes512, Vector512<float>, F32Page>(this, b, kvHead, rowStart, rowEnd); break;
                case (512, true): Block<Lanes512, Vector512<float>, Bf16Page>(this, b, kvHead, rowStart, rowEnd); break;
                case (256, false): Block<Lanes256, Vector256<float>, F32Page>(this, b, kvHead, rowStart, rowEnd); break;
                case (256, true): Block<Lanes256, Vector256<float>, Bf16Page>(this, b, kvHead, rowStart, rowEnd); break;
                case (_, false): Block<Lanes128, Vector128<float>, F32Page>(this, b, kvHead, rowStart, rowEnd); break;
                case (_, true): Block<Lanes128, Vector128<float>, Bf16Page>(this, b, kvHead, rowStart, rowEnd); break;
            }
        }
    }

    // per-thread scratch, pinned, grown as needed
    [ThreadStatic] static float[]? t_scores;
    [ThreadStatic] static float[]? t_zeros;   // the q row of a padding row
    [ThreadStatic] static float[]? t_discard; // the output row of a padding row

    static float* Scratch(ref float[]? buffer, long floats)
    {
        if (buffer == null || buffer.Length < floats)
            buffer = GC.AllocateArray<float>((int)Math.Max(floats, (buffer?.Length ?? 0) * 2L), pinned: true);
        return (float*)Unsafe.AsPointer(ref buffer[0]);
    }

    /// <summary>
    /// Rows [rowStart, rowEnd) of kv head <paramref name="kvHead"/> of sequence <paramref name="b"/>, in passes of 4 rows
    /// (a short last pass padded with rows of q = 0 whose output is discarded).
    /// </summary>
    static void Block<TL, TV, TE>(Job job, int b, int kvHead, int rowStart, int rowEnd)
        where TL : struct, ILanes<TV> where TV : struct where TE : struct, IPageElement
    {
        var s = job.S;
        var sequence = job.Sequences[b];
        int group = s.QHeads / s.KvHeads, headDim = s.HeadDim, vHeadDim = s.VHeadDim, first = sequence.Length - sequence.Count;
        int passes = (rowEnd - rowStart + 3) / 4, keys = first + (rowEnd - 1) / group + 1; // keys 0 .. the last row's position
        long keyStride = (long)s.KvHeads * headDim * TE.Size, valueStride = job.Mla ? keyStride : (long)s.KvHeads * vHeadDim * TE.Size;
        byte* keyBase = job.K + (long)kvHead * headDim * TE.Size, valueBase = job.V + (long)kvHead * vHeadDim * TE.Size;
        int* pages = job.Table + sequence.TableOffset;

        float* scores = Scratch(ref t_scores, (long)passes * keys * 4); // [passes, keys, 4]
        float* zeros = Scratch(ref t_zeros, headDim);
        new Span<float>(zeros, headDim).Clear();
        float* discard = Scratch(ref t_discard, vHeadDim);
        var qRows = stackalloc float*[MaxBlockRows];
        var yRows = stackalloc float*[MaxBlockRows];
        var limits = stackalloc int[MaxBlockRows]; // last position each row sees
        for (int k = 0; k < passes * 4; k++)
        {
            int row = rowStart + k;
            if (row < rowEnd)
            {
                int i = row / group, head = kvHead * group + row % group;
                long token = sequence.QueryStart + i;
                qRows[k] = job.Q + (token * s.QHeads + head) * headDim;
                yRows[k] = job.Y + (token * s.QHeads + head) * vHeadDim;
                limits[k] = first + i;
            }
            else
            {
                qRows[k] = zeros;
                yRows[k] = discard;
                limits[k] = keys - 1;
            }
        }

        var tileRows = stackalloc byte*[KeyTile];
        // pass 1: scores, tile by tile, every 4-row pass over each tile
        for (int t0 = 0; t0 < keys; t0 += KeyTile)
        {
            int count = Math.Min(KeyTile, keys - t0);
            TileRows(tileRows, keyBase, keyStride, pages, s.PageSize, t0, count);
            for (int p = 0; p < passes; p++)
                Scores<TL, TV, TE>(qRows + 4 * p, tileRows, count, headDim, s.Scale, scores + ((long)p * keys + t0) * 4);
        }
        for (int p = 0; p < passes; p++)
            Softmax(scores + (long)p * keys * 4, keys, limits + 4 * p);
        // pass 2: y = sum_j w[j] * v[j], tile by tile
        for (int k = 0; k < passes * 4; k++)
            new Span<float>(yRows[k], vHeadDim).Clear();
        for (int t0 = 0; t0 < keys; t0 += KeyTile)
        {
            int count = Math.Min(KeyTile, keys - t0);
            TileRows(tileRows, valueBase, valueStride, pages, s.PageSize, t0, count);
            for (int p = 0; p < passes; p++)
                Accumulate<TL, TV, TE>(scores + ((long)p * keys + t0) * 4, tileRows, count, vHeadDim, yRows + 4 * p);
        }
    }

    /// <summary>Addresses of rows t0 .. t0 + count - 1 of a sequence, walking its pages (no division per row).</summary>
    static void TileRows(byte** rows, byte* head, long rowStride, int* pages, int pageSize, int t0, int count)
    {
        int page = t0 / pageSize, offset = t0 % pageSize;
        byte* row = head + ((long)pages[page] * pageSize + offset) * rowStride;
        for (int j = 0; j < count; j++)
        {
            rows[j] = row;
            row += rowStride;
            if (++offset == pageSize && j + 1 < count)
            {
                offset = 0;
                row = head + (long)pages[++page] * pageSize * rowStride;
            }
        }
    }

    /// <summary>
    /// scores[j, r] = scale * dot(q[r], key[j]) for 4 rows r and <paramref name="count"/> keys, two keys at a time
    /// (8 accumulators: each q load feeds two FMAs, each key load four), reduced with <see cref="ILanes{TV}.Sum4"/>.
    /// </summary>
    static void Scores<TL, TV, TE>(float** q, byte** keys, int count, int headDim, float scale, float* scores)
        where TL : struct, ILanes<TV> where TV : struct where TE : struct, IPageElement
    {
        float* q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        int full = headDim - headDim % TL.Count;
        var scaled = Vector128.Create(scale);
        int j = 0;
        for (; j + 2 <= count; j += 2)
        {
            byte* k0 = keys[j], k1 = keys[j + 1];
            TV a00 = default, a10 = default, a20 = default, a30 = default, a01 = default, a11 = default, a21 = default, a31 = default;
            for (int c = 0; c < full; c += TL.Count)
            {
                TV x0 = TE.Load<TL, TV>(k0 + (nint)c * TE.Size), x1 = TE.Load<TL, TV>(k1 + (nint)c * TE.Size);
                TV v = TL.Load(q0 + c);
                a00 = TL.Fma(v, x0, a00);
                a01 = TL.Fma(v, x1, a01);
                v = TL.Load(q1 + c);
                a10 = TL.Fma(v, x0, a10);
                a11 = TL.Fma(v, x1, a11);
                v = TL.Load(q2 + c);
                a20 = TL.Fma(v, x0, a20);
                a21 = TL.Fma(v, x1, a21);
                v = TL.Load(q3 + c);
                a30 = TL.Fma(v, x0, a30);
                a31 = TL.Fma(v, x1, a31);
            }
            var s0 = TL.Sum4(a00, a10, a20, a30);
            var s1 = TL.Sum4(a01, a11, a21, a31);
            if (full < headDim)
            {
                s0 += TailDots<TE>(q, k0, full, headDim);
                s1 += TailDots<TE>(q, k1, full, headDim);
            }
            (s0 * scaled).Store(scores + 4 * j);
            (s1 * scaled).Store(scores + 4 * j + 4);
        }
        if (j < count)
        {
            byte* k0 = keys[j];
            TV a0 = default, a1 = default, a2 = default, a3 = default;
            for (int c = 0; c < full; c += TL.Count)
            {
                TV x = TE.Load<TL, TV>(k0 + (nint)c * TE.Size);
                a0 = TL.Fma(TL.Load(q0 + c), x, a0);
                a1 = TL.Fma(TL.Load(q1 + c), x, a1);
                a2 = TL.Fma(TL.Load(q2 + c), x, a2);
                a3 = TL.Fma(TL.Load(q3 + c), x, a3);
            }
            var s0 = TL.Sum4(a0, a1, a2, a3);
            if (full < headDim)
                s0 += TailDots<TE>(q, k0, full, headDim);
            (s0 * scaled).Store(scores + 4 * j);
        }
    }

    /// <summary>The dot products' elements [from, to) that no full vector covers, for the 4 rows.</summary>
    static Vector128<float> TailDots<TE>(float** q, byte* key, int from, int to) where TE : struct, IPageElement
    {
        float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        for (int c = from; c < to; c++)
        {
            float k = TE.Scalar(key + (nint)c * TE.Size);
            d0 += q[0][c] * k;
            d1 += q[1][c] * k;
            d2 += q[2][c] * k;
            d3 += q[3][c] * k;
        }
        return Vector128.Create(d0, d1, d2, d3);
    }

    /// <summary>
    /// The softmax of 4 rows' scores [keys, 4] in place: positions past a row's limit get weight 0 (score -inf); the maximum
    /// subtracted, exp, divided by the sum (the reference's steps).
    /// </summary>
    static void Softmax(float* scores, int keys, int* limits)
    {
        for (int r = 0; r < 4; r++)
            for (int j = limits[r] + 1; j < keys; j++)
                scores[4 * j + r] = float.NegativeInfinity;
        var max = Vector128.Create(float.NegativeInfinity);
        for (int j = 0; j < keys; j++)
            max = Vector128.Max(max, Vector128.Load(scores + 4 * j));
        for (int j = 0; j < keys; j++)
            (Vector128.Load(scores + 4 * j) - max).Store(scores + 4 * j);
        var all = new Span<float>(scores, keys * 4);
        TensorPrimitives.Exp(all, all);
        var sum = Vector128<float>.Zero;
        for (int j = 0; j < keys; j++)
            sum += Vector128.Load(scores + 4 * j);
        for (int j = 0; j < keys; j++)
            (Vector128.Load(scores + 4 * j) / sum).Store(scores + 4 * j);
    }

    /// <summary>
    /// y[r] += sum_j w[j, r] * value[j] for 4 rows over <paramref name="count"/> values (in j order), two vectors of each
    /// row at a time (8 accumulators; each value load feeds four FMAs).
    /// </summary>
    static void Accumulate<TL, TV, TE>(float* weights, byte** values, int count, int vHeadDim, float** y)
        where TL : struct, ILanes<TV> where TV : struct where TE : struct, IPageElement
    {
        float* y0 = y[0], y1 = y[1], y2 = y[2], y3 = y[3];
        int w = TL.Count, c = 0;
        for (; c + 2 * w <= vHeadDim; c += 2 * w)
        {
            TV a00 = TL.Load(y0 + c), a01 = TL.Load(y0 + c + w), a10 = TL.Load(y1 + c), a11 = TL.Load(y1 + c + w);
            TV a20 = TL.Load(y2 + c), a21 = TL.Load(y2 + c + w), a30 = TL.Load(y3 + c), a31 = TL.Load(y3 + c + w);
            for (int j = 0; j < count; j++)
            {
                byte* v = values[j] + (nint)c * TE.Size;
                TV x0 = TE.Load<TL, TV>(v), x1 = TE.Load<TL, TV>(v + (nint)w * TE.Size);
                float* wj = weights + 4 * j;
                TV b = TL.Broadcast(wj[0]);
                a00 = TL.Fma(b, x0, a00);
                a01 = TL.Fma(b, x1, a01);
                b = TL.Broadcast(wj[1]);
                a10 = TL.Fma(b, x0, a10);
                a11 = TL.Fma(b, x1, a11);
                b = TL.Broadcast(wj[2]);
                a20 = TL.Fma(b, x0, a20);
                a21 = TL.Fma(b, x1, a21);
                b = TL.Broadcast(wj[3]);
                a30 = TL.Fma(b, x0, a30);
                a31 = TL.Fma(b, x1, a31);
            }
            TL.Store(y0 + c, a00);
            TL.Store(y0 + c + w, a01);
            TL.Store(y1 + c, a10);
            TL.Store(y1 + c + w, a11);
            TL.Store(y2 + c, a20);
            TL.Store(y2 + c + w, a21);
            TL.Store(y3 + c, a30);
            TL.Store(y3 + c + w, a31);
        }
        for (; c + w <= vHeadDim; c += w)
        {
            TV a0 = TL.Load(y0 + c), a1 = TL.Load(y1 + c), a2 = TL.Load(y2 + c), a3 = TL.Load(y3 + c);
            for (int j = 0; j < count; j++)
            {
                TV x = TE.Load<TL, TV>(values[j] + (nint)c * TE.Size);
                float* wj = weights + 4 * j;
                a0 = TL.Fma(TL.Broadcast(wj[0]), x, a0);
                a1 = TL.Fma(TL.Broadcast(wj[1]), x, a1);
                a2 = TL.Fma(TL.Broadcast(wj[2]), x, a2);
                a3 = TL.Fma(TL.Broadcast(wj[3]), x, a3);
            }
            TL.Store(y0 + c, a0);
            TL.Store(y1 + c, a1);
            TL.Store(y2 + c, a2);
            TL.Store(y3 + c, a3);
        }
        for (; c < vHeadDim; c++)
        {
            float s0 = y0[c], s1 = y1[c], s2 = y2[c], s3 = y3[c];
            for (int j = 0; j < count; j++)
            {
                float x = TE.Scalar(values[j] + (nint)c * TE.Size);
                float* wj = weights + 4 * j;
                s0 += wj[0] * x;
                s1 += wj[1] * x;
                s2 += wj[2] * x;
                s3 += wj[3] * x;
            }
            (y0[c], y1[c], y2[c], y3[c]) = (s0, s1, s2, s3);
        }
    }
}

/// <summary>The float32 vector operations the attention kernels use, over one vector width (JIT-specialised per width).</summary>
internal unsafe interface ILanes<TV> where TV : struct
{
    /// <summary>Floats per vector.</summary>
    static abstract int Count { get; }
    static abstract TV Load(float* p);
    /// <summary>Count bf16 values at p, widened exactly to float32.</summary>
    static abstract TV LoadBf16(ushort* p);
    static abstract TV Broadcast(float x);
    /// <summary>a * b + c.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract void Store(float* p, TV v);
    /// <summary>(sum a, sum b, sum c, sum d).</summary>
    static abstract Vector128<float> Sum4(TV a, TV b, TV c, TV d);
}

/// <summary>AVX-512F: 16 floats.</summary>
internal unsafe struct Lanes512 : ILanes<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadBf16(ushort* p) => Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector512<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d) =>
        Lanes256.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
}

/// <summary>AVX2 + FMA: 8 floats.</summary>
internal unsafe struct Lanes256 : ILanes<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadBf16(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector256<float> v) => v.Store(p);

    /// <summary>Three horizontal adds: (a0+a1, a2+a3, b0+b1, b2+b3 | upper halves), then the four sums per half, then the halves added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var h = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        return h.GetLower() + h.GetUpper();
    }
}

/// <summary>Portable: 4 floats (SSE on x64, Neon on Arm64).</summary>
internal unsafe struct Lanes128 : ILanes<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadBf16(ushort* p) =>
        Vector128.ShiftLeft(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsUInt16()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Broadcast(float x) => Vector128.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector128<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (Sse3.IsSupported)
            return Sse3.HorizontalAdd(Sse3.HorizontalAdd(a, b), Sse3.HorizontalAdd(c, d));
        return Vector128.Create(Vector128.Sum(a), Vector128.Sum(b), Vector128.Sum(c), Vector128.Sum(d));
    }
}

/// <summary>The element type of a page pool: how a vector and a scalar of it load as float32.</summary>
internal unsafe interface IPageElement
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }
    static abstract TV Load<TL, TV>(byte* p) where TL : struct, ILanes<TV> where TV : struct;
    static abstract float Scalar(byte* p);
}

/// <summary>float32 pages, read as they are.</summary>
internal unsafe struct F32Page : IPageElement
{
    public static int Size => sizeof(float);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TL, TV>(byte* p) where TL : struct, ILanes<TV> where TV : struct => TL.Load((float*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scalar(byte* p) => *(float*)p;
}

/// <summary>bf16 pages, widened in registers (exact).</summary>
internal unsafe struct Bf16Page : IPageElement
{
    public static int Size => sizeof(ushort);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TL, TV>(byte* p) where TL : struct, ILanes<TV> where TV : struct => TL.LoadBf16((ushort*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scalar(byte* p) => BitConverter.Int32BitsToSingle(*(ushort*)p << 16);
}
