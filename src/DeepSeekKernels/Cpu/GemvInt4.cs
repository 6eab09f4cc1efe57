using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

// INT4 weights (two codes a byte, low nibble = even column) with bf16 group scales and zero points: per row and group the
// 16 possible values bf16(((float)q - zero) * scale) are computed once into one Vector512 (two Vector256) and the codes
// look them up, 16 (8) bytes a step: the bytes widened to 32-bit lanes, the low nibble indexes the even columns' values,
// the byte shifted right by 4 the odd ones', against x split into even and odd columns. Groups of a size that is not a
// multiple of 32 take the scalar decode.
internal static unsafe partial class CpuGemv
{
    /// <summary>The 16 dequantised values of a group: bf16(((float)q - zero) * scale), q = 0..15, as float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Int4Table(ushort scale, ushort zero)
    {
        var q = Vector512.Create(0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f);
        var u = ((q - Vector512.Create(Widen(zero))) * Vector512.Create(Widen(scale))).AsUInt32();
        return ((u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512<uint>.One)) & Vector512.Create(0xFFFF_0000u)).AsSingle();
    }

    /// <summary>The 16 values as two halves (q 0..7 and 8..15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector256<float> Low, Vector256<float> High) Int4Table256(ushort scale, ushort zero)
    {
        var s = Vector256.Create(Widen(scale));
        var z = Vector256.Create(Widen(zero));
        var low = ((Vector256.Create(0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f) - z) * s).AsUInt32();
        var high = ((Vector256.Create(8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f) - z) * s).AsUInt32();
        low = (low + Vector256.Create(0x7FFFu) + ((low >> 16) & Vector256<uint>.One)) & Vector256.Create(0xFFFF_0000u);
        high = (high + Vector256.Create(0x7FFFu) + ((high >> 16) & Vector256<uint>.One)) & Vector256.Create(0xFFFF_0000u);
        return (low.AsSingle(), high.AsSingle());
    }

    /// <summary>table[index &amp; 15] per lane (bit 3 picks the half).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Lookup(Vector256<float> low, Vector256<float> high, Vector256<int> index) =>
        Avx.BlendVariable(Avx2.PermuteVar8x32(low, index), Avx2.PermuteVar8x32(high, index), (index << 28).AsSingle());

    /// <summary>
    /// How far ahead (bytes, in each of the group's four row streams) the INT4 kernels ask for weight lines (prefetcht2, once
    /// per group of columns): on this Zen 4 VM the 0.31B Llama's INT4 decode went from 58-64 to 92-96 tokens/s on two cores
    /// and 36 to 55-57 on one (same-minute A/B; 4-16 KiB alike). A prefetch past the matrix's end does not fault.
    /// </summary>
    const int Int4PrefetchAhead = 8 << 10;

    /// <summary>Asks for the lines <see cref="Int4PrefetchAhead"/> past group g's bytes in each of the four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchRows(byte* w0, byte* w1, byte* w2, byte* w3, long at)
    {
        Sse.Prefetch2(w0 + at);
        Sse.Prefetch2(w1 + at);
        Sse.Prefetch2(w2 + at);
        Sse.Prefetch2(w3 + at);
    }

    static void Int4Avx512<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        int cols = a.W.Cols, half = cols / 2, groupBytes = a.W.GroupSize / 2, groups = a.W.GroupsPerRow;
        int r1 = row0 + Math.Min(1, count - 1), r2 = row0 + Math.Min(2, count - 1), r3 = row0 + Math.Min(3, count - 1);
        byte* w0 = (byte*)a.W.Data + (long)row0 * half, w1 = (byte*)a.W.Data + (long)r1 * half;
        byte* w2 = (byte*)a.W.Data + (long)r2 * half, w3 = (byte*)a.W.Data + (long)r3 * half;
        ushort* scales = (ushort*)a.W.Scales, zeros = (ushort*)a.W.Zeros;
        long g0 = (long)row0 * groups, g1 = (long)r1 * groups, g2 = (long)r2 * groups, g3 = (long)r3 * groups;
        float* s0 = a.Split + xr * a.SplitStride, s1 = s0 + a.SplitStride, s2 = s1 + a.SplitStride, s3 = s2 + a.SplitStride;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        for (int g = 0; g < groups; g++)
        {
            PrefetchRows(w0, w1, w2, w3, (long)g * groupBytes + Int4PrefetchAhead);
            var t0 = Int4Table(scales[g0 + g], zeros[g0 + g]);
            var t1 = Int4Table(scales[g1 + g], zeros[g1 + g]);
            var t2 = Int4Table(scales[g2 + g], zeros[g2 + g]);
            var t3 = Int4Table(scales[g3 + g], zeros[g3 + g]);
            for (int j = g * groupBytes, end = j + groupBytes; j < end; j += 16)
            {
                Vector512<float> e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
                var e0 = Vector512.Load(s0 + j);
                var o0 = Vector512.Load(s0 + half + j);
                if (TX.N > 1) { e1 = Vector512.Load(s1 + j); o1 = Vector512.Load(s1 + half + j); }
                if (TX.N > 2) { e2 = Vector512.Load(s2 + j); o2 = Vector512.Load(s2 + half + j); }
                if (TX.N > 3) { e3 = Vector512.Load(s3 + j); o3 = Vector512.Load(s3 + half + j); }

                var v = Avx512F.ConvertToVector512Int32(Vector128.Load(w0 + j));
                var we = Avx512F.PermuteVar16x32(t0, v);
                var wo = Avx512F.PermuteVar16x32(t0, v >> 4);
                a00 = Fma2(we, e0, wo, o0, a00);
                if (TX.N > 1) a01 = Fma2(we, e1, wo, o1, a01);
                if (TX.N > 2) a02 = Fma2(we, e2, wo, o2, a02);
                if (TX.N > 3) a03 = Fma2(we, e3, wo, o3, a03);

                v = Avx512F.ConvertToVector512Int32(Vector128.Load(w1 + j));
                we = Avx512F.PermuteVar16x32(t1, v);
                wo = Avx512F.PermuteVar16x32(t1, v >> 4);
                a10 = Fma2(we, e0, wo, o0, a10);
                if (TX.N > 1) a11 = Fma2(we, e1, wo, o1, a11);
                if (TX.N > 2) a12 = Fma2(we, e2, wo, o2, a12);
                if (TX.N > 3) a13 = Fma2(we, e3, wo, o3, a13);

                v = Avx512F.ConvertToVector512Int32(Vector128.Load(w2 + j));
                we = Avx512F.PermuteVar16x32(t2, v);
                wo = Avx512F.PermuteVar16x32(t2, v >> 4);
                a20 = Fma2(we, e0, wo, o0, a20);
                if (TX.N > 1) a21 = Fma2(we, e1, wo, o1, a21);
                if (TX.N > 2) a22 = Fma2(we, e2, wo, o2, a22);
                if (TX.N > 3) a23 = Fma2(we, e3, wo, o3, a23);

                v = Avx512F.ConvertToVector512Int32(Vector128.Load(w3 + j));
                we = Avx512F.PermuteVar16x32(t3, v);
                wo = Avx512F.PermuteVar16x32(t3, v >> 4);
                a30 = Fma2(we, e0, wo, o0, a30);
                if (TX.N > 1) a31 = Fma2(we, e1, wo, o1, a31);
                if (TX.N > 2) a32 = Fma2(we, e2, wo, o2, a32);
                if (TX.N > 3) a33 = Fma2(we, e3, wo, o3, a33);
            }
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        Finish(a, row0, count, xr, TX.N, sums, cols);
    }

    static void Int4Avx2<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        int cols = a.W.Cols, half = cols / 2, groupBytes = a.W.GroupSize / 2, groups = a.W.GroupsPerRow;
        int r1 = row0 + Math.Min(1, count - 1), r2 = row0 + Math.Min(2, count - 1), r3 = row0 + Math.Min(3, count - 1);
        byte* w0 = (byte*)a.W.Data + (long)row0 * half, w1 = (byte*)a.W.Data + (long)r1 * half;
        byte* w2 = (byte*)a.W.Data + (long)r2 * half, w3 = (byte*)a.W.Data + (long)r3 * half;
        ushort* scales = (ushort*)a.W.Scales, zeros = (ushort*)a.W.Zeros;
        long g0 = (long)row0 * groups, g1 = (long)r1 * groups, g2 = (long)r2 * groups, g3 = (long)r3 * groups;
        float* s0 = a.Split + xr * a.SplitStride, s1 = s0 + a.SplitStride, s2 = s1 + a.SplitStride, s3 = s2 + a.SplitStride;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        for (int g = 0; g < groups; g++)
        {
            PrefetchRows(w0, w1, w2, w3, (long)g * groupBytes + Int4PrefetchAhead);
            var (l0, h0) = Int4Table256(scales[g0 + g], zeros[g0 + g]);
            var (l1, h1) = Int4Table256(scales[g1 + g], zeros[g1 + g]);
            var (l2, h2) = Int4Table256(scales[g2 + g], zeros[g2 + g]);
            var (l3, h3) = Int4Table256(scales[g3 + g], zeros[g3 + g]);
            for (int j = g * groupBytes, end = j + groupBytes; j < end; j += 8)
            {
                Vector256<float> e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
                var e0 = Vector256.Load(s0 + j);
                var o0 = Vector256.Load(s0 + half + j);
                if (TX.N > 1) { e1 = Vector256.Load(s1 + j); o1 = Vector256.Load(s1 + half + j); }
                if (TX.N > 2) { e2 = Vector256.Load(s2 + j); o2 = Vector256.Load(s2 + half + j); }
                if (TX.N > 3) { e3 = Vector256.Load(s3 + j); o3 = Vector256.Load(s3 + half + j); }

                var v = Avx2.ConvertToVector256Int32(w0 + j);
                var we = Lookup(l0, h0, v);
                var wo = Lookup(l0, h0, v >> 4);
                a00 = Fma2(we, e0, wo, o0, a00);
                if (TX.N > 1) a01 = Fma2(we, e1, wo, o1, a01);
                if (TX.N > 2) a02 = Fma2(we, e2, wo, o2, a02);
                if (TX.N > 3) a03 = Fma2(we, e3, wo, o3, a03);

                v = Avx2.ConvertToVector256Int32(w1 + j);
                we = Lookup(l1, h1, v);
                wo = Lookup(l1, h1, v >> 4);
                a10 = Fma2(we, e0, wo, o0, a10);
                if (TX.N > 1) a11 = Fma2(we, e1, wo, o1, a11);
                if (TX.N > 2) a12 = Fma2(we, e2, wo, o2, a12);
                if (TX.N > 3) a13 = Fma2(we, e3, wo, o3, a13);

                v = Avx2.ConvertToVector256Int32(w2 + j);
                we = Lookup(l2, h2, v);
                wo = Lookup(l2, h2, v >> 4);
                a20 = Fma2(we, e0, wo, o0, a20);
                if (TX.N > 1) a21 = Fma2(we, e1, wo, o1, a21);
                if (TX.N > 2) a22 = Fma2(we, e2, wo, o2, a22);
                if (TX.N > 3) a23 = Fma2(we, e3, wo, o3, a23);

                v = Avx2.ConvertToVector256Int32(w3 + j);
                we = Lookup(l3, h3, v);
                wo = Lookup(l3, h3, v >> 4);
                a30 = Fma2(we, e0, wo, o0, a30);
                if (TX.N > 1) a31 = Fma2(we, e1, wo, o1, a31);
                if (TX.N > 2) a32 = Fma2(we, e2, wo, o2, a32);
                if (TX.N > 3) a33 = Fma2(we, e3, wo, o3, a33);
            }
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        Finish(a, row0, count, xr, TX.N, sums, cols);
    }

    /// <summary>Groups whose size is not a multiple of 32: every column through the scalar decode.</summary>
    static void Int4Scalar<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        float* sums = stackalloc float[16];
        new Span<float>(sums, 16).Clear();
        Finish(a, row0, count, xr, TX.N, sums, 0);
    }
}
