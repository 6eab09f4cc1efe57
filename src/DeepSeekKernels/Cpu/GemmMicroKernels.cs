using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// <see cref="CpuGemm"/>'s register-blocked micro-kernels, one per ISA level: an MR x NR tile of y held in vector
/// accumulators, <c>c[r * cStride + j] (+)= sum_k xp[k * MR + r] * wp[k * NR + j] (+ bias[j])</c> for r &lt; MR, j &lt; NR,
/// over kc steps. x comes packed [kc][MR] (one k's MR rows contiguous, each broadcast), the weights packed [kc][NR]
/// (<see cref="WeightPanelDecode"/>, loaded as NR / lanes vectors), so each step is NR / lanes loads, MR broadcasts and
/// MR * NR / lanes fused multiply-adds. <c>accumulate</c> adds the tile to what c holds (a later block of k), bias (NR
/// floats, or null) is added after the sum. The sums run k in order per element, one FMA each.
/// </summary>
internal static unsafe class GemmMicroKernels
{
    /// <summary>Avx512F: a 12 x 32 tile in 24 zmm accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Avx512(float* xp, float* wp, int kc, float* c, long cStride, bool accumulate, float* bias)
    {
        var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
        var c1_0 = Vector512<float>.Zero; var c1_1 = Vector512<float>.Zero;
        var c2_0 = Vector512<float>.Zero; var c2_1 = Vector512<float>.Zero;
        var c3_0 = Vector512<float>.Zero; var c3_1 = Vector512<float>.Zero;
        var c4_0 = Vector512<float>.Zero; var c4_1 = Vector512<float>.Zero;
        var c5_0 = Vector512<float>.Zero; var c5_1 = Vector512<float>.Zero;
        var c6_0 = Vector512<float>.Zero; var c6_1 = Vector512<float>.Zero;
        var c7_0 = Vector512<float>.Zero; var c7_1 = Vector512<float>.Zero;
        var c8_0 = Vector512<float>.Zero; var c8_1 = Vector512<float>.Zero;
        var c9_0 = Vector512<float>.Zero; var c9_1 = Vector512<float>.Zero;
        var c10_0 = Vector512<float>.Zero; var c10_1 = Vector512<float>.Zero;
        var c11_0 = Vector512<float>.Zero; var c11_1 = Vector512<float>.Zero;
        for (int k = 0; k < kc; k++, xp += 12, wp += 32)
        {
            var w0 = Vector512.Load(wp + 0);
            var w1 = Vector512.Load(wp + 16);
            var x0 = Vector512.Create(xp[0]);
            c0_0 = Avx512F.FusedMultiplyAdd(w0, x0, c0_0);
            c0_1 = Avx512F.FusedMultiplyAdd(w1, x0, c0_1);
            var x1 = Vector512.Create(xp[1]);
            c1_0 = Avx512F.FusedMultiplyAdd(w0, x1, c1_0);
            c1_1 = Avx512F.FusedMultiplyAdd(w1, x1, c1_1);
            var x2 = Vector512.Create(xp[2]);
            c2_0 = Avx512F.FusedMultiplyAdd(w0, x2, c2_0);
            c2_1 = Avx512F.FusedMultiplyAdd(w1, x2, c2_1);
            var x3 = Vector512.Create(xp[3]);
            c3_0 = Avx512F.FusedMultiplyAdd(w0, x3, c3_0);
            c3_1 = Avx512F.FusedMultiplyAdd(w1, x3, c3_1);
            var x4 = Vector512.Create(xp[4]);
            c4_0 = Avx512F.FusedMultiplyAdd(w0, x4, c4_0);
            c4_1 = Avx512F.FusedMultiplyAdd(w1, x4, c4_1);
            var x5 = Vector512.Create(xp[5]);
            c5_0 = Avx512F.FusedMultiplyAdd(w0, x5, c5_0);
            c5_1 = Avx512F.FusedMultiplyAdd(w1, x5, c5_1);
            var x6 = Vector512.Create(xp[6]);
            c6_0 = Avx512F.FusedMultiplyAdd(w0, x6, c6_0);
            c6_1 = Avx512F.FusedMultiplyAdd(w1, x6, c6_1);
            var x7 = Vector512.Create(xp[7]);
            c7_0 = Avx512F.FusedMultiplyAdd(w0, x7, c7_0);
            c7_1 = Avx512F.FusedMultiplyAdd(w1, x7, c7_1);
            var x8 = Vector512.Create(xp[8]);
            c8_0 = Avx512F.FusedMultiplyAdd(w0, x8, c8_0);
            c8_1 = Avx512F.FusedMultiplyAdd(w1, x8, c8_1);
            var x9 = Vector512.Create(xp[9]);
            c9_0 = Avx512F.FusedMultiplyAdd(w0, x9, c9_0);
            c9_1 = Avx512F.FusedMultiplyAdd(w1, x9, c9_1);
            var x10 = Vector512.Create(xp[10]);
            c10_0 = Avx512F.FusedMultiplyAdd(w0, x10, c10_0);
            c10_1 = Avx512F.FusedMultiplyAdd(w1, x10, c10_1);
            var x11 = Vector512.Create(xp[11]);
            c11_0 = Avx512F.FusedMultiplyAdd(w0, x11, c11_0);
            c11_1 = Avx512F.FusedMultiplyAdd(w1, x11, c11_1);
        }
        Store(c0_0, c + 0 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c0_1, c + 0 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c1_0, c + 1 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c1_1, c + 1 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c2_0, c + 2 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c2_1, c + 2 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c3_0, c + 3 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c3_1, c + 3 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c4_0, c + 4 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c4_1, c + 4 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c5_0, c + 5 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c5_1, c + 5 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c6_0, c + 6 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c6_1, c + 6 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c7_0, c + 7 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c7_1, c + 7 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c8_0, c + 8 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c8_1, c + 8 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c9_0, c + 9 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c9_1, c + 9 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c10_0, c + 10 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c10_1, c + 10 * cStride + 16, accumulate, bias == null ? null : bias + 16);
        Store(c11_0, c + 11 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c11_1, c + 11 * cStride + 16, accumulate, bias == null ? null : bias + 16);
    }

    static void Store(Vector512<float> value, float* c, bool accumulate, float* bias)
    {
        if (accumulate)
            value += Vector512.Load(c);
        if (bias != null)
            value += Vector512.Load(bias);
        value.Store(c);
    }

    /// <summary>Avx2 + Fma: a 6 x 16 tile in 12 ymm accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Avx2(float* xp, float* wp, int kc, float* c, long cStride, bool accumulate, float* bias)
    {
        var c0_0 = Vector256<float>.Zero; var c0_1 = Vector256<float>.Zero;
        var c1_0 = Vector256<float>.Zero; var c1_1 = Vector256<float>.Zero;
        var c2_0 = Vector256<float>.Zero; var c2_1 = Vector256<float>.Zero;
        var c3_0 = Vector256<float>.Zero; var c3_1 = Vector256<float>.Zero;
        var c4_0 = Vector256<float>.Zero; var c4_1 = Vector256<float>.Zero;
        var c5_0 = Vector256<float>.Zero; var c5_1 = Vector256<float>.Zero;
        for (int k = 0; k < kc; k++, xp += 6, wp += 16)
        {
            var w0 = Vector256.Load(wp + 0);
            var w1 = Vector256.Load(wp + 8);
            var x0 = Vector256.Create(xp[0]);
            c0_0 = Fma.MultiplyAdd(w0, x0, c0_0);
            c0_1 = Fma.MultiplyAdd(w1, x0, c0_1);
            var x1 = Vector256.Create(xp[1]);
            c1_0 = Fma.MultiplyAdd(w0, x1, c1_0);
            c1_1 = Fma.MultiplyAdd(w1, x1, c1_1);
            var x2 = Vector256.Create(xp[2]);
            c2_0 = Fma.MultiplyAdd(w0, x2, c2_0);
            c2_1 = Fma.MultiplyAdd(w1, x2, c2_1);
            var x3 = Vector256.Create(xp[3]);
            c3_0 = Fma.MultiplyAdd(w0, x3, c3_0);
            c3_1 = Fma.MultiplyAdd(w1, x3, c3_1);
            var x4 = Vector256.Create(xp[4]);
            c4_0 = Fma.MultiplyAdd(w0, x4, c4_0);
            c4_1 = Fma.MultiplyAdd(w1, x4, c4_1);
            var x5 = Vector256.Create(xp[5]);
            c5_0 = Fma.MultiplyAdd(w0, x5, c5_0);
            c5_1 = Fma.MultiplyAdd(w1, x5, c5_1);
        }
        Store(c0_0, c + 0 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c0_1, c + 0 * cStride + 8, accumulate, bias == null ? null : bias + 8);
        Store(c1_0, c + 1 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c1_1, c + 1 * cStride + 8, accumulate, bias == null ? null : bias + 8);
        Store(c2_0, c + 2 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c2_1, c + 2 * cStride + 8, accumulate, bias == null ? null : bias + 8);
        Store(c3_0, c + 3 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c3_1, c + 3 * cStride + 8, accumulate, bias == null ? null : bias + 8);
        Store(c4_0, c + 4 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c4_1, c + 4 * cStride + 8, accumulate, bias == null ? null : bias + 8);
        Store(c5_0, c + 5 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c5_1, c + 5 * cStride + 8, accumulate, bias == null ? null : bias + 8);
    }

    static void Store(Vector256<float> value, float* c, bool accumulate, float* bias)
    {
        if (accumulate)
            value += Vector256.Load(c);
        if (bias != null)
            value += Vector256.Load(bias);
        value.Store(c);
    }

    /// <summary>Any CPU: a 4 x 8 tile in 8 Vector128 accumulators (hardware FMA where there is one, else an exact software fused multiply-add).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Portable(float* xp, float* wp, int kc, float* c, long cStride, bool accumulate, float* bias)
    {
        var c0_0 = Vector128<float>.Zero; var c0_1 = Vector128<float>.Zero;
        var c1_0 = Vector128<float>.Zero; var c1_1 = Vector128<float>.Zero;
        var c2_0 = Vector128<float>.Zero; var c2_1 = Vector128<float>.Zero;
        var c3_0 = Vector128<float>.Zero; var c3_1 = Vector128<float>.Zero;
        for (int k = 0; k < kc; k++, xp += 4, wp += 8)
        {
            var w0 = Vector128.Load(wp + 0);
            var w1 = Vector128.Load(wp + 4);
            var x0 = Vector128.Create(xp[0]);
            c0_0 = Vector128.FusedMultiplyAdd(w0, x0, c0_0);
            c0_1 = Vector128.FusedMultiplyAdd(w1, x0, c0_1);
            var x1 = Vector128.Create(xp[1]);
            c1_0 = Vector128.FusedMultiplyAdd(w0, x1, c1_0);
            c1_1 = Vector128.FusedMultiplyAdd(w1, x1, c1_1);
            var x2 = Vector128.Create(xp[2]);
            c2_0 = Vector128.FusedMultiplyAdd(w0, x2, c2_0);
            c2_1 = Vector128.FusedMultiplyAdd(w1, x2, c2_1);
            var x3 = Vector128.Create(xp[3]);
            c3_0 = Vector128.FusedMultiplyAdd(w0, x3, c3_0);
            c3_1 = Vector128.FusedMultiplyAdd(w1, x3, c3_1);
        }
        Store(c0_0, c + 0 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c0_1, c + 0 * cStride + 4, accumulate, bias == null ? null : bias + 4);
        Store(c1_0, c + 1 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c1_1, c + 1 * cStride + 4, accumulate, bias == null ? null : bias + 4);
        Store(c2_0, c + 2 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c2_1, c + 2 * cStride + 4, accumulate, bias == null ? null : bias + 4);
        Store(c3_0, c + 3 * cStride + 0, accumulate, bias == null ? null : bias + 0);
        Store(c3_1, c + 3 * cStride + 4, accumulate, bias == null ? null : bias + 4);
    }

    static void Store(Vector128<float> value, float* c, bool accumulate, float* bias)
    {
        if (accumulate)
            value += Vector128.Load(c);
        if (bias != null)
            value += Vector128.Load(bias);
        value.Store(c);
    }
}
