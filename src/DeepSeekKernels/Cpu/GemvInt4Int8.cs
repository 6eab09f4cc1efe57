using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

// INT4 weights against int8 activations (CpuInt4Dot.Int8): each x row quantised per weight group to int8 and split into
// even and odd columns ([even half | odd half], as the float split), so weight byte j (low nibble: column 2j, high nibble:
// column 2j + 1) meets q[j] and q[half + j]. Per 64 (AVX-512) or 32 (AVX2) weight bytes: the nibbles masked out as bytes,
// two vpmaddubsw (unsigned codes 0..15 times signed int8, adjacent pairs summed to int16: at most 2 * 15 * 127 = 3810), one
// vpaddw (at most 7620), one vpmaddwd with ones (int32), added to the group's integer sum; per group one conversion to float32
// and one fused multiply-add by scale * d. The zero point's part, zero * d * scale * sum(q), is a scalar per group.
internal static unsafe partial class CpuGemv
{
    /// <summary>
    /// Quantises x rows [rows, cols] per group of <paramref name="groupSize"/> columns to int8 split into even and odd columns
    /// (row r at q + r * cols: [q of columns 0, 2, .. | q of columns 1, 3, ..]), with each group's step d (max|x| / 127; 0
    /// for an all-zero group) and sum of q, [rows, cols / groupSize] each.
    /// </summary>
    internal static void QuantizeInt8Split(float* x, long xStride, int rows, int cols, int groupSize, sbyte* q, float* d, int* sums,
        CpuIsaLevel isa)
    {
        int half = cols / 2, groups = cols / groupSize, gh = groupSize / 2;
        var scratch = t_int8Split ??= new float[4096];
        if (scratch.Length < cols)
            scratch = t_int8Split = new float[cols];
        fixed (float* s = scratch)
        {
            for (int r = 0; r < rows; r++)
            {
                SplitEvenOdd(x + r * xStride, s, half);
                sbyte* qr = q + (long)r * cols;
                for (int g = 0; g < groups; g++)
                {
                    float* e = s + g * gh, o = s + half + g * gh;
                    float max = isa != CpuIsaLevel.Portable && gh % 8 == 0 ? MaxAbs256(e, o, gh) : MaxAbsScalar(e, o, gh);
                    float inv = max > 0 ? 127f / max : 0f;
                    d[(long)r * groups + g] = max / 127f;
                    sums[(long)r * groups + g] = isa != CpuIsaLevel.Portable && gh % 16 == 0
                        ? Quantize256(e, qr + g * gh, gh, inv) + Quantize256(o, qr + half + g * gh, gh, inv)
                        : QuantizeScalar(e, qr + g * gh, gh, inv) + QuantizeScalar(o, qr + half + g * gh, gh, inv);
                }
            }
        }
    }

    [ThreadStatic]
    static float[]? t_int8Split;

    static float MaxAbsScalar(float* e, float* o, int n)
    {
        float max = 0;
        for (int i = 0; i < n; i++)
            max = MathF.Max(max, MathF.Max(MathF.Abs(e[i]), MathF.Abs(o[i])));
        return max;
    }

    static float MaxAbs256(float* e, float* o, int n)
    {
        var max = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 8)
            max = Vector256.Max(max, Vector256.Max(Vector256.Abs(Vector256.Load(e + i)), Vector256.Abs(Vector256.Load(o + i))));
        float m = 0;
        for (int k = 0; k < 8; k++)
            m = MathF.Max(m, max[k]);
        return m;
    }

    /// <summary>q[i] = round-to-even(v[i] * inv), clamped to [-127, 127]; returns the sum of q.</summary>
    static int QuantizeScalar(float* v, sbyte* q, int n, float inv)
    {
        int sum = 0;
        for (int i = 0; i < n; i++)
        {
            int k = (int)Math.Clamp(MathF.Round(v[i] * inv, MidpointRounding.ToEven), -127f, 127f);
            q[i] = (sbyte)k;
            sum += k;
        }
        return sum;
    }

    /// <summary>As <see cref="QuantizeScalar"/>, 16 at a time (cvtps2dq rounds to nearest even, as MathF.Round above).</summary>
    static int Quantize256(float* v, sbyte* q, int n, float inv)
    {
        var scale = Vector256.Create(inv);
        var lo = Vector256.Create(-127);
        var hi = Vector256.Create(127);
        var total = Vector256<int>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            var a = Vector256.Min(Vector256.Max(Avx.ConvertToVector256Int32(Vector256.Load(v + i) * scale), lo), hi);
            var b = Vector256.Min(Vector256.Max(Avx.ConvertToVector256Int32(Vector256.Load(v + i + 8) * scale), lo), hi);
            total += a + b;
            Vector128.Store(Vector256.Narrow(Vector256.Narrow(a, b), Vector256<short>.Zero).GetLower(), q + i);
        }
        return Vector256.Sum(total);
    }

    /// <summary>The int8 form of one call's x rows.</summary>
    readonly struct Int8Rows(sbyte* q, float* d, int* sums)
    {
        /// <summary>[rows, cols]: row r's even columns, then its odd columns.</summary>
        public readonly sbyte* Q = q;
        /// <summary>[rows, groups]: each group's step.</summary>
        public readonly float* D = d;
        /// <summary>[rows, groups]: each group's sum of q.</summary>
        public readonly int* Sums = sums;
    }

    /// <summary>Whether the SIMD kernels take this group size at this level (whole vectors of weight bytes per group).</summary>
    static bool Int8Vectorised(int groupSize, CpuIsaLevel isa) => isa switch
    {
        CpuIsaLevel.Avx512 => groupSize % 128 == 0,
        CpuIsaLevel.Avx2 => groupSize % 64 == 0,
        _ => false,
    };

    /// <summary>Weight rows [first, end) against every x row, int8 activations: four weight rows at a time, one x row per pass.</summary>
    static void RunGroupsInt8(in GemvArgs a, int first, int end)
    {
        bool vector = Int8Vectorised(a.W.GroupSize, a.Isa);
        for (int row = first; row < end; row += GroupRows)
        {
            int count = Math.Min(GroupRows, end - row);
            for (int xr = 0; xr < a.Rows; xr++)
            {
                if (!vector)
                    Int4Int8Scalar(a, row, count, xr);
                else if (a.Isa == CpuIsaLevel.Avx512)
                    Int4Int8Vector<Int8Lanes512, Vector512<int>, Vector512<float>>(a, row, count, xr);
                else
                    Int4Int8Vector<Int8Lanes256, Vector256<int>, Vector256<float>>(a, row, count, xr);
            }
        }
    }

    /// <summary>Sum over groups of scale * d * (dot - zero * sum(q)), every term in order: the portable path and odd group sizes.</summary>
    static void Int4Int8Scalar(in GemvArgs a, int row0, int count, int xr)
    {
        int cols = a.W.Cols, half = cols / 2, gh = a.W.GroupSize / 2, groups = a.W.GroupsPerRow;
        sbyte* q = a.Int8.Q + (long)xr * cols;
        float* d = a.Int8.D + (long)xr * groups;
        int* qsum = a.Int8.Sums + (long)xr * groups;
        float* sums = stackalloc float[16];
        for (int k = 0; k < count; k++)
        {
            byte* w = (byte*)a.W.Data + (long)(row0 + k) * half;
            ushort* scales = (ushort*)a.W.Scales + (long)(row0 + k) * groups, zeros = (ushort*)a.W.Zeros + (long)(row0 + k) * groups;
            float y = 0;
            for (int g = 0; g < groups; g++)
            {
                int dot = 0;
                for (int j = g * gh; j < (g + 1) * gh; j++)
                    dot += (w[j] & 0xF) * q[j] + (w[j] >> 4) * q[half + j];
                float s = Widen(scales[g]) * d[g];
                y += s * dot - s * Widen(zeros[g]) * qsum[g];
            }
            sums[k * 4] = y;
        }
        Finish(a, row0, count, xr, 1, sums, cols);
    }

    /// <summary>Four weight rows against one x row, a group at a time, with the vectors of <typeparamref name="TL"/>.</summary>
    static void Int4Int8Vector<TL, TI, TF>(in GemvArgs a, int row0, int count, int xr)
        where TL : struct, IInt8Lanes<TI, TF> where TI : struct where TF : struct
    {
        int cols = a.W.Cols, half = cols / 2, gh = a.W.GroupSize / 2, groups = a.W.GroupsPerRow;
        int r1 = row0 + Math.Min(1, count - 1), r2 = row0 + Math.Min(2, count - 1), r3 = row0 + Math.Min(3, count - 1);
        byte* w0 = (byte*)a.W.Data + (long)row0 * half, w1 = (byte*)a.W.Data + (long)r1 * half;
        byte* w2 = (byte*)a.W.Data + (long)r2 * half, w3 = (byte*)a.W.Data + (long)r3 * half;
        ushort* scales = (ushort*)a.W.Scales, zeros = (ushort*)a.W.Zeros;
        long g0 = (long)row0 * groups, g1 = (long)r1 * groups, g2 = (long)r2 * groups, g3 = (long)r3 * groups;
        sbyte* q = a.Int8.Q + (long)xr * cols;
        float* d = a.Int8.D + (long)xr * groups;
        int* qsum = a.Int8.Sums + (long)xr * groups;
        TF f0 = default, f1 = default, f2 = default, f3 = default;
        float z0 = 0, z1 = 0, z2 = 0, z3 = 0;
        for (int g = 0; g < groups; g++)
        {
            PrefetchRows(w0, w1, w2, w3, (long)g * gh + Int4PrefetchAhead);
            TI i0 = default, i1 = default, i2 = default, i3 = default;
            for (int j = g * gh, end = j + gh; j < end; j += TL.Bytes)
            {
                sbyte* even = q + j, odd = q + half + j;
                i0 = TL.Dot(w0 + j, even, odd, i0);
                i1 = TL.Dot(w1 + j, even, odd, i1);
                i2 = TL.Dot(w2 + j, even, odd, i2);
                i3 = TL.Dot(w3 + j, even, odd, i3);
            }
            float dg = d[g], sg = qsum[g];
            float s0 = Widen(scales[g0 + g]) * dg, s1 = Widen(scales[g1 + g]) * dg, s2 = Widen(scales[g2 + g]) * dg, s3 = Widen(scales[g3 + g]) * dg;
            f0 = TL.ScaleAdd(i0, s0, f0);
            f1 = TL.ScaleAdd(i1, s1, f1);
            f2 = TL.ScaleAdd(i2, s2, f2);
            f3 = TL.ScaleAdd(i3, s3, f3);
            z0 += s0 * Widen(zeros[g0 + g]) * sg;
            z1 += s1 * Widen(zeros[g1 + g]) * sg;
            z2 += s2 * Widen(zeros[g2 + g]) * sg;
            z3 += s3 * Widen(zeros[g3 + g]) * sg;
        }
        float* sums = stackalloc float[16];
        sums[0] = TL.Sum(f0) - z0;
        sums[4] = TL.Sum(f1) - z1;
        sums[8] = TL.Sum(f2) - z2;
        sums[12] = TL.Sum(f3) - z3;
        Finish(a, row0, count, xr, 1, sums, cols);
    }
}

/// <summary>The int8 dot of the INT4 x int8 GEMV over one vector width (JIT-specialised per width, as CpuPagedAttention's ILanes).</summary>
internal unsafe interface IInt8Lanes<TI, TF> where TI : struct where TF : struct
{
    /// <summary>Weight bytes (two codes each) per step.</summary>
    static abstract int Bytes { get; }

    /// <summary>
    /// acc + the products of Bytes weight bytes at <paramref name="w"/> (low nibbles against <paramref name="even"/>, high
    /// against <paramref name="odd"/>): two vpmaddubsw, one add, one vpmaddwd with ones; int32 lanes.
    /// </summary>
    static abstract TI Dot(byte* w, sbyte* even, sbyte* odd, TI acc);

    /// <summary>f + (float)i * s, fused.</summary>
    static abstract TF ScaleAdd(TI i, float s, TF f);

    static abstract float Sum(TF f);
}

/// <summary>AVX-512BW: 64 weight bytes a step.</summary>
internal unsafe struct Int8Lanes512 : IInt8Lanes<Vector512<int>, Vector512<float>>
{
    public static int Bytes => 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Dot(byte* w, sbyte* even, sbyte* odd, Vector512<int> acc)
    {
        var codes = Vector512.Load(w);
        var nibble = Vector512.Create((byte)0x0F);
        var low = codes & nibble;
        var high = (codes.AsUInt16() >>> 4).AsByte() & nibble;
        var pairs = Avx512BW.MultiplyAddAdjacent(low, Vector512.Load(even)) + Avx512BW.MultiplyAddAdjacent(high, Vector512.Load(odd));
        return acc + Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ScaleAdd(Vector512<int> i, float s, Vector512<float> f) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(i), Vector512.Create(s), f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> f) => Vector512.Sum(f);
}

/// <summary>AVX2: 32 weight bytes a step.</summary>
internal unsafe struct Int8Lanes256 : IInt8Lanes<Vector256<int>, Vector256<float>>
{
    public static int Bytes => 32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(byte* w, sbyte* even, sbyte* odd, Vector256<int> acc)
    {
        var codes = Vector256.Load(w);
        var nibble = Vector256.Create((byte)0x0F);
        var low = codes & nibble;
        var high = (codes.AsUInt16() >>> 4).AsByte() & nibble;
        var pairs = Avx2.MultiplyAddAdjacent(low, Vector256.Load(even)) + Avx2.MultiplyAddAdjacent(high, Vector256.Load(odd));
        return acc + Avx2.MultiplyAddAdjacent(pairs, Vector256<short>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ScaleAdd(Vector256<int> i, float s, Vector256<float> f) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(i), Vector256.Create(s), f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> f) => Vector256.Sum(f);
}

