using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// The CPU backend's matrix products: y [rows, w.Rows] = x [rows, w.Cols] @ W^T (+ bias) on host memory, x and y float32 or
/// bfloat16 (bf16 rows are widened into float32 scratch first and the float32 results rounded once to bf16, as the
/// reference does), the weight in any stored form. <see cref="Product"/> sends a few rows (decode) to the GEMV kernels, which
/// read each weight byte once, and many rows (prefill) to the cache-blocked GEMM.
/// </summary>
internal static unsafe class CpuLinear
{
    /// <summary>Most activation rows the GEMV path takes; more go to the GEMM.</summary>
    public const int GemvMaxRows = 8;

    /// <summary>
    /// y[r * yStride + o] = x[r * xStride ..] . W[o] (+ bias[o]) for r &lt; rows: GEMV or GEMM by the row count; the GEMV
    /// multiplies INT4 weights as <paramref name="int4Dot"/> says.
    /// </summary>
    public static void Product(CpuThreadPool pool, in WeightData w, float* x, long xStride, int rows, float* bias, float* y, long yStride,
        CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        if (rows == 0)
            return;
        if (rows <= GemvMaxRows)
            CpuGemv.Run(pool, w, x, xStride, rows, bias, y, yStride, int4Dot);
        else
            CpuGemm.Run(pool, w, x, xStride, rows, bias, y, yStride);
    }

    /// <summary>The host view of a weight (ILGPU's CPU accelerator: its buffers, or the mapped file, are host memory, used in place).</summary>
    static WeightData Weights(WeightMatrix w) => ReferenceBackend.HostWeight.InPlace(w);

    public static void Linear(CpuThreadPool pool, DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y,
        CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        var hx = Rows.In(x);
        var hy = Rows.Out(y);
        Product(pool, Weights(w), hx.Address, hx.Stride, hx.Count, bias.IsNull ? null : (float*)bias.Pointer, hy.Address, hy.Stride, int4Dot);
        hy.Store();
    }

    /// <summary>y [rows, half] = silu(x @ gate^T) * (x @ up^T), gate|up = W's two halves of rows: the product into scratch, then SiLU-and-mul.</summary>
    public static void LinearSiluMul(CpuThreadPool pool, DeviceTensor x, WeightMatrix w, DeviceTensor y, CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        var hx = Rows.In(x);
        var hy = Rows.Out(y);
        SiluMulProduct(pool, Weights(w), hx.Address, hx.Stride, hx.Count, hy.Address, hy.Stride, int4Dot);
        hy.Store();
    }

    // Per calling thread, grown and kept (CpuGemm.Scratch): a call allocates nothing once they are large enough. A prefill
    // chunk's [rows, 2 * half] gate|up product was a fresh native block per call before; glibc kept the freed blocks of
    // a 512-token prefill as 57 MB of free but resident heap.
    [ThreadStatic] static float[]? t_gateUp;  // SiluMulProduct's [rows, 2 * half]
    [ThreadStatic] static float[]? t_rowsIn;  // a bf16 input's rows widened
    [ThreadStatic] static float[]? t_rowsOut; // a bf16 output's float32 rows

    static void SiluMulProduct(CpuThreadPool pool, in WeightData w, float* x, long xStride, int rows, float* y, long yStride,
        CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        int half = w.Rows / 2;
        float* gu = CpuGemm.Scratch(ref t_gateUp, (long)rows * 2 * half);
        Product(pool, w, x, xStride, rows, null, gu, 2L * half, int4Dot);
        for (int r = 0; r < rows; r++)
            ElementwiseReference.SiluAndMulRow(new ReadOnlySpan<float>(gu + 2L * r * half, half), new ReadOnlySpan<float>(gu + (2L * r + 1) * half, half),
                new Span<float>(y + r * yStride, half));
    }

    /// <summary>
    /// GroupedLinear(SiluMul) on the host: the offsets (device-held values) checked as the reference checks them (a bad one is
    /// recorded in the runtime's error word and nothing is computed), then each expert's rows as one product.
    /// </summary>
    public static void Grouped(CpuThreadPool pool, DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m, bool siluMul,
        CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        x.Runtime.Synchronize();
        var o = new ReadOnlySpan<int>((void*)offsets.Pointer, checked((int)offsets.Length));
        var site = siluMul ? DeviceErrorSite.GroupedLinearSiluMulOffsets : DeviceErrorSite.GroupedLinearOffsets;
        if (ReferenceBackend.OutOfRange(x.Runtime, site, o, m + 1) || ReferenceBackend.Decreasing(x.Runtime, site, o))
            return;
        var hx = Rows.In(x.Rank == 1 ? x.Reshape(m, w.Cols) : x); // the op API passes x flat
        var hy = Rows.Out(y);
        var all = Weights(w);
        for (int e = 0; e < w.Count; e++)
        {
            int first = o[e], count = o[e + 1] - first;
            if (count == 0)
                continue;
            float* xe = hx.Address + first * hx.Stride, ye = hy.Address + first * hy.Stride;
            if (siluMul)
                SiluMulProduct(pool, all.Matrix(e), xe, hx.Stride, count, ye, hy.Stride, int4Dot);
            else
                Product(pool, all.Matrix(e), xe, hx.Stride, count, null, ye, hy.Stride, int4Dot);
        }
        hy.Store(o[0], o[w.Count]); // rows outside every expert's range are not the op's to write
    }

    /// <summary>
    /// A rank-2 activation tensor's rows as float32 on the host: an f32 tensor in place (its row stride), a bf16 one widened
    /// into the calling thread's scratch (dense rows; one for inputs, one for outputs) and, for an output, rounded back
    /// once by <see cref="Store"/>.
    /// </summary>
    readonly struct Rows
    {
        readonly DeviceTensor _tensor;
        readonly float* _scratch; // t_rowsIn or t_rowsOut, 64-byte aligned; null for f32 tensors used in place

        Rows(DeviceTensor tensor, bool input)
        {
            _tensor = tensor;
            Count = (int)tensor.Dim(0);
            int cols = (int)tensor.Dim(1);
            if (tensor.ElementType == ElementType.F32)
            {
                Address = (float*)tensor.Pointer;
                Stride = tensor.Stride(0);
                return;
            }
            _scratch = CpuGemm.Scratch(ref (input ? ref t_rowsIn : ref t_rowsOut), (long)Count * cols);
            Stride = cols;
            Address = _scratch;
            if (input)
            {
                for (int r = 0; r < Count; r++)
                    BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((BFloat16*)tensor.Pointer + r * tensor.Stride(0), cols),
                        new Span<float>(Address + (long)r * cols, cols));
            }
        }

        public static Rows In(DeviceTensor x)
        {
            x.Runtime.Synchronize();
            return new Rows(x, input: true);
        }

        public static Rows Out(DeviceTensor y) => new(y, input: false);

        public float* Address { get; }
        public long Stride { get; }
        public int Count { get; }

        /// <summary>Rounds a bf16 output's float32 scratch rows [first, end) into the tensor (a no-op for f32, computed in place).</summary>
        public void Store(int first = 0, int end = -1)
        {
            if (_scratch == null)
                return;
            int cols = (int)_tensor.Dim(1);
            for (int r = first; r < (end < 0 ? Count : end); r++)
                BFloat16Conversions.FromSingle(new ReadOnlySpan<float>(Address + (long)r * cols, cols),
                    new Span<BFloat16>((BFloat16*)_tensor.Pointer + r * _tensor.Stride(0), cols));
        }
    }
}
