using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Linear, LinearSiluMul and HeadwiseLinear through the hand-CUDA kernels (dsk_linear, kernels/linear*.cu) on the runtime's
/// stream, and dense bf16 x bf16 without a bias through cuBLASLt (<see cref="DenseGemmCublasLt"/>, the benchmarks' baseline
/// call). x and y may differ in element type (lm_head and the MoE router write f32 logits from bf16 activations): dsk_linear
/// takes x_dtype and y_dtype apart, so every call is one launch.
/// </summary>
internal static class LinearNative
{
    /// <summary>The C ABI's view of a weight: its device pointers, shape and scheme.</summary>
    public static DskWeight For(WeightMatrix w) => w.ElementType switch
    {
        ElementType.F32 => Dense(w, w.F32.Pointer, DskDType.F32),
        ElementType.BF16 => Dense(w, w.BF16.Pointer, DskDType.BF16),
        ElementType.Fp8E4M3 => new DskWeight
        {
            Data = w.Fp8Data.Pointer,
            Scale = w.ScaleInv.Pointer,
            Rows = w.Rows,
            Cols = w.Cols,
            Count = w.Count,
            Scheme = (int)DskWeightScheme.Fp8Block,
            DType = (int)DskDType.Fp8E4M3,
            BlockRows = w.BlockRows,
            BlockCols = w.BlockCols,
        },
        ElementType.Int4 => new DskWeight
        {
            Data = w.Int4Data.Pointer,
            Scale = w.Int4Scales.Pointer,
            Zero = w.Int4Zeros.Pointer,
            Rows = w.Rows,
            Cols = w.Cols,
            Count = w.Count,
            Scheme = (int)DskWeightScheme.Int4Group,
            DType = (int)DskDType.Int4,
            GroupSize = w.GroupSize,
        },
        var other => throw new NotSupportedException($"A weight stored as {other.Name()} has no dsk_weight form."),
    };

    /// <summary>A dense weight.</summary>
    static DskWeight Dense(WeightMatrix w, IntPtr data, DskDType type) => Dense(data, type, w.Rows, w.Cols, w.Count);

    static DskWeight Dense(IntPtr data, DskDType type, long rows, long cols, long count = 1) => new()
    {
        Data = data,
        Rows = rows,
        Cols = cols,
        Count = count,
        Scheme = (int)DskWeightScheme.Dense,
        DType = (int)type,
    };

    /// <summary>y [rows, w.Rows] = x [rows, w.Cols] @ w^T (+ bias); x and y rank 2 with their own row strides, w.Count 1.</summary>
    public static void Linear(DeviceRuntime runtime, DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        runtime.Bind();
        if (bias.IsNull && TryCublasLt(runtime, x, w, y))
            return;
        DskNative.Linear(Params(runtime, x, w, bias, y, DskLinearEpilogue.None));
    }

    /// <summary>y [rows, w.Rows / 2] = silu(x @ gate^T) * (x @ up^T) in dsk_linear's epilogue (gate = w's first half of rows).</summary>
    public static void LinearSiluMul(DeviceRuntime runtime, DeviceTensor x, WeightMatrix w, DeviceTensor y)
    {
        runtime.Bind();
        DskNative.Linear(Params(runtime, x, w, default, y, DskLinearEpilogue.SiluMul));
    }

    /// <summary>
    /// y[t, h, :] = w[h] @ x[t, h, :] (w[h]^T with <paramref name="transpose"/>) for h &lt; w.Count: one dsk_linear over a
    /// batch of w.Count matrices, x and y [tokens, heads, features] with any token and head strides.
    /// </summary>
    public static void HeadwiseLinear(DeviceRuntime runtime, DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose)
    {
        long tokens = x.Dim(0), heads = x.Dim(1), inDim = x.Dim(2), outDim = y.Dim(2);
        long xRow = RowStride(tokens, x.Stride(0), inDim), yRow = RowStride(tokens, y.Stride(0), outDim);
        runtime.Bind();
        DskNative.Linear(new DskLinearParams
        {
            X = x.Pointer,
            W = For(w),
            Y = y.Pointer,
            M = tokens,
            Batch = heads,
            XRowStride = xRow,
            XBatchStride = heads == 1 ? tokens * xRow : x.Stride(1),
            YRowStride = yRow,
            YBatchStride = heads == 1 ? tokens * yRow : y.Stride(1),
            XDType = (int)x.ElementType,
            YDType = (int)y.ElementType,
            TransposeW = transpose ? 1 : 0,
            Epilogue = (int)DskLinearEpilogue.None,
            Path = (int)DskLinearPath.Auto,
            Stream = runtime.CudaStreamHandle,
        });
    }

    /// <summary>The row stride the C ABI is given: with one row any stride is as good, and a broadcast 0 would be refused.</summary>
    internal static long RowStride(long rows, long stride, long cols) => rows == 1 ? Math.Max(stride, cols) : stride;

    /// <summary>
    /// Dense bf16 x (bf16 rows) without a bias, into bf16 or f32 rows: cuBLASLt, when it is available and has an algorithm
    /// for the shape, strides and alignment.
    /// </summary>
    static bool TryCublasLt(DeviceRuntime runtime, DeviceTensor x, WeightMatrix w, DeviceTensor y)
    {
        if (w.ElementType != ElementType.BF16 || w.Count != 1 || x.ElementType != ElementType.BF16 || x.Dim(0) > int.MaxValue || w.Rows > int.MaxValue)
            return false;
        long rows = x.Dim(0);
        return DenseGemmCublasLt.For(runtime).TryRun(x.Pointer, w.BF16.Pointer, y.Pointer, (int)rows, w.Rows, w.Cols,
            RowStride(rows, x.Stride(0), x.Dim(1)), RowStride(rows, y.Stride(0), y.Dim(1)),
            y.ElementType == ElementType.F32 ? CudaDataType.R32F : CudaDataType.R16BF);
    }

    /// <summary>dsk_linear params for one matrix (batch 1): x [rows, in] and y [rows, out or out / 2] rank 2, rows strided.</summary>
    static DskLinearParams Params(DeviceRuntime runtime, DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y,
        DskLinearEpilogue epilogue)
    {
        long rows = x.Dim(0);
        long xRow = RowStride(rows, x.Stride(0), x.Dim(1)), yRow = RowStride(rows, y.Stride(0), y.Dim(1));
        return new DskLinearParams
        {
            X = x.Pointer,
            W = For(w),
            Bias = bias.IsNull ? IntPtr.Zero : bias.Pointer,
            Y = y.Pointer,
            M = rows,
            Batch = 1,
            XRowStride = xRow,
            XBatchStride = rows * xRow,
            YRowStride = yRow,
            YBatchStride = rows * yRow,
            XDType = (int)x.ElementType,
            YDType = (int)y.ElementType,
            Epilogue = (int)epilogue,
            Path = (int)DskLinearPath.Auto,
            Stream = runtime.CudaStreamHandle,
        };
    }
}
