using System.Diagnostics;
using System.Runtime.CompilerServices;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// GEMV for decode on the CPU: <c>y[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o])</c> for a few float32 activation rows and
/// one matrix of a <see cref="WeightData"/> in any of its forms (f32, bf16, FP8 e4m3 with float32 block scales, INT4
/// group-wise with bf16 scales and zero points), dequantised in registers to exactly the value
/// <see cref="WeightData.DecodeRows"/> gives. Memory-bound: each weight byte is read from memory once per call, and the
/// work is split over the pool's threads in contiguous blocks of output rows.
/// <para>
/// Shape of the work: weight rows go four at a time (a group); for each group the x rows go up to four at a time through
/// one pass over the group's columns, so the four rows' weights are decoded once per pass and shared by up to four x
/// rows (16 accumulators); with more than four x rows the group's weights (a few KiB) are read again from L1/L2.
/// bf16 and INT4 weights meet x split once per call into its even and odd columns (a 32-bit lane of bf16 weights holds
/// columns 2j and 2j + 1; an INT4 byte holds columns 2j (low nibble) and 2j + 1 (high nibble)).
/// </para>
/// <para>
/// Summation order (differs from the reference; within float32 rounding of the exact dot product): per (weight row, x
/// row), one vector accumulator of fused multiply-adds over the vector steps in column order (bf16/INT4: the even
/// columns' product, then the odd columns', per step), its lanes summed, then the columns the vectors did not cover
/// (tails, and for FP8 each block's tail) added in column order, then the bias.
/// </para>
/// </summary>
internal static unsafe partial class CpuGemv
{
    /// <summary>Weight rows per group (one pass shares each x load among them).</summary>
    const int GroupRows = 4;

    /// <summary>Weight bytes below which one thread does the whole product (a pool call costs a few µs).</summary>
    const long ParallelBytes = 128 << 10;

    /// <summary>Groups per task at least: contiguous ranges of weight rows keep the hardware prefetcher streaming.</summary>
    const int TasksPerThread = 2;

    [ThreadStatic]
    static Job? t_job;

    [ThreadStatic]
    static float[]? t_split;

    [ThreadStatic]
    static float[]? t_row;

    [ThreadStatic]
    static sbyte[]? t_int8;

    [ThreadStatic]
    static float[]? t_int8Steps;

    [ThreadStatic]
    static int[]? t_int8Sums;

    /// <summary>
    /// y[r * yStride + o] = sum_c x[r * xStride + c] * W[o, c] (+ bias[o]) for r in [0, rows), o in [0, W.Rows), over the
    /// threads of <paramref name="pool"/>. <paramref name="w"/> is one matrix (Count 1); <paramref name="bias"/> may be
    /// null; strides are in elements. Writes exactly those outputs.
    /// </summary>
    /// <remarks>
    /// With <paramref name="int4Dot"/> <see cref="CpuInt4Dot.Int8"/>, INT4 weights meet x quantised per group to int8
    /// (<see cref="QuantizeInt8Split"/>) in integer dot products; other weights ignore it.
    /// </remarks>
    internal static void Run(CpuThreadPool pool, in WeightData w, float* x, long xStride, int rows, float* bias, float* y, long yStride,
        CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        Debug.Assert(w.Count == 1, "CpuGemv.Run takes one matrix");
        Debug.Assert(rows >= 0 && xStride >= w.Cols && yStride >= w.Rows);
        if (rows == 0 || w.Rows == 0)
            return;
        var isa = CpuIsa.Level;

        // INT4 with int8 activations: x quantised per group and split into even and odd columns (QuantizeInt8Split);
        // otherwise, for bf16 and INT4, x split into float even and odd columns: [rows, even half | odd half]
        float* split = null;
        long splitStride = w.Cols & ~1;
        Int8Rows int8 = default;
        if (w.Type == ElementType.Int4 && int4Dot == CpuInt4Dot.Int8)
        {
            long codes = (long)rows * w.Cols, steps = (long)rows * w.GroupsPerRow;
            if (t_int8 == null || t_int8.Length < codes)
                t_int8 = GC.AllocateUninitializedArray<sbyte>((int)Math.Max(codes, 4096), pinned: true);
            if (t_int8Steps == null || t_int8Steps.Length < steps)
                t_int8Steps = GC.AllocateUninitializedArray<float>((int)Math.Max(steps, 256), pinned: true);
            if (t_int8Sums == null || t_int8Sums.Length < steps)
                t_int8Sums = GC.AllocateUninitializedArray<int>((int)Math.Max(steps, 256), pinned: true);
            int8 = new Int8Rows((sbyte*)Unsafe.AsPointer(ref t_int8[0]), (float*)Unsafe.AsPointer(ref t_int8Steps[0]),
                (int*)Unsafe.AsPointer(ref t_int8Sums[0]));
            QuantizeInt8Split(x, xStride, rows, w.Cols, w.GroupSize, int8.Q, int8.D, int8.Sums, isa);
        }
        else if (w.Type is ElementType.BF16 or ElementType.Int4 && isa != CpuIsaLevel.Portable && splitStride > 0)
        {
            long need = rows * splitStride;
            if (t_split == null || t_split.Length < need)
                t_split = GC.AllocateUninitializedArray<float>((int)Math.Max(need, 4096), pinned: true);
            split = (float*)Unsafe.AsPointer(ref t_split[0]);
            int half = w.Cols / 2;
            for (int r = 0; r < rows; r++)
                SplitEvenOdd(x + r * xStride, split + r * splitStride, half);
        }
        var args = new GemvArgs(w, x, xStride, rows, bias, y, yStride, split, splitStride, isa, int8);
        int groups = (w.Rows + GroupRows - 1) / GroupRows;
        long bytes = WeightBytes(w);
        int tasks = bytes < ParallelBytes || pool.Threads == 1 ? 1 : Math.Min(groups, pool.Threads * TasksPerThread);
        if (tasks == 1)
        {
            RunGroups(args, 0, w.Rows);
            return;
        }
        var job = t_job ??= new Job();
        job.Args = args;
        job.Tasks = tasks;
        job.Groups = groups;
        pool.For(tasks, job.Body);
        job.Args = default;
    }

    /// <summary>The caller's reusable pool body (no allocation per call): task i runs a contiguous, balanced range of groups.</summary>
    sealed class Job
    {
        public GemvArgs Args;
        public int Tasks, Groups;
        public readonly Action<int> Body;

        public Job() => Body = Task;

        void Task(int i)
        {
            int first = (int)((long)Groups * i / Tasks), end = (int)((long)Groups * (i + 1) / Tasks);
            RunGroups(Args, first * GroupRows, Math.Min(end * GroupRows, Args.W.Rows));
        }
    }

    static long WeightBytes(in WeightData w) => w.Type switch
    {
        ElementType.F32 => 4L * w.Rows * w.Cols,
        ElementType.BF16 => 2L * w.Rows * w.Cols,
        ElementType.Int4 => (long)w.Rows * (w.Cols / 2),
        _ => (long)w.Rows * w.Cols,
    };

    /// <summary>Weight rows [first, end) against every x row.</summary>
    static void RunGroups(in GemvArgs a, int first, int end)
    {
        if (a.Int8.Q != null)
        {
            RunGroupsInt8(a, first, end);
            return;
        }
        if (a.Isa == CpuIsaLevel.Portable)
        {
            Portable(a, first, end);
            return;
        }
        var k1 = Kernel<X1>(a);
        var k2 = Kernel<X2>(a);
        var k3 = Kernel<X3>(a);
        var k4 = Kernel<X4>(a);
        for (int row = first; row < end; row += GroupRows)
        {
            int count = Math.Min(GroupRows, end - row);
            int xr = 0;
            for (; xr + 4 <= a.Rows; xr += 4)
                k4(a, row, count, xr);
            switch (a.Rows - xr)
            {
                case 1: k1(a, row, count, xr); break;
                case 2: k2(a, row, count, xr); break;
                case 3: k3(a, row, count, xr); break;
            }
        }
    }

    /// <summary>The kernel for this form and ISA level at TX x rows.</summary>
    static delegate*<in GemvArgs, int, int, int, void> Kernel<TX>(in GemvArgs a) where TX : struct, IXCount
    {
        bool avx512 = a.Isa == CpuIsaLevel.Avx512;
        return a.W.Type switch
        {
            ElementType.F32 => avx512 ? &F32Avx512<TX> : &F32Avx2<TX>,
            ElementType.BF16 => avx512 ? &Bf16Avx512<TX> : &Bf16Avx2<TX>,
            ElementType.Fp8E4M3 => avx512 ? &Fp8Avx512<TX> : &Fp8Avx2<TX>,
            ElementType.Int4 => a.W.GroupSize % 32 != 0 ? &Int4Scalar<TX> : avx512 ? &Int4Avx512<TX> : &Int4Avx2<TX>,
            _ => throw new NotSupportedException($"CpuGemv: weights of type {a.W.Type}"),
        };
    }

    /// <summary>The portable path: each weight row decoded to float32 once (a per-thread row), then dotted with every x row in column order.</summary>
    static void Portable(in GemvArgs a, int first, int end)
    {
        int cols = a.W.Cols;
        if (t_row == null || t_row.Length < cols)
            t_row = new float[Math.Max(cols, 1024)];
        fixed (float* row = t_row)
        {
            for (int o = first; o < end; o++)
            {
                for (int c = 0; c < cols; c++)
                    row[c] = Weight(a.W, o, c);
                for (int r = 0; r < a.Rows; r++)
                {
                    float* xr = a.X + r * a.XStride;
                    float s = 0;
                    for (int c = 0; c < cols; c++)
                        s += xr[c] * row[c];
                    if (a.Bias != null)
                        s += a.Bias[o];
                    a.Y[r * a.YStride + o] = s;
                }
            }
        }
    }

    /// <summary>
    /// Writes the outputs of weight rows [row0, row0 + count) and x rows [xr, xr + nx): sums[k * 4 + r] (the vector part)
    /// plus the columns [from, Cols) in order, plus the bias.
    /// </summary>
    static void Finish(in GemvArgs a, int row0, int count, int xr, int nx, float* sums, int from)
    {
        int cols = a.W.Cols;
        for (int k = 0; k < count; k++)
        {
            for (int r = 0; r < nx; r++)
            {
                float* xv = a.X + (xr + r) * a.XStride;
                float s = sums[k * 4 + r];
                for (int c = from; c < cols; c++)
                    s += xv[c] * Weight(a.W, row0 + k, c);
                if (a.Bias != null)
                    s += a.Bias[row0 + k];
                a.Y[(xr + r) * a.YStride + row0 + k] = s;
            }
        }
    }

    /// <summary>W[row, col] dequantised exactly as <see cref="WeightData.DecodeRows"/> (scalar; tails and the portable path).</summary>
    static float Weight(in WeightData w, int row, int col)
    {
        long i = (long)row * w.Cols + col;
        switch (w.Type)
        {
            case ElementType.F32:
                return ((float*)w.Data)[i];
            case ElementType.BF16:
                return Widen(((ushort*)w.Data)[i]);
            case ElementType.Fp8E4M3:
            {
                float scale = ((float*)w.Scales)[(long)(row / w.BlockRows) * w.ScaleCols + col / w.BlockCols];
                return RoundBf16(Float8E4M3.FromBits(((byte*)w.Data)[i]).ToSingle() * scale);
            }
            default:
            {
                int code = (((byte*)w.Data)[(long)row * (w.Cols / 2) + col / 2] >> (col & 1) * 4) & 0xF;
                long g = (long)row * w.GroupsPerRow + col / w.GroupSize;
                float scale = Widen(((ushort*)w.Scales)[g]), zero = Widen(((ushort*)w.Zeros)[g]);
                return RoundBf16((code - zero) * scale);
            }
        }
    }

    /// <summary>A bf16's bits as float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Widen(ushort bf16) => BitConverter.UInt32BitsToSingle((uint)bf16 << 16);

    /// <summary>float32 rounded to nearest even bf16, as float32 (<see cref="BFloat16.RoundToBits"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float RoundBf16(float value) => Widen(BFloat16.RoundToBits(BitConverter.SingleToUInt32Bits(value)));

    /// <summary>destination = [x[0], x[2], .. x[2 half - 2] | x[1], x[3], .. x[2 half - 1]].</summary>
    static void SplitEvenOdd(float* x, float* destination, int half)
    {
        for (int j = 0; j < half; j++)
        {
            destination[j] = x[2 * j];
            destination[half + j] = x[2 * j + 1];
        }
    }

    /// <summary>One call's operands, as the kernels take them.</summary>
    readonly struct GemvArgs(WeightData w, float* x, long xStride, int rows, float* bias, float* y, long yStride, float* split,
        long splitStride, CpuIsaLevel isa, CpuGemv.Int8Rows int8 = default)
    {
        public readonly WeightData W = w;
        public readonly float* X = x;
        public readonly long XStride = xStride;
        public readonly int Rows = rows;
        public readonly float* Bias = bias;
        public readonly float* Y = y;
        public readonly long YStride = yStride;
        /// <summary>x split into even and odd columns (bf16, INT4): row r at Split + r * SplitStride, odd half at + Cols / 2.</summary>
        public readonly float* Split = split;
        public readonly long SplitStride = splitStride;
        public readonly CpuIsaLevel Isa = isa;
        /// <summary>x quantised to int8 per group (INT4 weights with <see cref="CpuInt4Dot.Int8"/>); Q null otherwise.</summary>
        public readonly Int8Rows Int8 = int8;
    }

    /// <summary>How many x rows a kernel instance takes (1 to 4): a constant the JIT folds, so unused accumulators vanish.</summary>
    interface IXCount
    {
        static abstract int N { get; }
    }

    struct X1 : IXCount { public static int N => 1; }
    struct X2 : IXCount { public static int N => 2; }
    struct X3 : IXCount { public static int N => 3; }
    struct X4 : IXCount { public static int N => 4; }
}
