using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

// bf16 weights: a 32-bit lane holds columns 2j (low half: << 16 makes it a float32) and 2j + 1 (high half: masked), so x
// comes split into even and odd columns (GemvArgs.Split); four weight rows share each x load, except for one x row (decode),
// where the rows go one after another (Bf16Avx512Row: measured 17 -> 25 tokens/s on one core of the 0.31B Llama), with
// software prefetch 16 KiB ahead (25 -> 36).
internal static unsafe partial class CpuGemv
{
    /// <summary>
    /// How far ahead (bytes) the one-row kernels ask for weight lines (prefetcht2): on this Zen 4 VM one core's decode went
    /// from 26-27 to 36 tokens/s of the 0.31B Llama, two cores from ~45 to ~50 (same-minute A/B; 8-32 KiB alike, t0 and
    /// non-temporal hints slower). A prefetch past the matrix's end does not fault.
    /// </summary>
    const int PrefetchAhead = 16 << 10;



    /// <summary>acc + we * xe + wo * xo (two fused multiply-adds, even columns first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Fma2(Vector512<float> we, Vector512<float> xe, Vector512<float> wo, Vector512<float> xo, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(wo, xo, Avx512F.FusedMultiplyAdd(we, xe, acc));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Fma2(Vector256<float> we, Vector256<float> xe, Vector256<float> wo, Vector256<float> xo, Vector256<float> acc) =>
        Fma.MultiplyAdd(wo, xo, Fma.MultiplyAdd(we, xe, acc));

    /// <summary>
    /// One x row (decode): weight rows [row0, row0 + count) one after another, each in one linear sweep, so the weights are
    /// read as a single sequential stream (four rows side by side, 2 KiB apart, left half of one core's bandwidth unused on
    /// this Zen 4 VM). Two accumulators per row (even and odd columns) and two column steps per iteration keep four
    /// independent FMA chains in flight.
    /// </summary>
    static void Bf16Avx512Row(in GemvArgs a, int row0, int count, int xr)
    {
        int cols = a.W.Cols, half = cols / 2;
        float* s0 = a.Split + xr * a.SplitStride;
        var oddMask = Vector512.Create(0xFFFF_0000u);
        float* sums = stackalloc float[16];
        int j = 0;
        for (int k = 0; k < count; k++)
        {
            uint* w = (uint*)((ushort*)a.W.Data + (long)(row0 + k) * cols);
            Vector512<float> e0 = default, o0 = default, e1 = default, o1 = default;
            for (j = 0; j <= half - 32; j += 32)
            {
                Sse.Prefetch2((byte*)(w + j) + PrefetchAhead);
                Sse.Prefetch2((byte*)(w + j) + PrefetchAhead + 64);
                var p = Vector512.Load(w + j);
                var q = Vector512.Load(w + j + 16);
                e0 = Avx512F.FusedMultiplyAdd((p << 16).AsSingle(), Vector512.Load(s0 + j), e0);
                o0 = Avx512F.FusedMultiplyAdd((p & oddMask).AsSingle(), Vector512.Load(s0 + half + j), o0);
                e1 = Avx512F.FusedMultiplyAdd((q << 16).AsSingle(), Vector512.Load(s0 + j + 16), e1);
                o1 = Avx512F.FusedMultiplyAdd((q & oddMask).AsSingle(), Vector512.Load(s0 + half + j + 16), o1);
            }
            for (; j <= half - 16; j += 16)
            {
                var p = Vector512.Load(w + j);
                e0 = Avx512F.FusedMultiplyAdd((p << 16).AsSingle(), Vector512.Load(s0 + j), e0);
                o0 = Avx512F.FusedMultiplyAdd((p & oddMask).AsSingle(), Vector512.Load(s0 + half + j), o0);
            }
            sums[k * 4] = Vector512.Sum((e0 + e1) + (o0 + o1));
        }
        Finish(a, row0, count, xr, 1, sums, 2 * j);
    }

    /// <summary>Weight rows [row0, row0 + count) (1 to 4; missing rows repeat the last, computed and not stored) times x rows [xr, xr + TX.N).</summary>
    static void Bf16Avx512<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        if (TX.N == 1)
        {
            Bf16Avx512Row(a, row0, count, xr);
            return;
        }
        int cols = a.W.Cols, half = cols / 2;
        ushort* w = (ushort*)a.W.Data + (long)row0 * cols;
        uint* w0 = (uint*)w, w1 = (uint*)(w + (long)Math.Min(1, count - 1) * cols);
        uint* w2 = (uint*)(w + (long)Math.Min(2, count - 1) * cols), w3 = (uint*)(w + (long)Math.Min(3, count - 1) * cols);
        float* s0 = a.Split + xr * a.SplitStride, s1 = s0 + a.SplitStride, s2 = s1 + a.SplitStride, s3 = s2 + a.SplitStride;
        var oddMask = Vector512.Create(0xFFFF_0000u);
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        int j = 0;
        for (; j <= half - 16; j += 16)
        {
            Vector512<float> e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
            var e0 = Vector512.Load(s0 + j);
            var o0 = Vector512.Load(s0 + half + j);
            if (TX.N > 1) { e1 = Vector512.Load(s1 + j); o1 = Vector512.Load(s1 + half + j); }
            if (TX.N > 2) { e2 = Vector512.Load(s2 + j); o2 = Vector512.Load(s2 + half + j); }
            if (TX.N > 3) { e3 = Vector512.Load(s3 + j); o3 = Vector512.Load(s3 + half + j); }

            var p = Vector512.Load(w0 + j);
            var we = (p << 16).AsSingle();
            var wo = (p & oddMask).AsSingle();
            a00 = Fma2(we, e0, wo, o0, a00);
            if (TX.N > 1) a01 = Fma2(we, e1, wo, o1, a01);
            if (TX.N > 2) a02 = Fma2(we, e2, wo, o2, a02);
            if (TX.N > 3) a03 = Fma2(we, e3, wo, o3, a03);

            p = Vector512.Load(w1 + j);
            we = (p << 16).AsSingle();
            wo = (p & oddMask).AsSingle();
            a10 = Fma2(we, e0, wo, o0, a10);
            if (TX.N > 1) a11 = Fma2(we, e1, wo, o1, a11);
            if (TX.N > 2) a12 = Fma2(we, e2, wo, o2, a12);
            if (TX.N > 3) a13 = Fma2(we, e3, wo, o3, a13);

            p = Vector512.Load(w2 + j);
            we = (p << 16).AsSingle();
            wo = (p & oddMask).AsSingle();
            a20 = Fma2(we, e0, wo, o0, a20);
            if (TX.N > 1) a21 = Fma2(we, e1, wo, o1, a21);
            if (TX.N > 2) a22 = Fma2(we, e2, wo, o2, a22);
            if (TX.N > 3) a23 = Fma2(we, e3, wo, o3, a23);

            p = Vector512.Load(w3 + j);
            we = (p << 16).AsSingle();
            wo = (p & oddMask).AsSingle();
            a30 = Fma2(we, e0, wo, o0, a30);
            if (TX.N > 1) a31 = Fma2(we, e1, wo, o1, a31);
            if (TX.N > 2) a32 = Fma2(we, e2, wo, o2, a32);
            if (TX.N > 3) a33 = Fma2(we, e3, wo, o3, a33);
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        Finish(a, row0, count, xr, TX.N, sums, 2 * j);
    }

    /// <summary>As <see cref="Bf16Avx512Row"/> with 256-bit vectors.</summary>
    static void Bf16Avx2Row(in GemvArgs a, int row0, int count, int xr)
    {
        int cols = a.W.Cols, half = cols / 2;
        float* s0 = a.Split + xr * a.SplitStride;
        var oddMask = Vector256.Create(0xFFFF_0000u);
        float* sums = stackalloc float[16];
        int j = 0;
        for (int k = 0; k < count; k++)
        {
            uint* w = (uint*)((ushort*)a.W.Data + (long)(row0 + k) * cols);
            Vector256<float> e0 = default, o0 = default, e1 = default, o1 = default;
            for (j = 0; j <= half - 16; j += 16)
            {
                Sse.Prefetch2((byte*)(w + j) + PrefetchAhead);
                var p = Vector256.Load(w + j);
                var q = Vector256.Load(w + j + 8);
                e0 = Fma.MultiplyAdd((p << 16).AsSingle(), Vector256.Load(s0 + j), e0);
                o0 = Fma.MultiplyAdd((p & oddMask).AsSingle(), Vector256.Load(s0 + half + j), o0);
                e1 = Fma.MultiplyAdd((q << 16).AsSingle(), Vector256.Load(s0 + j + 8), e1);
                o1 = Fma.MultiplyAdd((q & oddMask).AsSingle(), Vector256.Load(s0 + half + j + 8), o1);
            }
            for (; j <= half - 8; j += 8)
            {
                var p = Vector256.Load(w + j);
                e0 = Fma.MultiplyAdd((p << 16).AsSingle(), Vector256.Load(s0 + j), e0);
                o0 = Fma.MultiplyAdd((p & oddMask).AsSingle(), Vector256.Load(s0 + half + j), o0);
            }
            sums[k * 4] = Vector256.Sum((e0 + e1) + (o0 + o1));
        }
        Finish(a, row0, count, xr, 1, sums, 2 * j);
    }

    static void Bf16Avx2<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        if (TX.N == 1)
        {
            Bf16Avx2Row(a, row0, count, xr);
            return;
        }
        int cols = a.W.Cols, half = cols / 2;
        ushort* w = (ushort*)a.W.Data + (long)row0 * cols;
        uint* w0 = (uint*)w, w1 = (uint*)(w + (long)Math.Min(1, count - 1) * cols);
        uint* w2 = (uint*)(w + (long)Math.Min(2, count - 1) * cols), w3 = (uint*)(w + (long)Math.Min(3, count - 1) * cols);
        float* s0 = a.Split + xr * a.SplitStride, s1 = s0 + a.SplitStride, s2 = s1 + a.SplitStride, s3 = s2 + a.SplitStride;
        var oddMask = Vector256.Create(0xFFFF_0000u);
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        int j = 0;
        for (; j <= half - 8; j += 8)
        {
            Vector256<float> e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
            var e0 = Vector256.Load(s0 + j);
            var o0 = Vector256.Load(s0 + half + j);
            if (TX.N > 1) { e1 = Vector256.Load(s1 + j); o1 = Vector256.Load(s1 + half + j); }
            if (TX.N > 2) { e2 = Vector256.Load(s2 + j); o2 = Vector256.Load(s2 + half + j); }
            if (TX.N > 3) { e3 = Vector256.Load(s3 + j); o3 = Vector256.Load(s3 + half + j); }

            var p = Vector256.Load(w0 + j);
            var we = (p << 16).AsSingle();
            var wo = (p & oddMask).AsSingle();
            a00 = Fma2(we, e0, wo, o0, a00);
            if (TX.N > 1) a01 = Fma2(we, e1, wo, o1, a01);
            if (TX.N > 2) a02 = Fma2(we, e2, wo, o2, a02);
            if (TX.N > 3) a03 = Fma2(we, e3, wo, o3, a03);

            p = Vector256.Load(w1 + j);
            we = (p << 16).AsSingle();
            wo = (p & oddMask).AsSingle();
            a10 = Fma2(we, e0, wo, o0, a10);
            if (TX.N > 1) a11 = Fma2(we, e1, wo, o1, a11);
            if (TX.N > 2) a12 = Fma2(we, e2, wo, o2, a12);
            if (TX.N > 3) a13 = Fma2(we, e3, wo, o3, a13);

            p = Vector256.Load(w2 + j);
            we = (p << 16).AsSingle();
            wo = (p & oddMask).AsSingle();
            a20 = Fma2(we, e0, wo, o0, a20);
            if (TX.N > 1) a21 = Fma2(we, e1, wo, o1, a21);
            if (TX.N > 2) a22 = Fma2(we, e2, wo, o2, a22);
            if (TX.N > 3) a23 = Fma2(we, e3, wo, o3, a23);

            p = Vector256.Load(w3 + j);
            we = (p << 16).AsSingle();
            wo = (p & oddMask).AsSingle();
            a30 = Fma2(we, e0, wo, o0, a30);
            if (TX.N > 1) a31 = Fma2(we, e1, wo, o1, a31);
            if (TX.N > 2) a32 = Fma2(we, e2, wo, o2, a32);
            if (TX.N > 3) a33 = Fma2(we, e3, wo, o3, a33);
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        Finish(a, row0, count, xr, TX.N, sums, 2 * j);
    }

    /// <summary>sums[k * 4 + r] = the lanes of accumulator a{k}{r} summed, for r &lt; n.</summary>
    static void Sums(float* sums, int n, Vector512<float> a00, Vector512<float> a01, Vector512<float> a02, Vector512<float> a03,
        Vector512<float> a10, Vector512<float> a11, Vector512<float> a12, Vector512<float> a13, Vector512<float> a20, Vector512<float> a21,
        Vector512<float> a22, Vector512<float> a23, Vector512<float> a30, Vector512<float> a31, Vector512<float> a32, Vector512<float> a33)
    {
        sums[0] = Vector512.Sum(a00); sums[4] = Vector512.Sum(a10); sums[8] = Vector512.Sum(a20); sums[12] = Vector512.Sum(a30);
        if (n > 1) { sums[1] = Vector512.Sum(a01); sums[5] = Vector512.Sum(a11); sums[9] = Vector512.Sum(a21); sums[13] = Vector512.Sum(a31); }
        if (n > 2) { sums[2] = Vector512.Sum(a02); sums[6] = Vector512.Sum(a12); sums[10] = Vector512.Sum(a22); sums[14] = Vector512.Sum(a32); }
        if (n > 3) { sums[3] = Vector512.Sum(a03); sums[7] = Vector512.Sum(a13); sums[11] = Vector512.Sum(a23); sums[15] = Vector512.Sum(a33); }
    }

    static void Sums(float* sums, int n, Vector256<float> a00, Vector256<float> a01, Vector256<float> a02, Vector256<float> a03,
        Vector256<float> a10, Vector256<float> a11, Vector256<float> a12, Vector256<float> a13, Vector256<float> a20, Vector256<float> a21,
        Vector256<float> a22, Vector256<float> a23, Vector256<float> a30, Vector256<float> a31, Vector256<float> a32, Vector256<float> a33)
    {
        sums[0] = Vector256.Sum(a00); sums[4] = Vector256.Sum(a10); sums[8] = Vector256.Sum(a20); sums[12] = Vector256.Sum(a30);
        if (n > 1) { sums[1] = Vector256.Sum(a01); sums[5] = Vector256.Sum(a11); sums[9] = Vector256.Sum(a21); sums[13] = Vector256.Sum(a31); }
        if (n > 2) { sums[2] = Vector256.Sum(a02); sums[6] = Vector256.Sum(a12); sums[10] = Vector256.Sum(a22); sums[14] = Vector256.Sum(a32); }
        if (n > 3) { sums[3] = Vector256.Sum(a03); sums[7] = Vector256.Sum(a13); sums[11] = Vector256.Sum(a23); sums[15] = Vector256.Sum(a33); }
    }
}
