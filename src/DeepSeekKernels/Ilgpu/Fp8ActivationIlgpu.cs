using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// FP8 activations for prefill (W8A8) as ILGPU kernels, with the semantics of <see cref="Reference.Fp8ActivationReference"/>:
/// <list type="bullet">
/// <item><c>QuantizeKernel</c>: one group of one warp per (row, 128-column block); the lanes stride over the block, take the
/// block's amax with a NaN-propagating butterfly, and write the e4m3 codes of x / s (float32 division, then
/// <see cref="Fp8E4M3Saturating"/>: nearest even, saturating at ±448) and the block's scale.</item>
/// <item><c>LinearKernel</c>: one thread per output [i, n], the simple form (no tensor cores, no shared memory): for each
/// 128-wide block j of in features, the block's dot product of the e4m3 values in float32, times xs[i, j] * ws[n / 128, j],
/// summed over j in order, then the bias, then one rounding to the destination's type. Neighbouring threads take
/// neighbouring n of one row, so the row of qx and its scales are shared.</item>
/// <item><c>GroupedLinearKernel</c> (GroupedLinearW8A8, the MoE experts): one group of one warp per (row, warp-width of
/// features); the warp checks the offsets (each in [0, M], then not decreasing: the reference's order, the first bad one
/// reported by group 0 and nothing written), finds the row's expert by a binary search over them (rows outside every
/// expert's range are left alone), and each lane computes one output as <c>LinearKernel</c> does (<c>Output</c>, shared)
/// with that expert's matrix and scales.</item>
/// </list>
/// FP8 travels as raw bytes (ILGPU has no FP8 type). Kernels are compiled on first use, per runtime and activation type.
/// </summary>
internal sealed class Fp8ActivationIlgpu(DeviceRuntime runtime)
{
    const int Block = Ops.Fp8ActivationBlock;

    /// <summary>Shape of one quantisation: x rows <see cref="XStride"/> elements apart, <see cref="Blocks"/> = ceil(Cols / 128).</summary>
    internal readonly record struct QuantizeShape(int Cols, int Blocks, long XStride);

    /// <summary>Shape of one W8A8 product: y [rows, Out] rows <see cref="YStride"/> apart, x [rows, In], Blocks = ceil(In / 128).</summary>
    internal readonly record struct LinearShape(int In, int Out, int Blocks, int ScaleCols, long YStride, int HasBias);

    /// <summary>Shape of one grouped W8A8 product: as <see cref="LinearShape"/>, over M rows and Experts matrices of ScaleRows x ScaleCols scales; Chunks = ceil(Out / warp).</summary>
    internal readonly record struct GroupedShape(int In, int Out, int Blocks, int ScaleRows, int ScaleCols, long YStride, int M, int Experts, int Chunks, int Site);

    readonly ConcurrentDictionary<Type, Delegate> _quantize = new();
    readonly ConcurrentDictionary<Type, Delegate> _linear = new();
    readonly ConcurrentDictionary<Type, Delegate> _grouped = new();

    /// <summary>Enqueues the quantisation of x [m, cols] (f32 or bf16, rows strided) into q [m, cols] and scales [m, ceil(cols / 128)].</summary>
    public void Quantize(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales)
    {
        if (x.ElementType == ElementType.F32)
            Quantize<float>(x, q, scales);
        else
            Quantize<BFloat16>(x, q, scales);
    }

    void Quantize<T>(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales) where T : unmanaged
    {
        int m = (int)x.Dim(0), cols = (int)x.Dim(1), blocks = (cols + Block - 1) / Block;
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<byte>, ArrayView<float>, QuantizeShape>)
            _quantize.GetOrAdd(typeof(T), _ => runtime.Accelerator.LoadKernel(
                Kernel<Action<ArrayView<T>, ArrayView<byte>, ArrayView<float>, QuantizeShape>, T>(nameof(QuantizeKernel))));
        runtime.Bind();
        // one warp per (row, block): its lanes cover the block's 128 columns
        kernel(runtime.Stream, new KernelConfig(checked(m * blocks), runtime.Accelerator.WarpSize), Elements<T>(x), Bytes(q), scales.IlgpuView,
            new QuantizeShape(cols, blocks, x.Stride(0)));
    }

    /// <summary>Enqueues y [m, w.Rows] (f32 or bf16, rows strided) = the W8A8 product of qx [m, w.Cols] with scales xScales and the FP8 weight w.</summary>
    public void Linear(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        if (y.ElementType == ElementType.F32)
            Linear<float>(qx, xScales, w, bias, y);
        else
            Linear<BFloat16>(qx, xScales, w, bias, y);
    }

    void Linear<T>(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) where T : unmanaged
    {
        int m = (int)y.Dim(0);
        var kernel = (Action<AcceleratorStream, Index1D, ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, ArrayView<T>, LinearShape>)
            _linear.GetOrAdd(typeof(T), _ => runtime.Accelerator.LoadAutoGroupedKernel(
                Kernel<Action<Index1D, ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, ArrayView<T>, LinearShape>, T>(nameof(LinearKernel))));
        var shape = new LinearShape(w.Cols, w.Rows, (w.Cols + Block - 1) / Block, w.ScaleCols, y.Stride(0), bias.IsNull ? 0 : 1);
        runtime.Bind();
        kernel(runtime.Stream, checked(m * w.Rows), Bytes(qx), xScales.IlgpuView, Bytes(w.Fp8Data), w.ScaleInv.IlgpuView,
            bias.IsNull ? xScales.IlgpuView : bias.IlgpuView, Elements<T>(y), shape);
    }

    /// <summary>
    /// Enqueues y [m, w.Rows] (f32 or bf16, rows strided) = for each expert e the W8A8 product of qx's rows offsets[e] ..
    /// offsets[e + 1] with matrix e of the FP8 stack w; rows outside the offsets are left alone; bad offsets go to the error word.
    /// </summary>
    public void Grouped(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m)
    {
        if (y.ElementType == ElementType.F32)
            Grouped<float>(qx, xScales, offsets, w, y, m);
        else
            Grouped<BFloat16>(qx, xScales, offsets, w, y, m);
    }

    void Grouped<T>(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) where T : unmanaged
    {
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<byte>, ArrayView<float>, ArrayView<T>, GroupedShape>)
            _grouped.GetOrAdd(typeof(T), _ => runtime.Accelerator.LoadKernel(
                Kernel<Action<ArrayView<byte>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<byte>, ArrayView<float>, ArrayView<T>, GroupedShape>, T>(nameof(GroupedLinearKernel))));
        int warp = runtime.Accelerator.WarpSize, chunks = (w.Rows + warp - 1) / warp;
        var shape = new GroupedShape(w.Cols, w.Rows, (w.Cols + Block - 1) / Block, w.ScaleRows, w.ScaleCols, y.Stride(0), m, w.Count, chunks,
            DeviceErrorSite.GroupedLinearW8A8Offsets.Id);
        runtime.Bind();
        kernel(runtime.Stream, new KernelConfig(checked(m * chunks), warp), Bytes(qx), xScales.IlgpuView, offsets.IlgpuView,
            runtime.Errors.Word.View.IlgpuView, Bytes(w.Fp8Data), w.ScaleInv.IlgpuView, Elements<T>(y), shape);
    }

    /// <summary>Kernel <paramref name="name"/> closed over activation type <typeparamref name="T"/> and its codec, as a delegate of <typeparamref name="TDelegate"/>.</summary>
    static TDelegate Kernel<TDelegate, T>(string name) where TDelegate : Delegate =>
        (TDelegate)typeof(Fp8ActivationIlgpu).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(T), ElementCodecs.CodecFor(typeof(T))).CreateDelegate(typeof(TDelegate));

    /// <summary>The elements of a tensor from its first to its last, as a flat view (the kernel applies the strides).</summary>
    static ArrayView<T> Elements<T>(DeviceTensor t) where T : unmanaged =>
        ((DeviceBuffer<T>)t.Allocation!).IlgpuWhole.SubView(t.Offset, t.LastElement - t.Offset + 1);

    static ArrayView<byte> Bytes(DeviceView<Float8E4M3> view) => view.IlgpuView.AsContiguous().Cast<byte>();

    // grid: one group per (row, block) = Grid.IdxX, as row * Blocks + block (also the index of its scale); group: one warp.
    static void QuantizeKernel<T, TC>(ArrayView<T> x, ArrayView<byte> q, ArrayView<float> scales, QuantizeShape s)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        int task = Grid.IdxX, row = task / s.Blocks, c0 = task % s.Blocks * Block;
        int width = s.Cols - c0 < Block ? s.Cols - c0 : Block;
        long xRow = row * s.XStride + c0, qRow = (long)row * s.Cols + c0;
        float amax = 0f;
        for (int c = Group.IdxX; c < width; c += Group.DimX)
            amax = MaxPropagatingNaN(amax, Abs(codec.Load(x[xRow + c])));
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            amax = MaxPropagatingNaN(amax, Warp.ShuffleXor(amax, mask));
        float scale = amax == 0f ? 1f : amax / Float8E4M3.MaxValue;
        if (Group.IdxX == 0)
            scales[task] = scale;
        for (int c = Group.IdxX; c < width; c += Group.DimX)
            q[qRow + c] = Fp8E4M3Saturating(codec.Load(x[xRow + c]) / scale);
    }

    // one thread per output: index = i * Out + n.
    static void LinearKernel<T, TC>(Index1D index, ArrayView<byte> qx, ArrayView<float> xScales, ArrayView<byte> qw, ArrayView<float> wScales,
        ArrayView<float> bias, ArrayView<T> y, LinearShape s)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        int i = index / s.Out, n = index % s.Out;
        float acc = Output(qx, xScales, qw, wScales, (long)i * s.In, (long)i * s.Blocks, (long)n * s.In, (long)(n / Block) * s.ScaleCols, s.In, s.Blocks);
        if (s.HasBias != 0)
            acc += bias[n];
        y[i * s.YStride + n] = codec.Store(acc);
    }

    /// <summary>
    /// One output of the W8A8 product in float32: for each 128-wide block j of in features, the block's dot product of the e4m3
    /// values of x's row (at xRow, its scales at xScaleRow) and w's row (at wRow, its block row's scales at wScaleRow), times
    /// xs * ws, summed over j in order (the reference's order).
    /// </summary>
    static float Output(ArrayView<byte> qx, ArrayView<float> xScales, ArrayView<byte> qw, ArrayView<float> wScales,
        long xRow, long xScaleRow, long wRow, long wScaleRow, int inFeatures, int blocks)
    {
        float acc = 0f;
        for (int j = 0; j < blocks; j++)
        {
            int k0 = j * Block, k1 = k0 + Block < inFeatures ? k0 + Block : inFeatures;
            float dot = 0f;
            for (int k = k0; k < k1; k++)
                dot += Fp8ToSingle(qx[xRow + k]) * Fp8ToSingle(qw[wRow + k]);
            float scale = xScales[xScaleRow + j] * wScales[wScaleRow + j];
            acc += scale * dot;
        }
        return acc;
    }

    // grid: one group (one warp) per (row r, chunk c of warp-width features) = Grid.IdxX as r * Chunks + c.
    static void GroupedLinearKernel<T, TC>(ArrayView<byte> qx, ArrayView<float> xScales, ArrayView<int> offsets, ArrayView<int> errorWord,
        ArrayView<byte> qw, ArrayView<float> wScales, ArrayView<T> y, GroupedShape s)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        int count = s.Experts + 1;
        int bad = DeviceIndexChecks.FirstOutOfRange(offsets, 0, count, s.M + 1L);
        bool outOfOrder = false;
        if (bad < 0)
        {
            bad = DeviceIndexChecks.FirstDecrease(offsets, count);
            outOfOrder = true;
        }
        if (bad >= 0)
        {
            if (Grid.IdxX == 0)
                DeviceIndexChecks.Report(errorWord, s.Site, bad, offsets[bad], outOfOrder ? count : s.M + 1L, outOfOrder);
            return;
        }
        int r = Grid.IdxX / s.Chunks, n = Grid.IdxX % s.Chunks * Group.DimX + Group.IdxX;
        // the row's expert: the last e with offsets[e] <= r (offsets valid: not decreasing), if r < offsets[e + 1]
        int lo = 0, hi = count; // offsets[lo] <= r < offsets[hi] when in range (offsets[count] is past the end)
        if (r < offsets[0] || n >= s.Out)
            return;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (offsets[mid] <= r) lo = mid; else hi = mid;
        }
        int e = lo;
        if (e >= s.Experts || r >= offsets[e + 1])
            return;
        long matrix = (long)e * s.Out * s.In, scales = (long)e * s.ScaleRows * s.ScaleCols;
        float acc = Output(qx, xScales, qw, wScales, (long)r * s.In, (long)r * s.Blocks, matrix + (long)n * s.In,
            scales + (long)(n / Block) * s.ScaleCols, s.In, s.Blocks);
        y[r * s.YStride + n] = codec.Store(acc);
    }

    static float Abs(float v) => Interop.IntAsFloat(Interop.FloatAsInt(v) & 0x7FFF_FFFFu);

    /// <summary>max(a, b), except that a NaN in either wins (an amax over a block holding a NaN is NaN).</summary>
    static float MaxPropagatingNaN(float a, float b) => float.IsNaN(a) || a > b ? a : b;

    /// <summary>The exact float32 value of e4m3fn code <paramref name="code"/> (S.1111.111 is NaN), from bit operations.</summary>
    internal static float Fp8ToSingle(byte code)
    {
        uint exponent = (uint)(code >> 3) & 0xF, mantissa = code & 7u;
        float magnitude = exponent == 0
            ? (int)mantissa * (1f / 512f) // subnormal: mantissa * 2^-9, exact
            : Interop.IntAsFloat(((exponent + 120) << 23) | (mantissa << 20));
        if ((code & 0x7F) == 0x7F)
            magnitude = float.NaN;
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }

    /// <summary>
    /// The e4m3fn code of <paramref name="value"/>, rounded to nearest even and saturating at ±448 (infinities included); NaN
    /// gives S.1111.111. Integer operations only, so it runs the same in a kernel and on the host: the same codes as
    /// <see cref="Float8E4M3.FromSingleSaturating"/>.
    /// </summary>
    internal static byte Fp8E4M3Saturating(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        uint sign = (bits >> 24) & 0x80u, abs = bits & 0x7FFF_FFFFu;
        uint code;
        if (abs > 0x7F80_0000u)
            code = 0x7F;                                   // NaN
        else if (abs >= 0x43E0_0000u)
            code = 0x7E;                                   // 448 and beyond: saturate
        else if (abs >= 0x3C80_0000u)
            code = RoundShift(abs - (120u << 23), 20);     // normal: exponent rebiased 127 -> 7, 3 of 23 mantissa bits kept
        else
        {
            // below 2^-6: subnormal codes, multiples of 2^-9; a float32 of biased exponent e >= 1 is m24 * 2^(e - 150),
            // so its code is m24 * 2^(e - 141), rounded; below 2^-11 (e < 116) that is 0, and e < 110 keeps the shift under 32
            uint e = abs >> 23;
            code = e < 110 ? 0u : RoundShift((abs & 0x7F_FFFFu) | 0x80_0000u, 141 - (int)e);
        }
        return (byte)(sign | code);
    }

    /// <summary><paramref name="value"/> / 2^shift rounded to nearest, ties to even (1 &lt;= shift &lt;= 31).</summary>
    static uint RoundShift(uint value, int shift)
    {
        uint result = value >> shift, rest = value & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (result & 1) != 0))
            result++;
        return result;
    }
}
