using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

// float32 weights: loaded as they lie, against x in column order; four weight rows share each x load.
internal static unsafe partial class CpuGemv
{
    static void F32Avx512<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        int cols = a.W.Cols;
        float* w = (float*)a.W.Data + (long)row0 * cols;
        float* w0 = w, w1 = w + (long)Math.Min(1, count - 1) * cols, w2 = w + (long)Math.Min(2, count - 1) * cols, w3 = w + (long)Math.Min(3, count - 1) * cols;
        float* x0 = a.X + xr * a.XStride, x1 = x0 + a.XStride, x2 = x1 + a.XStride, x3 = x2 + a.XStride;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        int c = 0;
        for (; c <= cols - 16; c += 16)
        {
            Vector512<float> v1 = default, v2 = default, v3 = default;
            var v0 = Vector512.Load(x0 + c);
            if (TX.N > 1) v1 = Vector512.Load(x1 + c);
            if (TX.N > 2) v2 = Vector512.Load(x2 + c);
            if (TX.N > 3) v3 = Vector512.Load(x3 + c);

            var wv = Vector512.Load(w0 + c);
            a00 = Avx512F.FusedMultiplyAdd(wv, v0, a00);
            if (TX.N > 1) a01 = Avx512F.FusedMultiplyAdd(wv, v1, a01);
            if (TX.N > 2) a02 = Avx512F.FusedMultiplyAdd(wv, v2, a02);
            if (TX.N > 3) a03 = Avx512F.FusedMultiplyAdd(wv, v3, a03);
            wv = Vector512.Load(w1 + c);
            a10 = Avx512F.FusedMultiplyAdd(wv, v0, a10);
            if (TX.N > 1) a11 = Avx512F.FusedMultiplyAdd(wv, v1, a11);
            if (TX.N > 2) a12 = Avx512F.FusedMultiplyAdd(wv, v2, a12);
            if (TX.N > 3) a13 = Avx512F.FusedMultiplyAdd(wv, v3, a13);
            wv = Vector512.Load(w2 + c);
            a20 = Avx512F.FusedMultiplyAdd(wv, v0, a20);
            if (TX.N > 1) a21 = Avx512F.FusedMultiplyAdd(wv, v1, a21);
            if (TX.N > 2) a22 = Avx512F.FusedMultiplyAdd(wv, v2, a22);
            if (TX.N > 3) a23 = Avx512F.FusedMultiplyAdd(wv, v3, a23);
            wv = Vector512.Load(w3 + c);
            a30 = Avx512F.FusedMultiplyAdd(wv, v0, a30);
            if (TX.N > 1) a31 = Avx512F.FusedMultiplyAdd(wv, v1, a31);
            if (TX.N > 2) a32 = Avx512F.FusedMultiplyAdd(wv, v2, a32);
            if (TX.N > 3) a33 = Avx512F.FusedMultiplyAdd(wv, v3, a33);
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        Finish(a, row0, count, xr, TX.N, sums, c);
    }

    static void F32Avx2<TX>(in GemvArgs a, int row0, int count, int xr) where TX : struct, IXCount
    {
        int cols = a.W.Cols;
        float* w = (float*)a.W.Data + (long)row0 * cols;
        float* w0 = w, w1 = w + (long)Math.Min(1, count - 1) * cols, w2 = w + (long)Math.Min(2, count - 1) * cols, w3 = w + (long)Math.Min(3, count - 1) * cols;
        float* x0 = a.X + xr * a.XStride, x1 = x0 + a.XStride, x2 = x1 + a.XStride, x3 = x2 + a.XStride;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        int c = 0;
        for (; c <= cols - 8; c += 8)
        {
            Vector256<float> v1 = default, v2 = default, v3 = default;
            var v0 = Vector256.Load(x0 + c);
            if (TX.N > 1) v1 = Vector256.Load(x1 + c);
            if (TX.N > 2) v2 = Vector256.Load(x2 + c);
            if (TX.N > 3) v3 = Vector256.Load(x3 + c);

            var wv = Vector256.Load(w0 + c);
            a00 = Fma.MultiplyAdd(wv, v0, a00);
            if (TX.N > 1) a01 = Fma.MultiplyAdd(wv, v1, a01);
            if (TX.N > 2) a02 = Fma.MultiplyAdd(wv, v2, a02);
            if (TX.N > 3) a03 = Fma.MultiplyAdd(wv, v3, a03);
            wv = Vector256.Load(w1 + c);
            a10 = Fma.MultiplyAdd(wv, v0, a10);
            if (TX.N > 1) a11 = Fma.MultiplyAdd(wv, v1, a11);
            if (TX.N > 2) a12 = Fma.MultiplyAdd(wv, v2, a12);
            if (TX.N > 3) a13 = Fma.MultiplyAdd(wv, v3, a13);
            wv = Vector256.Load(w2 + c);
            a20 = Fma.MultiplyAdd(wv, v0, a20);
            if (TX.N > 1) a21 = Fma.MultiplyAdd(wv, v1, a21);
            if (TX.N > 2) a22 = Fma.MultiplyAdd(wv, v2, a22);
            if (TX.N > 3) a23 = Fma.MultiplyAdd(wv, v3, a23);
            wv = Vector256.Load(w3 + c);
            a30 = Fma.MultiplyAdd(wv, v0, a30);
            if (TX.N > 1) a31 = Fma.MultiplyAdd(wv, v1, a31);
            if (TX.N > 2) a32 = Fma.MultiplyAdd(wv, v2, a32);
            if (TX.N > 3) a33 = Fma.MultiplyAdd(wv, v3, a33);
        }
        float* sums = stackalloc float[16];
        Sums(sums, TX.N, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        Finish(a, row0, count, xr, TX.N, sums, c);
    }
}
