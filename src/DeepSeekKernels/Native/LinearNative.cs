using System.Runtime.CompilerServices;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Linear and HeadwiseLinear through the hand-CUDA kernels (dsk_linear, kernels/linear*.cu) on the runtime's stream, and
/// dense bf16 x bf16 without a bias through cuBLASLt (<see cref="DenseGemmCublasLt"/>, the benchmarks' baseline call).
/// <para>
/// dsk_linear takes x and y of one element type (act_dtype). The op API also lets bf16 rows produce f32 outputs (lm_head
/// and the MoE router write f32 logits from bf16 activations) and the reverse; those calls keep the op's arithmetic exactly
/// (every input widened exactly, fp32 accumulation, the output rounded once) by converting through an f32 scratch with
/// dsk_embedding (a row gather that widens exactly and rounds once): bf16 x is widened to f32 rows and multiplied at f32;
/// f32 x into a bf16 y is multiplied into f32 rows, then rounded to bf16. Where the weight is dense bf16 and there is no
/// bias, cuBLASLt writes the f32 output of bf16 inputs directly.
/// </para>
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

    /// <summary>A dense weight (also an activation matrix read as a table by the conversions below).</summary>
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
        var rows = new Rows(x.Pointer, x.ElementType, x.Dim(0), x.Dim(1), x.Stride(0));
        var output = new Rows(y.Pointer, y.ElementType, y.Dim(0), y.Dim(1), y.Stride(0));
        runtime.Bind();
        Run(runtime, rows, w, bias.IsNull ? IntPtr.Zero : bias.Pointer, transpose: false, output);
    }

    /// <summary>
    /// y[t, h, :] = w[h] @ x[t, h, :] (w[h]^T with <paramref name="transpose"/>) for h &lt; w.Count: one dsk_linear over a
    /// batch of w.Count matrices, x and y [tokens, heads, features] with any token and head strides.
    /// </summary>
    public static void HeadwiseLinear(DeviceRuntime runtime, DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose)
    {
        long tokens = x.Dim(0), heads = x.Dim(1), inDim = x.Dim(2), outDim = y.Dim(2);
        runtime.Bind();
        if (x.ElementType != y.ElementType)
        {
            // dsk_linear has one act_dtype: head by head, through the conversions of the plain linear layer.
            for (int h = 0; h < heads; h++)
            {
                var xh = x.Select(1, h);
                var yh = y.Select(1, h);
                Run(runtime, new Rows(xh.Pointer, x.ElementType, tokens, inDim, xh.Stride(0)), w.Matrix(h), IntPtr.Zero, transpose,
                    new Rows(yh.Pointer, y.ElementType, tokens, outDim, yh.Stride(0)));
            }
            return;
        }
        long xRow = RowStride(tokens, x.Stride(0), inDim), yRow = RowStride(tokens, y.Stride(0), outDim);
        var p = new DskLinearParams
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
            ResidualRowStride = outDim,
            ResidualBatchStride = tokens * outDim,
            ActDType = (int)x.ElementType,
            TransposeW = transpose ? 1 : 0,
            Epilogue = (int)DskLinearEpilogue.None,
            Path = (int)DskLinearPath.Auto,
            Stream = runtime.CudaStreamHandle,
        };
        DskNative.Linear(p);
    }

    /// <summary>[Count, Cols] activation rows of one element type at <see cref="Pointer"/>, rows <see cref="Stride"/> elements apart.</summary>
    readonly record struct Rows(IntPtr Pointer, ElementType Type, long Count, long Cols, long Stride)
    {
        /// <summary>The row stride the C ABI is given: with one row any stride is as good, and a broadcast 0 would be refused.</summary>
        public long AbiStride => RowStride(Count, Stride, Cols);
    }

    static long RowStride(long rows, long stride, long cols) => rows == 1 ? Math.Max(stride, cols) : stride;

    /// <summary>
    /// y = x @ w^T (+ bias), or x @ w with transpose, for one matrix (w.Count 1): cuBLASLt where it applies, dsk_linear
    /// otherwise, through the f32 scratch when x and y differ in element type.
    /// </summary>
    static void Run(DeviceRuntime runtime, Rows x, WeightMatrix w, IntPtr bias, bool transpose, Rows y)
    {
        if (TryCublasLt(runtime, x, w, bias, transpose, y))
            return;
        if (x.Type == y.Type)
        {
            DskNative.Linear(Params(runtime, x, For(w), bias, transpose, y));
            return;
        }
        var scratch = Scratch.For(runtime);
        lock (scratch.Lock) // the scratch is reused by the next mixed call: hold it until this one is enqueued
        {
            if (x.Type == ElementType.BF16)
            {
                // bf16 x widened exactly to f32 rows (same row stride, so a strided x converts in at most two gathers), then f32 @ w.
                long stride = x.AbiStride;
                var wide = new Rows(scratch.Floats(runtime, x.Count * stride), ElementType.F32, x.Count, x.Cols, stride);
                Convert(runtime, x, wide, scratch.Ids(runtime, x.Count));
                DskNative.Linear(Params(runtime, wide, For(w), bias, transpose, y));
            }
            else
            {
                // f32 x @ w into dense f32 rows, then each rounded once to bf16.
                var exact = new Rows(scratch.Floats(runtime, y.Count * y.Cols), ElementType.F32, y.Count, y.Cols, y.Cols);
                DskNative.Linear(Params(runtime, x, For(w), bias, transpose, exact));
                Convert(runtime, exact, y, scratch.Ids(runtime, y.Count));
            }
        }
    }

    /// <summary>
    /// Dense bf16 x (bf16 rows) without a bias or transpose, into bf16 or f32 rows: cuBLASLt, when it is available and has
    /// an algorithm for the shape, strides and alignment.
    /// </summary>
    static bool TryCublasLt(DeviceRuntime runtime, Rows x, WeightMatrix w, IntPtr bias, bool transpose, Rows y)
    {
        if (transpose || bias != IntPtr.Zero || w.ElementType != ElementType.BF16 || w.Count != 1 || x.Type != ElementType.BF16
            || x.Count > int.MaxValue || w.Rows > int.MaxValue)
            return false;
        return DenseGemmCublasLt.For(runtime).TryRun(x.Pointer, w.BF16.Pointer, y.Pointer, (int)x.Count, w.Rows, w.Cols,
            x.AbiStride, y.AbiStride, y.Type == ElementType.F32 ? CudaDataType.R32F : CudaDataType.R16BF);
    }

    /// <summary>dsk_linear params for one matrix (batch 1) from x and y rows of one element type.</summary>
    static DskLinearParams Params(DeviceRuntime runtime, Rows x, DskWeight w, IntPtr bias, bool transpose, Rows y) => new()
    {
        X = x.Pointer,
        W = w,
        Bias = bias,
        Y = y.Pointer,
        M = x.Count,
        Batch = 1,
        XRowStride = x.AbiStride,
        XBatchStride = x.Count * x.AbiStride,
        YRowStride = y.AbiStride,
        YBatchStride = y.Count * y.AbiStride,
        ResidualRowStride = y.Cols,
        ResidualBatchStride = y.Count * y.Cols,
        ActDType = (int)x.Type,
        TransposeW = transpose ? 1 : 0,
        Epilogue = (int)DskLinearEpilogue.None,
        Path = (int)DskLinearPath.Auto,
        Stream = runtime.CudaStreamHandle,
    };

    /// <summary>
    /// to = from, element by element, widened exactly or rounded once (dsk_embedding gathering rows 0..n-1 of <paramref name="from"/>
    /// read as a dense table). Rows with a stride other than their width are read as a table of stride-wide rows (the gaps
    /// copied along, which needs <paramref name="to"/> to have the same stride), the last row alone, so nothing past the
    /// last element is read.
    /// </summary>
    static void Convert(DeviceRuntime runtime, Rows from, Rows to, IntPtr ids)
    {
        if (from.Count == 1 || from.Stride == from.Cols)
        {
            Gather(runtime, Dense(from.Pointer, (DskDType)from.Type, from.Count, from.Cols), ids, from.Count, to.Pointer, to.AbiStride, to.Type);
            return;
        }
        if (to.Stride != from.Stride)
            throw new InvalidOperationException($"LinearNative: converting rows {from.Stride} apart needs the destination's rows as far apart (got {to.Stride}).");
        long last = from.Count - 1;
        Gather(runtime, Dense(from.Pointer, (DskDType)from.Type, last, from.Stride), ids, last, to.Pointer, to.Stride, to.Type);
        Gather(runtime, Dense(from.Pointer + (nint)(last * from.Stride * from.Type.Size()), (DskDType)from.Type, 1, from.Cols), ids, 1,
            to.Pointer + (nint)(last * to.Stride * to.Type.Size()), to.Cols, to.Type);
    }

    static void Gather(DeviceRuntime runtime, DskWeight table, IntPtr ids, long n, IntPtr y, long yRowStride, ElementType yType) =>
        DskNative.Embedding(new DskEmbeddingParams
        {
            Ids = ids,
            Table = table,
            Y = y,
            ErrorWord = runtime.Errors.Word.View.Pointer,
            N = n,
            YRowStride = yRowStride,
            YDType = (int)yType,
            ErrorSite = DeviceErrorSite.EmbeddingIds.Id,
            Stream = runtime.CudaStreamHandle,
        });

    /// <summary>
    /// Per runtime, for the calls whose x and y differ in element type: an f32 scratch and the ids 0..n-1, both grown on
    /// demand (the first call of a size allocates, so run a shape once before capturing it in a graph), released with the runtime.
    /// </summary>
    sealed class Scratch
    {
        static readonly ConditionalWeakTable<DeviceRuntime, Scratch> PerRuntime = new();

        DeviceBuffer<float>? _floats;
        DeviceBuffer<int>? _ids;

        public Lock Lock { get; } = new();

        public static Scratch For(DeviceRuntime runtime) => PerRuntime.GetValue(runtime, static r =>
        {
            var scratch = new Scratch();
            r.Accelerator.Disposed += (_, _) => scratch.Release();
            return scratch;
        });

        /// <summary>At least <paramref name="length"/> floats.</summary>
        public IntPtr Floats(DeviceRuntime runtime, long length)
        {
            if (_floats == null || _floats.Length < length)
            {
                Retire(runtime, _floats);
                _floats = runtime.Allocate<float>(Math.Max(length, 1 << 16));
            }
            return _floats.View.Pointer;
        }

        /// <summary>The ids 0, 1, ..., at least <paramref name="count"/> of them.</summary>
        public IntPtr Ids(DeviceRuntime runtime, long count)
        {
            if (_ids == null || _ids.Length < count)
            {
                Retire(runtime, _ids);
                int length = (int)Math.Max(count, 4096);
                _ids = runtime.Upload<int>(Enumerable.Range(0, length).ToArray());
            }
            return _ids.View.Pointer;
        }

        /// <summary>Frees a buffer that earlier calls may still be reading: after the stream has drained.</summary>
        static void Retire<T>(DeviceRuntime runtime, DeviceBuffer<T>? buffer) where T : unmanaged
        {
            if (buffer == null)
                return;
            runtime.Stream.Synchronize();
            buffer.Dispose();
        }

        void Release()
        {
            lock (Lock)
            {
                _floats?.Dispose();
                _ids?.Dispose();
                _floats = null;
                _ids = null;
            }
        }
    }
}
