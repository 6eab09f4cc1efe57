using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

// FP8 e4m3fn weights with float32 block scales, dequantised in registers to exactly Float8E4M3.Dequantize's value: the
// code's 7 low bits shifted left by 20 (its exponent and mantissa in float32's fields) are the code's magnitude times
// 2^-120, subnormal codes included, with the sign in bit 31; times (block scale * 2^120), which is exact when finite, that
// is the code's value times the block scale rounded once in float32; rounded to nearest even bf16; codes S.1111.111
// become NaN. A block whose scale * 2^120 overflows goes through the scalar decode. Per block of columns, 16 (8) columns a step; the
// columns of a block a step does not fill go through the scalar decode.
internal static unsafe partial class CpuGemv
{
    static readonly float TwoPow120 = MathF.ScaleB(1f, 120);

    /// <summary>
    /// 16 FP8 codes at <paramref name="p"/> dequantised with <paramref name="scale"/> = the block scale times 2^120 (exact:
    /// the caller checked it is finite), so one rounded multiply gives the code's value times the block scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> DecodeFp8(byte* p, Vector512<float> scale)
    {
        var v = Avx512F.ConvertToVector512UInt32(Vector128.Load(p));
        var bits = Vector512.ShiftRightArithmetic((v << 24).AsInt32(), 4).AsUInt32() & Vector512.Create(0x87F0_0000u);
        var u = (bits.AsSingle() * scale).AsUInt32();
        u = (u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512<uint>.One)) & Vector512.Create(0xFFFF_0000u);
        var nan = Vector512.Equals(v & Vector512.Create(0x7Fu), Vector512.Create(0x7Fu)) & Vector512.Create(0x7FC0_0000u);
        return (u | nan).AsSingle();
    }

    /// <summary>8 FP8 codes at <paramref name="p"/> dequantised with <paramref name="scale"/> = the block scale times 2^120.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> DecodeFp8(byte* p, Vector256<float> scale)
    {
        var v = Avx2.ConvertToVector256Int32(p).AsUInt32();
        var bits = Vector256.ShiftRightArithmetic((v << 24).AsInt32(), 4).AsUInt32() & Vector256.Create(0x87F0_0000u);
        var u = (bits.AsSingle() * scale).AsUInt32();
        u = (u + Vector256.Create(0x7FFFu) + ((u >> 16) & Vector256<uint>.One)) & Vector256.Create(0xFFFF_0000u);
        var nan = Vector256.Equals(v & Vector256.Create(0x7Fu), Vector256.Create(0x7Fu)) & Vector256.Create(0x7FC0_0000u);
        return (u | nan).AsSingle();
    }

    static void Fp8Avx512<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        int cols = a.W.Cols, blockCols = a.W.BlockCols, blockRows = a.W.BlockRows, scaleCols = a.W.ScaleCols;
        int r1 = row0 + Math.Min(1, count - 1), r2 = row0 + Math.Min(2, count - 1), r3 = row0 + Math.Min(3, count - 1);
        byte* w0 = (byte*)a.W.Data + (long)row0 * cols, w1 = (byte*)a.W.Data + (long)r1 * cols;
        byte* w2 = (byte*)a.W.Data + (long)r2 * cols, w3 = (byte*)a.W.Data + (long)r3 * cols;
        float* scales = (float*)a.W.Scales;
        float* sc0 = scales + (long)(row0 / blockRows) * scaleCols, sc1 = scales + (long)(r1 / blockRows) * scaleCols;
        float* sc2 = scales + (long)(r2 / blockRows) * scaleCols, sc3 = scales + (long)(r3 / blockRows) * scaleCols;
        float* x0 = a.X + xr * a.XStride, x1 = x0 + a.XStride, x2 = x1 + a.XStride, x3 = x2 + a.XStride;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        float* tails = stackalloc float[16];
        new Span<float>(tails, 16).Clear();
        for (int b = 0; b < scaleCols; b++)
        {
            int c = b * blockCols, end = Math.Min(c + blockCols, cols);
            // the scales times 2^120: exact unless it overflows (a scale of 2^8 or more, or not finite): then the scalar decode
            float s0 = sc0[b] * TwoPow120, s1 = sc1[b] * TwoPow120, s2 = sc2[b] * TwoPow120, s3 = sc3[b] * TwoPow120;
            if (!(float.IsFinite(s0) && float.IsFinite(s1) && float.IsFinite(s2) && float.IsFinite(s3)))
            {
                BlockTail(a, row0, count, xr, TX.N, c, end, tails);
                continue;
            }
            var f0 = Vector512.Create(s0);
            var f1 = Vector512.Create(s1);
            var f2 = Vector512.Create(s2);
            var f3 = Vector512.Create(s3);
            for (; c <= end - 16; c += 16)
            {
                Vector512<float> v1 = default, v2 = default, v3 = default;
                var v0 = Vector512.Load(x0 + c);
                if (TX.N > 1) v1 = Vector512.Load(x1 + c);
                if (TX.N > 2) v2 = Vector512.Load(x2 + c);
                if (TX.N > 3) v3 = Vector512.Load(x3 + c);

                var wv = DecodeFp8(w0 + c, f0);
                a00 = Avx512F.FusedMultiplyAdd(wv, v0, a00);
                if (TX.N > 1) a01 = Avx512F.FusedMultiplyAdd(wv, v1, a01);
                if (TX.N > 2) a02 = Avx512F.FusedMultiplyAdd(wv, v2, a02);
                if (TX.N > 3) a03 = Avx512F.FusedMultiplyAdd(wv, v3, a03);
                wv = DecodeFp8(w1 + c, f1);
                a10 = Avx512F.FusedMultiplyAdd(wv, v0, a10);
                if (TX.N > 1) a11 = Avx512F.FusedMultiplyAdd(wv, v1, a11);
                if (TX.N > 2) a12 = Avx512F.FusedMultiplyAdd(wv, v2, a12);
                if (TX.N > 3) a13 = Avx512F.FusedMultiplyAdd(wv, v3, a13);
                wv = DecodeFp8(w2 + c, f2);
                a20 = Avx512F.FusedMultiplyAdd(wv, v0, a20);
                if (TX.N > 1) a21 = Avx512F.FusedMultiplyAdd(wv, v1, a21);
                if (TX.N > 2) a22 = Avx512F.FusedMultiplyAdd(wv, v2, a22);
                if (TX.N > 3) a23 = Avx512F.FusedMultiplyAdd(wv, v3, a23);
                wv = DecodeFp8(w3 + c, f3);
                a30 = Avx512F.FusedMultiplyAdd(wv, v0, a30);
                if (TX.N > 1) a31 = Avx512F.FusedMultiplyAdd(wv, v1, a31);
                if (TX.N > 2) a32 = Avx512F.FusedMultiplyAdd(wv, v2, a32);
                if (TX.N > 3) a33 = Avx512F.FusedMultiplyAdd(wv, v3, a33);
            }
            if (c < end)
                BlockTail(a, row0, count, xr, TX.N, c, end, tails);
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        for (int i = 0; i < 16; i++)
            sums[i] += tails[i];
        Finish(a, row0, count, xr, TX.N, sums, cols);
    }

    static void Fp8Avx2<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        int cols = a.W.Cols, blockCols = a.W.BlockCols, blockRows = a.W.BlockRows, scaleCols = a.W.ScaleCols;
        int r1 = row0 + Math.Min(1, count - 1), r2 = row0 + Math.Min(2, count - 1), r3 = row0 + Math.Min(3, count - 1);
        byte* w0 = (byte*)a.W.Data + (long)row0 * cols, w1 = (byte*)a.W.Data + (long)r1 * cols;
        byte* w2 = (byte*)a.W.Data + (long)r2 * cols, w3 = (byte*)a.W.Data + (long)r3 * cols;
        float* scales = (float*)a.W.Scales;
        float* sc0 = scales + (long)(row0 / blockRows) * scaleCols, sc1 = scales + (long)(r1 / blockRows) * scaleCols;
        float* sc2 = scales + (long)(r2 / blockRows) * scaleCols, sc3 = scales + (long)(r3 / blockRows) * scaleCols;
        float* x0 = a.X + xr * a.XStride, x1 = x0 + a.XStride, x2 = x1 + a.XStride, x3 = x2 + a.XStride;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        float* tails = stackalloc float[16];
        new Span<float>(tails, 16).Clear();
        for (int b = 0; b < scaleCols; b++)
        {
            int c = b * blockCols, end = Math.Min(c + blockCols, cols);
            // the scales times 2^120: exact unless it overflows (a scale of 2^8 or more, or not finite): then the scalar decode
            float s0 = sc0[b] * TwoPow120, s1 = sc1[b] * TwoPow120, s2 = sc2[b] * TwoPow120, s3 = sc3[b] * TwoPow120;
            if (!(float.IsFinite(s0) && float.IsFinite(s1) && float.IsFinite(s2) && float.IsFinite(s3)))
            {
                BlockTail(a, row0, count, xr, TX.N, c, end, tails);
                continue;
            }
            var f0 = Vector256.Create(s0);
            var f1 = Vector256.Create(s1);
            var f2 = Vector256.Create(s2);
            var f3 = Vector256.Create(s3);
            for (; c <= end - 8; c += 8)
            {
                Vector256<float> v1 = default, v2 = default, v3 = default;
                var v0 = Vector256.Load(x0 + c);
                if (TX.N > 1) v1 = Vector256.Load(x1 + c);
                if (TX.N > 2) v2 = Vector256.Load(x2 + c);
                if (TX.N > 3) v3 = Vector256.Load(x3 + c);

                var wv = DecodeFp8(w0 + c, f0);
                a00 = Fma.MultiplyAdd(wv, v0, a00);
                if (TX.N > 1) a01 = Fma.MultiplyAdd(wv, v1, a01);
                if (TX.N > 2) a02 = Fma.MultiplyAdd(wv, v2, a02);
                if (TX.N > 3) a03 = Fma.MultiplyAdd(wv, v3, a03);
                wv = DecodeFp8(w1 + c, f1);
                a10 = Fma.MultiplyAdd(wv, v0, a10);
                if (TX.N > 1) a11 = Fma.MultiplyAdd(wv, v1, a11);
                if (TX.N > 2) a12 = Fma.MultiplyAdd(wv, v2, a12);
                if (TX.N > 3) a13 = Fma.MultiplyAdd(wv, v3, a13);
                wv = DecodeFp8(w2 + c, f2);
                a20 = Fma.MultiplyAdd(wv, v0, a20);
                if (TX.N > 1) a21 = Fma.MultiplyAdd(wv, v1, a21);
                if (TX.N > 2) a22 = Fma.MultiplyAdd(wv, v2, a22);
                if (TX.N > 3) a23 = Fma.MultiplyAdd(wv, v3, a23);
                wv = DecodeFp8(w3 + c, f3);
                a30 = Fma.MultiplyAdd(wv, v0, a30);
                if (TX.N > 1) a31 = Fma.MultiplyAdd(wv, v1, a31);
                if (TX.N > 2) a32 = Fma.MultiplyAdd(wv, v2, a32);
                if (TX.N > 3) a33 = Fma.MultiplyAdd(wv, v3, a33);
            }
            if (c < end)
                BlockTail(a, row0, count, xr, TX.N, c, end, tails);
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        for (int i = 0; i < 16; i++)
            sums[i] += tails[i];
        Finish(a, row0, count, xr, TX.N, sums, cols);
    }

    /// <summary>tails[k * 4 + r] += the columns [from, end) of weight row row0 + k times x row xr + r, in order (scalar decode).</summary>
    static void BlockTail(in GemvArgs a, int row0, int count, int xr, int nx, int from, int end, float* tails)
    {
        for (int k = 0; k < count; k++)
        {
            for (int r = 0; r < nx; r++)
            {
                float* xv = a.X + (xr + r) * a.XStride;
                float s = tails[k * 4 + r];
                for (int c = from; c < end; c++)
                    s += xv[c] * Weight(a.W, row0 + k, c);
                tails[k * 4 + r] = s;
            }
        }
    }
}
