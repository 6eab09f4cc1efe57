using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Numerics.Tensors;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// HeadwiseLinear on the CPU (MLA's absorbed projections: q_nope through W_UK, the latent output through W_UV): one small
/// product per head, the heads spread over the pool's threads, each head's matrix read once per call (decode) from where it
/// lies. float32 activations (x [tokens, heads, in] and y [tokens, heads, out], rows strided); any stored weight form.
/// <list type="bullet">
/// <item>y = W[h] x (out = W.Rows): each head through <see cref="CpuGemv"/> on one thread, up to
/// <see cref="CpuLinear.GemvMaxRows"/> tokens at a time (prefill: the head's matrix is read again from cache per 8 tokens;
/// per-head calls of the pool's GEMM were slower at 64 tokens and 16 heads of 128 x 512).</item>
/// <item>y = W[h]^T x (out = W.Cols): an AXPY over the rows of W[h] in order, <c>y[t, :] += x[t, h, o] * W[h][o, :]</c>,
/// up to four tokens at a time sharing each weight load. bf16 weights on AVX-512 or AVX2: a 32-bit lane of a row holds
/// columns 2j (low half, shifted up) and 2j + 1 (high half, masked), so the even and odd columns accumulate apart in
/// registers (a column block of 64 per pass) and are interleaved once at the end; other forms (and the portable level)
/// decode a block of rows into per-thread float32 scratch (<see cref="WeightData.DecodeRows"/>) and add with
/// TensorPrimitives.</item>
/// </list>
/// Summation order: per output, over the head's rows (transposed) or as <see cref="CpuGemv"/>/<see cref="CpuGemm"/> sum
/// (plain), with fused multiply-adds: within float32 rounding of the reference, not bitwise. No allocation per call once the
/// per-thread scratch has grown.
/// </summary>
internal static unsafe class CpuHeadwise
{
    /// <summary>Tokens that share one pass over a head's weights in the transposed kernel.</summary>
    const int TokenGroup = 4;

    /// <summary>Weight rows the generic transposed path decodes at a time (per-thread scratch of RowBlock x cols floats).</summary>
    const int RowBlock = 16;

    /// <summary>One thread for the per-head GEMVs (the heads themselves are spread over the pool).</summary>
    static readonly CpuThreadPool OneThread = CpuThreadPool.WithThreads(1);

    [ThreadStatic] static Job? t_job;
    [ThreadStatic] static float[]? t_rows;  // the generic transposed path's decoded rows
    [ThreadStatic] static float[]? t_acc;   // the bf16 transposed path's even | odd accumulators per token

    /// <summary>y[t, h, :] = W[h] x[t, h, :] (or W[h]^T x[t, h, :] with <paramref name="transpose"/>), strides in elements.</summary>
    public static void Run(CpuThreadPool pool, in WeightData w, float* x, long xToken, long xHead, float* y, long yToken, long yHead, int tokens,
        bool transpose, CpuIsaLevel isa)
    {
        if (tokens == 0)
            return;
        var job = t_job ??= new Job();
        job.Set(w, x, xToken, xHead, y, yToken, yHead, tokens, transpose, isa);
        try
        {
            pool.For(w.Count, job.Body);
        }
        finally
        {
            job.Clear();
        }
    }

    /// <summary>The caller's reusable pool body: task h is head h.</summary>
    sealed class Job
    {
        WeightData _w;
        float* _x, _y;
        long _xToken, _xHead, _yToken, _yHead;
        int _tokens;
        bool _transpose;
        CpuIsaLevel _isa;
        public readonly Action<int> Body;

        public Job() => Body = Head;

        public void Set(in WeightData w, float* x, long xToken, long xHead, float* y, long yToken, long yHead, int tokens, bool transpose, CpuIsaLevel isa)
        {
            _w = w;
            _x = x;
            _y = y;
            (_xToken, _xHead, _yToken, _yHead, _tokens, _transpose, _isa) = (xToken, xHead, yToken, yHead, tokens, transpose, isa);
        }

        public void Clear()
        {
            _w = default;
            _x = null;
            _y = null;
        }

        void Head(int h)
        {
            var m = _w.Matrix(h);
            float* x = _x + h * _xHead, y = _y + h * _yHead;
            if (!_transpose)
            {
                // GEMV over up to 8 tokens at a time: a head's matrix (128 KiB at DeepSeek's 128 x 512 bf16) stays in L2 between them
                for (int t0 = 0; t0 < _tokens; t0 += CpuLinear.GemvMaxRows)
                    CpuGemv.Run(OneThread, m, x + t0 * _xToken, _xToken, Math.Min(CpuLinear.GemvMaxRows, _tokens - t0), null, y + t0 * _yToken, _yToken);
                return;
            }
            for (int t0 = 0; t0 < _tokens; t0 += TokenGroup)
            {
                int n = Math.Min(TokenGroup, _tokens - t0);
                float* xt = x + t0 * _xToken, yt = y + t0 * _yToken;
                if (m.Type == ElementType.BF16 && m.Cols % 2 == 0 && _isa == CpuIsaLevel.Avx512)
                    TransposedBf16Avx512(m, xt, _xToken, yt, _yToken, n);
                else if (m.Type == ElementType.BF16 && m.Cols % 2 == 0 && _isa == CpuIsaLevel.Avx2)
                    TransposedBf16Avx2(m, xt, _xToken, yt, _yToken, n);
                else
                    TransposedGeneric(m, xt, _xToken, yt, _yToken, n);
            }
        }
    }

    /// <summary>
    /// y[t, :] = sum_o x[t, o] W[o, :] for n tokens (n &lt;= 4), any weight form: blocks of decoded rows from per-thread
    /// scratch, added in row order with TensorPrimitives (multiply, then add: the reference's arithmetic).
    /// </summary>
    static void TransposedGeneric(in WeightData w, float* x, long xStride, float* y, long yStride, int n)
    {
        int rows = w.Rows, cols = w.Cols;
        float* block = CpuGemm.Scratch(ref t_rows, (long)RowBlock * cols);
        for (int t = 0; t < n; t++)
            new Span<float>(y + t * yStride, cols).Clear();
        for (int o0 = 0; o0 < rows; o0 += RowBlock)
        {
            int count = Math.Min(RowBlock, rows - o0);
            w.DecodeRows(o0, count, new Span<float>(block, count * cols));
            for (int t = 0; t < n; t++)
            {
                var acc = new Span<float>(y + t * yStride, cols);
                for (int k = 0; k < count; k++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(block + (long)k * cols, cols), x[t * xStride + o0 + k], acc, acc);
            }
        }
    }

    /// <summary>The bf16 kernels' scratch: for each of n tokens, its even-column then odd-column accumulators (cols floats).</summary>
    static float* Accumulators(int n, int cols) => CpuGemm.Scratch(ref t_acc, (long)n * cols);

    /// <summary>Even and odd accumulators of a token back into y's interleaved columns.</summary>
    static void Interleave(float* acc, int half, float* y)
    {
        for (int j = 0; j < half; j++)
        {
            y[2 * j] = acc[j];
            y[2 * j + 1] = acc[half + j];
        }
    }

    /// <summary>
    /// bf16 W [rows, cols] (cols even), AVX-512: column blocks of 32 lanes (64 columns: even and odd halves in two
    /// registers per lane block; one token: 64 lanes), all the rows in order per block, each of up to four tokens
    /// accumulating in registers.
    /// </summary>
    static void TransposedBf16Avx512(in WeightData w, float* x, long xStride, float* y, long yStride, int n)
    {
        int rows = w.Rows, half = w.Cols / 2;
        uint* data = (uint*)w.Data;
        float* acc = Accumulators(n, w.Cols);
        var oddMask = Vector512.Create(0xFFFF_0000u);
        int j = 0;
        if (n == 1)
        {
            // decode: 64 lanes (128 columns, 256 bytes of each row) per pass, eight accumulators
            for (; j <= half - 64; j += 64)
            {
                Vector512<float> e0 = default, o0 = default, e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
                for (int o = 0; o < rows; o++)
                {
                    uint* r = data + (long)o * half + j;
                    var xv = Vector512.Create(x[o]);
                    var p0 = Vector512.Load(r);
                    var p1 = Vector512.Load(r + 16);
                    var p2 = Vector512.Load(r + 32);
                    var p3 = Vector512.Load(r + 48);
                    e0 = Avx512F.FusedMultiplyAdd((p0 << 16).AsSingle(), xv, e0); o0 = Avx512F.FusedMultiplyAdd((p0 & oddMask).AsSingle(), xv, o0);
                    e1 = Avx512F.FusedMultiplyAdd((p1 << 16).AsSingle(), xv, e1); o1 = Avx512F.FusedMultiplyAdd((p1 & oddMask).AsSingle(), xv, o1);
                    e2 = Avx512F.FusedMultiplyAdd((p2 << 16).AsSingle(), xv, e2); o2 = Avx512F.FusedMultiplyAdd((p2 & oddMask).AsSingle(), xv, o2);
                    e3 = Avx512F.FusedMultiplyAdd((p3 << 16).AsSingle(), xv, e3); o3 = Avx512F.FusedMultiplyAdd((p3 & oddMask).AsSingle(), xv, o3);
                }
                Store(acc, half, j, e0, o0, e1, o1);
                Store(acc, half, j + 32, e2, o2, e3, o3);
            }
        }
        for (; j <= half - 32; j += 32)
        {
            Vector512<float> e00 = default, o00 = default, e01 = default, o01 = default, e10 = default, o10 = default, e11 = default, o11 = default;
            Vector512<float> e20 = default, o20 = default, e21 = default, o21 = default, e30 = default, o30 = default, e31 = default, o31 = default;
            for (int o = 0; o < rows; o++)
            {
                uint* r = data + (long)o * half + j;
                var p = Vector512.Load(r);
                var q = Vector512.Load(r + 16);
                var we0 = (p << 16).AsSingle();
                var wo0 = (p & oddMask).AsSingle();
                var we1 = (q << 16).AsSingle();
                var wo1 = (q & oddMask).AsSingle();
                var x0 = Vector512.Create(x[o]);
                e00 = Avx512F.FusedMultiplyAdd(we0, x0, e00); o00 = Avx512F.FusedMultiplyAdd(wo0, x0, o00);
                e01 = Avx512F.FusedMultiplyAdd(we1, x0, e01); o01 = Avx512F.FusedMultiplyAdd(wo1, x0, o01);
                if (n > 1)
                {
                    var x1 = Vector512.Create(x[xStride + o]);
                    e10 = Avx512F.FusedMultiplyAdd(we0, x1, e10); o10 = Avx512F.FusedMultiplyAdd(wo0, x1, o10);
                    e11 = Avx512F.FusedMultiplyAdd(we1, x1, e11); o11 = Avx512F.FusedMultiplyAdd(wo1, x1, o11);
                }
                if (n > 2)
                {
                    var x2 = Vector512.Create(x[2 * xStride + o]);
                    e20 = Avx512F.FusedMultiplyAdd(we0, x2, e20); o20 = Avx512F.FusedMultiplyAdd(wo0, x2, o20);
                    e21 = Avx512F.FusedMultiplyAdd(we1, x2, e21); o21 = Avx512F.FusedMultiplyAdd(wo1, x2, o21);
                }
                if (n > 3)
                {
                    var x3 = Vector512.Create(x[3 * xStride + o]);
                    e30 = Avx512F.FusedMultiplyAdd(we0, x3, e30); o30 = Avx512F.FusedMultiplyAdd(wo0, x3, o30);
                    e31 = Avx512F.FusedMultiplyAdd(we1, x3, e31); o31 = Avx512F.FusedMultiplyAdd(wo1, x3, o31);
                }
            }
            Store(acc, half, j, e00, o00, e01, o01);
            if (n > 1) Store(acc + 2 * half, half, j, e10, o10, e11, o11);
            if (n > 2) Store(acc + 4 * half, half, j, e20, o20, e21, o21);
            if (n > 3) Store(acc + 6 * half, half, j, e30, o30, e31, o31);
        }
        Finish(data, rows, half, j, x, xStride, acc, y, yStride, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store(float* acc, int half, int j, Vector512<float> e0, Vector512<float> o0, Vector512<float> e1, Vector512<float> o1)
    {
        e0.Store(acc + j);
        e1.Store(acc + j + 16);
        o0.Store(acc + half + j);
        o1.Store(acc + half + j + 16);
    }

    /// <summary>bf16 W, AVX2 + FMA: as the AVX-512 kernel with 8-lane registers (column blocks of 32).</summary>
    static void TransposedBf16Avx2(in WeightData w, float* x, long xStride, float* y, long yStride, int n)
    {
        int rows = w.Rows, half = w.Cols / 2;
        uint* data = (uint*)w.Data;
        float* acc = Accumulators(n, w.Cols);
        var oddMask = Vector256.Create(0xFFFF_0000u);
        int j = 0;
        for (; j <= half - 16; j += 16)
        {
            for (int t = 0; t < n; t++)
            {
                Vector256<float> e0 = default, o0 = default, e1 = default, o1 = default;
                float* xt = x + t * xStride;
                for (int o = 0; o < rows; o++)
                {
                    uint* r = data + (long)o * half + j;
                    var p = Vector256.Load(r);
                    var q = Vector256.Load(r + 8);
                    var xv = Vector256.Create(xt[o]);
                    e0 = Fma.MultiplyAdd((p << 16).AsSingle(), xv, e0);
                    o0 = Fma.MultiplyAdd((p & oddMask).AsSingle(), xv, o0);
                    e1 = Fma.MultiplyAdd((q << 16).AsSingle(), xv, e1);
                    o1 = Fma.MultiplyAdd((q & oddMask).AsSingle(), xv, o1);
                }
                float* a = acc + 2L * t * half;
                e0.Store(a + j);
                e1.Store(a + j + 8);
                o0.Store(a + half + j);
                o1.Store(a + half + j + 8);
            }
        }
        Finish(data, rows, half, j, x, xStride, acc, y, yStride, n);
    }

    /// <summary>The bf16 kernels' end: the lanes the vector blocks did not cover, then each token's accumulators into y.</summary>
    static void Finish(uint* data, int rows, int half, int j0, float* x, long xStride, float* acc, float* y, long yStride, int n)
    {
        TransposedBf16Tail(data, rows, half, j0, x, xStride, acc, n);
        for (int t = 0; t < n; t++)
            Interleave(acc + 2L * t * half, half, y + t * yStride);
    }

    /// <summary>The lanes [j0, half) the vector blocks did not cover, scalar, rows in order.</summary>
    static void TransposedBf16Tail(uint* data, int rows, int half, int j0, float* x, long xStride, float* acc, int n)
    {
        for (int t = 0; t < n; t++)
        {
            float* a = acc + 2L * t * half;
            float* xt = x + t * xStride;
            for (int j = j0; j < half; j++)
            {
                float e = 0, od = 0;
                for (int o = 0; o < rows; o++)
                {
                    uint lane = data[(long)o * half + j];
                    e = MathF.FusedMultiplyAdd(BitConverter.UInt32BitsToSingle(lane << 16), xt[o], e);
                    od = MathF.FusedMultiplyAdd(BitConverter.UInt32BitsToSingle(lane & 0xFFFF_0000u), xt[o], od);
                }
                a[j] = e;
                a[half + j] = od;
            }
        }
    }
}
