using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// A weight matrix of [<see cref="Rows"/> = out features, <see cref="Cols"/> = in features], or a stack of
/// <see cref="Count"/> such matrices (experts, heads), on a device in its stored form: dense float32 or
/// bfloat16, or DeepSeek-V3's FP8 e4m3 with one float32 scale per block. The ops that take a weight
/// (<see cref="Ops.Linear"/>, <see cref="Ops.HeadwiseLinear"/>, <see cref="Ops.GroupedLinear"/>,
/// <see cref="Ops.Embedding"/>, <see cref="Ops.DequantizeFp8"/>) accept every form, so model code never
/// branches on the weight's element type. A WeightMatrix does not own its views: dispose the buffers, not it.
/// </summary>
/// <remarks>
/// Matrices are row-major and dense: element [m, r, c] of the stack is at <c>(m * Rows + r) * Cols + c</c>.
/// FP8 weights dequantise to <c>w[m, r, c] = bf16((float)fp8[m, r, c] * scaleInv[m, r / BlockRows, c / BlockCols])</c>
/// (floor division; the product in float32, rounded once to bf16 as DeepSeek's and transformers' dequantisation
/// does: <see cref="Numerics.Float8E4M3.Dequantize"/>), with scaleInv of
/// [Count, ceil(Rows / BlockRows), ceil(Cols / BlockCols)] float32, so a ragged last block row or column has
/// its own scale (the <c>weight_scale_inv</c> tensors of DeepSeek-V3 checkpoints).
/// </remarks>
public sealed class WeightMatrix
{
    WeightMatrix(ElementType type, DeviceRuntime runtime, int rows, int cols, int count, int blockRows, int blockCols)
    {
        ElementType = type;
        Runtime = runtime;
        Rows = rows;
        Cols = cols;
        Count = count;
        BlockRows = blockRows;
        BlockCols = blockCols;
    }

    /// <summary>
    /// A dense float32 or bfloat16 matrix of [<paramref name="rows"/>, <paramref name="cols"/>], or a stack of
    /// <paramref name="count"/> of them.
    /// </summary>
    /// <typeparam name="T"><see cref="float"/> or <see cref="BFloat16"/>.</typeparam>
    /// <param name="data">[count, rows, cols] elements, exactly.</param>
    /// <param name="rows">Out features (at least 1).</param>
    /// <param name="cols">In features (at least 1).</param>
    /// <param name="count">Matrices in the stack (at least 1).</param>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor BFloat16.</exception>
    /// <exception cref="ArgumentException"><paramref name="data"/> is default or its length is not count * rows * cols.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1.</exception>
    public static WeightMatrix Dense<T>(DeviceView<T> data, int rows, int cols, int count = 1) where T : unmanaged
    {
        const string op = "WeightMatrix.Dense";
        if (typeof(T) != typeof(float) && typeof(T) != typeof(BFloat16))
            ThrowHelper.NotSupported(op, $"data has element type {typeof(T).Name}; a dense weight is float or BFloat16 (use WeightMatrix.Fp8 for FP8).");
        if (data.IsNull)
            ThrowHelper.Argument(op, nameof(data), "data is a default DeviceView (it has no buffer).");
        CheckSizes(op, rows, cols, count);
        long expected = (long)count * rows * cols;
        if (data.Length != expected)
            ThrowHelper.Argument(op, nameof(data), $"data has {data.Length} elements; count * rows * cols = {count} * {rows} * {cols} = {expected}.");
        var type = ElementTypes.Of<T>();
        var weight = new WeightMatrix(type, data.Runtime, rows, cols, count, 0, 0);
        if (typeof(T) == typeof(float))
            weight.F32 = (DeviceView<float>)(object)data;
        else
            weight.BF16 = (DeviceView<BFloat16>)(object)data;
        return weight;
    }

    /// <summary>
    /// An FP8 e4m3 matrix with block scales, DeepSeek-V3's format: dequantised
    /// <c>w[r, c] = bf16((float)data[r, c] * scaleInv[r / blockRows, c / blockCols])</c>.
    /// </summary>
    /// <param name="data">[count, rows, cols] FP8 elements, exactly.</param>
    /// <param name="scaleInv">[count, ceil(rows / blockRows), ceil(cols / blockCols)] float32 scales, exactly.</param>
    /// <param name="rows">Out features (at least 1).</param>
    /// <param name="cols">In features (at least 1).</param>
    /// <param name="blockRows">Rows per scale block (DeepSeek-V3: 128).</param>
    /// <param name="blockCols">Columns per scale block (DeepSeek-V3: 128).</param>
    /// <param name="count">Matrices in the stack (at least 1).</param>
    /// <exception cref="ArgumentException">A view is default, a length is wrong, or the views belong to different runtimes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1.</exception>
    public static WeightMatrix Fp8(DeviceView<Float8E4M3> data, DeviceView<float> scaleInv, int rows, int cols,
        int blockRows = 128, int blockCols = 128, int count = 1)
    {
        const string op = "WeightMatrix.Fp8";
        if (data.IsNull)
            ThrowHelper.Argument(op, nameof(data), "data is a default DeviceView (it has no buffer).");
        if (scaleInv.IsNull)
            ThrowHelper.Argument(op, nameof(scaleInv), "scaleInv is a default DeviceView (it has no buffer).");
        if (!ReferenceEquals(data.Runtime, scaleInv.Runtime))
            ThrowHelper.Argument(op, nameof(scaleInv), "scaleInv belongs to a different DeviceRuntime than data.");
        CheckSizes(op, rows, cols, count);
        if (blockRows < 1)
            ThrowHelper.OutOfRange(op, nameof(blockRows), blockRows, $"blockRows must be at least 1 (got {blockRows}).");
        if (blockCols < 1)
            ThrowHelper.OutOfRange(op, nameof(blockCols), blockCols, $"blockCols must be at least 1 (got {blockCols}).");
        long expected = (long)count * rows * cols;
        if (data.Length != expected)
            ThrowHelper.Argument(op, nameof(data), $"data has {data.Length} elements; count * rows * cols = {count} * {rows} * {cols} = {expected}.");
        var weight = new WeightMatrix(ElementType.Fp8E4M3, data.Runtime, rows, cols, count, blockRows, blockCols);
        long expectedScales = (long)count * weight.ScaleRows * weight.ScaleCols;
        if (scaleInv.Length != expectedScales)
            ThrowHelper.Argument(op, nameof(scaleInv), $"scaleInv has {scaleInv.Length} elements; count * ceil(rows / blockRows) * ceil(cols / blockCols) = "
                + $"{count} * {weight.ScaleRows} * {weight.ScaleCols} = {expectedScales}.");
        weight.Fp8Data = data;
        weight.ScaleInv = scaleInv;
        return weight;
    }

    static void CheckSizes(string op, int rows, int cols, int count)
    {
        if (rows < 1)
            ThrowHelper.OutOfRange(op, "rows", rows, $"rows must be at least 1 (got {rows}).");
        if (cols < 1)
            ThrowHelper.OutOfRange(op, "cols", cols, $"cols must be at least 1 (got {cols}).");
        if (count < 1)
            ThrowHelper.OutOfRange(op, "count", count, $"count must be at least 1 (got {count}).");
    }

    /// <summary>How the weight is stored: <see cref="ElementType.F32"/>, <see cref="ElementType.BF16"/> or <see cref="ElementType.Fp8E4M3"/>.</summary>
    public ElementType ElementType { get; }

    /// <summary>The runtime that owns the weight's buffers.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>Out features: rows of each matrix.</summary>
    public int Rows { get; }

    /// <summary>In features: columns of each matrix.</summary>
    public int Cols { get; }

    /// <summary>Matrices in the stack (1 for a single matrix; experts or heads for a stack).</summary>
    public int Count { get; }

    /// <summary>Rows per FP8 scale block (0 for a dense weight).</summary>
    public int BlockRows { get; }

    /// <summary>Columns per FP8 scale block (0 for a dense weight).</summary>
    public int BlockCols { get; }

    /// <summary>Scale rows per matrix, ceil(Rows / BlockRows) (0 for a dense weight).</summary>
    public int ScaleRows => BlockRows == 0 ? 0 : (Rows + BlockRows - 1) / BlockRows;

    /// <summary>Scale columns per matrix, ceil(Cols / BlockCols) (0 for a dense weight).</summary>
    public int ScaleCols => BlockCols == 0 ? 0 : (Cols + BlockCols - 1) / BlockCols;

    /// <summary>Device memory the weight occupies, scales included (for memory reports).</summary>
    public long Bytes => ElementType switch
    {
        ElementType.F32 => F32.Length * sizeof(float),
        ElementType.BF16 => BF16.Length * 2,
        _ => Fp8Data.Length + ScaleInv.Length * sizeof(float),
    };

    /// <summary>Matrix <paramref name="index"/> of the stack as a weight of its own (Count = 1), sharing the memory.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is outside [0, Count).</exception>
    public WeightMatrix Matrix(int index)
    {
        if ((uint)index >= (uint)Count)
            ThrowHelper.OutOfRange("WeightMatrix.Matrix", nameof(index), index, $"index must be in [0, {Count}) (got {index}).");
        if (Count == 1)
            return this;
        long size = (long)Rows * Cols;
        var one = new WeightMatrix(ElementType, Runtime, Rows, Cols, 1, BlockRows, BlockCols);
        switch (ElementType)
        {
            case ElementType.F32: one.F32 = F32.Slice(index * size, size); break;
            case ElementType.BF16: one.BF16 = BF16.Slice(index * size, size); break;
            default:
                long scales = (long)ScaleRows * ScaleCols;
                one.Fp8Data = Fp8Data.Slice(index * size, size);
                one.ScaleInv = ScaleInv.Slice(index * scales, scales);
                break;
        }
        return one;
    }

    /// <summary>The float32 data (ElementType F32), else default.</summary>
    internal DeviceView<float> F32 { get; private set; }

    /// <summary>The bfloat16 data (ElementType BF16), else default.</summary>
    internal DeviceView<BFloat16> BF16 { get; private set; }

    /// <summary>The FP8 data (ElementType Fp8E4M3), else default.</summary>
    internal DeviceView<Float8E4M3> Fp8Data { get; private set; }

    /// <summary>The FP8 block scales (ElementType Fp8E4M3), else default.</summary>
    internal DeviceView<float> ScaleInv { get; private set; }

    /// <summary>The float32 views of this weight (data or scales), for overlap checks against float outputs.</summary>
    internal DeviceView<float> FloatView => ElementType == ElementType.F32 ? F32 : ScaleInv;

    /// <inheritdoc/>
    public override string ToString() => Count == 1
        ? $"{ElementType.Name()} [{Rows}, {Cols}]"
        : $"{ElementType.Name()} [{Count}, {Rows}, {Cols}]";
}
