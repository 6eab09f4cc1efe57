using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// A weight matrix of [<see cref="Rows"/> = out features, <see cref="Cols"/> = in features], or a stack of
/// <see cref="Count"/> such matrices (experts, heads), on a device in its stored form (<see cref="Scheme"/>): dense
/// float32 or bfloat16, DeepSeek-V3's FP8 e4m3 with one float32 scale per block, or INT4 with a bfloat16 scale and
/// zero point per group of in features. The ops that take a weight (<see cref="Ops.Linear"/>,
/// <see cref="Ops.HeadwiseLinear"/>, <see cref="Ops.GroupedLinear"/>, <see cref="Ops.Embedding"/>,
/// <see cref="Ops.DequantizeFp8"/>) accept every form they can (Embedding refuses FP8, DequantizeFp8 takes only FP8), so
/// model code never branches on the weight's element type. A WeightMatrix does not own its views: dispose the buffers, not it.
/// </summary>
/// <remarks>
/// <para>
/// Matrices are row-major and dense: element [m, r, c] of the stack is at <c>(m * Rows + r) * Cols + c</c>.
/// </para>
/// <para>
/// FP8 weights dequantise to <c>w[m, r, c] = bf16((float)fp8[m, r, c] * scaleInv[m, r / BlockRows, c / BlockCols])</c>
/// (floor division; the product in float32, rounded once to bf16 as DeepSeek's and transformers' dequantisation
/// does: <see cref="Numerics.Float8E4M3.Dequantize"/>), with scaleInv of
/// [Count, ceil(Rows / BlockRows), ceil(Cols / BlockCols)] float32, so a ragged last block row or column has
/// its own scale (the <c>weight_scale_inv</c> tensors of DeepSeek-V3 checkpoints).
/// </para>
/// <para>
/// INT4 weights dequantise to <c>w[m, r, c] = bf16(((float)q[m, r, c] - (float)zero[m, r, g]) * (float)scale[m, r, g])</c>
/// with g = c / GroupSize, the arithmetic in float32 and rounded once to bf16 as FP8's is
/// (<see cref="Quantization.Int4GroupQuantizer.Dequantize(int, BFloat16, BFloat16)"/>); q is an unsigned code in 0..15,
/// scale and zero are bfloat16 of [Count, Rows, Cols / GroupSize]. The codes are packed two to a byte along the in
/// features, [Count, Rows, Cols / 2] bytes (<see cref="Int4x2"/>), element 2i in the low nibble of byte i of the row.
/// Cols is a multiple of GroupSize and GroupSize of 32, so every row, every group and every matrix of a stack starts
/// at a multiple of 16 bytes from the view's start (a row is Cols / 32 whole 16-byte units): one 16-byte load holds
/// 32 consecutive in features of one row, never two rows or two groups. <see cref="Quantization.Int4Layout"/> converts to and from GPTQ's and AWQ's packings.
/// </para>
/// </remarks>
public sealed class WeightMatrix
{
    WeightMatrix(WeightScheme scheme, ElementType type, DeviceRuntime runtime, int rows, int cols, int count, int blockRows,
        int blockCols, int groupSize)
    {
        Scheme = scheme;
        ElementType = type;
        Runtime = runtime;
        Rows = rows;
        Cols = cols;
        Count = count;
        BlockRows = blockRows;
        BlockCols = blockCols;
        GroupSize = groupSize;
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
            ThrowHelper.NotSupported(op, $"data has element type {typeof(T).Name}; a dense weight is float or BFloat16 (use WeightMatrix.Fp8 for FP8, WeightMatrix.Int4 for INT4).");
        if (data.IsNull)
            ThrowHelper.Argument(op, nameof(data), "data is a default DeviceView (it has no buffer).");
        CheckDense(op, data.Length, rows, cols, count);
        var type = ElementTypes.Of<T>();
        var weight = new WeightMatrix(WeightScheme.Dense, type, data.Runtime, rows, cols, count, 0, 0, 0);
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
        CheckFp8(op, data.Length, scaleInv.Length, rows, cols, blockRows, blockCols, count);
        var weight = new WeightMatrix(WeightScheme.Fp8Block, ElementType.Fp8E4M3, data.Runtime, rows, cols, count, blockRows, blockCols, 0);
        weight.Fp8Data = data;
        weight.ScaleInv = scaleInv;
        return weight;
    }

    /// <summary>
    /// An INT4 matrix with a bfloat16 scale and zero point per group of <paramref name="groupSize"/> in features
    /// (GPTQ/AWQ-style, asymmetric): dequantised
    /// <c>w[r, c] = bf16(((float)q[r, c] - (float)zeros[r, c / groupSize]) * (float)scales[r, c / groupSize])</c>, the
    /// arithmetic in float32, with q the unsigned 4-bit code (0..15) of element [r, c].
    /// </summary>
    /// <param name="packed">
    /// [count, rows, cols / 2] bytes, exactly: row-major, element 2i of a row in the low nibble of byte i (<see cref="Int4x2.LowUnsigned"/>),
    /// element 2i + 1 in the high nibble, so one 16-byte load holds 32 consecutive in features of one row.
    /// </param>
    /// <param name="scales">[count, rows, cols / groupSize] bfloat16 scales, exactly.</param>
    /// <param name="zeros">[count, rows, cols / groupSize] bfloat16 zero points, exactly (in code units; integers 0..15 from <see cref="Quantization.Int4GroupQuantizer"/>, but any value is read as it is).</param>
    /// <param name="rows">Out features (at least 1).</param>
    /// <param name="cols">In features (at least 1), a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">In features per scale group: a positive multiple of 32 (GPTQ and AWQ checkpoints: 128).</param>
    /// <param name="count">Matrices in the stack (at least 1).</param>
    /// <exception cref="ArgumentException">
    /// A view is default, the views belong to different runtimes, cols is not a multiple of groupSize, or a length is wrong.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    public static WeightMatrix Int4(DeviceView<Int4x2> packed, DeviceView<BFloat16> scales, DeviceView<BFloat16> zeros, int rows, int cols,
        int groupSize = 128, int count = 1)
    {
        const string op = "WeightMatrix.Int4";
        if (packed.IsNull)
            ThrowHelper.Argument(op, nameof(packed), "packed is a default DeviceView (it has no buffer).");
        if (scales.IsNull)
            ThrowHelper.Argument(op, nameof(scales), "scales is a default DeviceView (it has no buffer).");
        if (zeros.IsNull)
            ThrowHelper.Argument(op, nameof(zeros), "zeros is a default DeviceView (it has no buffer).");
        if (!ReferenceEquals(packed.Runtime, scales.Runtime))
            ThrowHelper.Argument(op, nameof(scales), "scales belongs to a different DeviceRuntime than packed.");
        if (!ReferenceEquals(packed.Runtime, zeros.Runtime))
            ThrowHelper.Argument(op, nameof(zeros), "zeros belongs to a different DeviceRuntime than packed.");
        CheckInt4(op, packed.Length, scales.Length, zeros.Length, rows, cols, groupSize, count);
        var weight = new WeightMatrix(WeightScheme.Int4Group, ElementType.Int4, packed.Runtime, rows, cols, count, 0, 0, groupSize)
        {
            Int4Data = packed,
            Int4Scales = scales,
            Int4Zeros = zeros,
        };
        return weight;
    }

    /// <summary>The sizes and the data's length of a dense weight (shared with <see cref="HostWeightMatrix"/>).</summary>
    internal static void CheckDense(string op, long dataLength, int rows, int cols, int count)
    {
        CheckSizes(op, rows, cols, count);
        long expected = (long)count * rows * cols;
        if (dataLength != expected)
            ThrowHelper.Argument(op, "data", $"data has {dataLength} elements; count * rows * cols = {count} * {rows} * {cols} = {expected}.");
    }

    /// <summary>The sizes, blocks and lengths of an FP8 block-scaled weight (shared with <see cref="HostWeightMatrix"/>).</summary>
    internal static void CheckFp8(string op, long dataLength, long scaleLength, int rows, int cols, int blockRows, int blockCols, int count)
    {
        CheckSizes(op, rows, cols, count);
        if (blockRows < 1)
            ThrowHelper.OutOfRange(op, nameof(blockRows), blockRows, $"blockRows must be at least 1 (got {blockRows}).");
        if (blockCols < 1)
            ThrowHelper.OutOfRange(op, nameof(blockCols), blockCols, $"blockCols must be at least 1 (got {blockCols}).");
        long expected = (long)count * rows * cols;
        if (dataLength != expected)
            ThrowHelper.Argument(op, "data", $"data has {dataLength} elements; count * rows * cols = {count} * {rows} * {cols} = {expected}.");
        long scaleRows = ((long)rows + blockRows - 1) / blockRows, scaleCols = ((long)cols + blockCols - 1) / blockCols;
        long expectedScales = count * scaleRows * scaleCols;
        if (scaleLength != expectedScales)
            ThrowHelper.Argument(op, "scaleInv", $"scaleInv has {scaleLength} elements; count * ceil(rows / blockRows) * ceil(cols / blockCols) = "
                + $"{count} * {scaleRows} * {scaleCols} = {expectedScales}.");
    }

    /// <summary>The sizes, groups and lengths of an INT4 group-wise weight (shared with <see cref="HostWeightMatrix"/>).</summary>
    internal static void CheckInt4(string op, long packedLength, long scalesLength, long zerosLength, int rows, int cols, int groupSize, int count)
    {
        CheckSizes(op, rows, cols, count);
        CheckInt4Groups(op, cols, groupSize);
        long expected = (long)count * rows * (cols / 2);
        if (packedLength != expected)
            ThrowHelper.Argument(op, "packed", $"packed has {packedLength} bytes; count * rows * cols / 2 = {count} * {rows} * {cols} / 2 = {expected} (two 4-bit codes a byte).");
        long groups = (long)count * rows * (cols / groupSize);
        if (scalesLength != groups)
            ThrowHelper.Argument(op, "scales", $"scales has {scalesLength} elements; count * rows * (cols / groupSize) = "
                + $"{count} * {rows} * ({cols} / {groupSize}) = {groups}.");
        if (zerosLength != groups)
            ThrowHelper.Argument(op, "zeros", $"zeros has {zerosLength} elements; count * rows * (cols / groupSize) = "
                + $"{count} * {rows} * ({cols} / {groupSize}) = {groups}.");
    }

    /// <summary>
    /// The INT4 group checks shared with the host quantiser and converters: groupSize a positive multiple of 32
    /// (ArgumentOutOfRangeException naming groupSize), cols a multiple of groupSize (ArgumentException naming cols).
    /// </summary>
    internal static void CheckInt4Groups(string op, int cols, int groupSize)
    {
        if (groupSize < 32 || groupSize % 32 != 0)
            ThrowHelper.OutOfRange(op, nameof(groupSize), groupSize,
                $"groupSize must be a positive multiple of 32 (got {groupSize}): a group is then whole 16-byte loads of 32 codes.");
        if (cols % groupSize != 0)
            ThrowHelper.Argument(op, nameof(cols), $"cols = {cols} is not a multiple of groupSize = {groupSize}; INT4 groups run along the in features and must tile them.");
    }

    internal static void CheckSizes(string op, int rows, int cols, int count)
    {
        if (rows < 1)
            ThrowHelper.OutOfRange(op, "rows", rows, $"rows must be at least 1 (got {rows}).");
        if (cols < 1)
            ThrowHelper.OutOfRange(op, "cols", cols, $"cols must be at least 1 (got {cols}).");
        if (count < 1)
            ThrowHelper.OutOfRange(op, "count", count, $"count must be at least 1 (got {count}).");
    }

    /// <summary>How the weight is stored: dense, FP8 with block scales, or INT4 with group scales and zero points.</summary>
    public WeightScheme Scheme { get; }

    /// <summary>
    /// The element type of the data: <see cref="ElementType.F32"/> or <see cref="ElementType.BF16"/> (dense),
    /// <see cref="ElementType.Fp8E4M3"/> (FP8 blocks) or <see cref="ElementType.Int4"/> (INT4 groups).
    /// </summary>
    public ElementType ElementType { get; }

    /// <summary>The runtime that owns the weight's buffers.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>Out features: rows of each matrix.</summary>
    public int Rows { get; }

    /// <summary>In features: columns of each matrix.</summary>
    public int Cols { get; }

    /// <summary>Matrices in the stack (1 for a single matrix; experts or heads for a stack).</summary>
    public int Count { get; }

    /// <summary>In features per INT4 scale group (0 unless <see cref="Scheme"/> is <see cref="WeightScheme.Int4Group"/>).</summary>
    public int GroupSize { get; }

    /// <summary>INT4 scale groups per row, Cols / GroupSize (0 unless the weight is INT4).</summary>
    public int GroupsPerRow => GroupSize == 0 ? 0 : Cols / GroupSize;

    /// <summary>Rows per FP8 scale block (0 unless the weight is FP8).</summary>
    public int BlockRows { get; }

    /// <summary>Columns per FP8 scale block (0 unless the weight is FP8).</summary>
    public int BlockCols { get; }

    /// <summary>Scale rows per matrix, ceil(Rows / BlockRows) (0 unless the weight is FP8).</summary>
    public int ScaleRows => BlockRows == 0 ? 0 : (Rows + BlockRows - 1) / BlockRows;

    /// <summary>Scale columns per matrix, ceil(Cols / BlockCols) (0 unless the weight is FP8).</summary>
    public int ScaleCols => BlockCols == 0 ? 0 : (Cols + BlockCols - 1) / BlockCols;

    /// <summary>Device memory the weight occupies, scales included (for memory reports).</summary>
    public long Bytes => ElementType switch
    {
        ElementType.F32 => F32.Length * sizeof(float),
        ElementType.BF16 => BF16.Length * 2,
        ElementType.Int4 => Int4Data.Length + (Int4Scales.Length + Int4Zeros.Length) * 2,
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
        var one = new WeightMatrix(Scheme, ElementType, Runtime, Rows, Cols, 1, BlockRows, BlockCols, GroupSize);
        switch (ElementType)
        {
            case ElementType.F32: one.F32 = F32.Slice(index * size, size); break;
            case ElementType.BF16: one.BF16 = BF16.Slice(index * size, size); break;
            case ElementType.Int4:
                long groups = (long)Rows * GroupsPerRow;
                one.Int4Data = Int4Data.Slice(index * (size / 2), size / 2);
                one.Int4Scales = Int4Scales.Slice(index * groups, groups);
                one.Int4Zeros = Int4Zeros.Slice(index * groups, groups);
                break;
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

    /// <summary>The packed INT4 codes, [Count, Rows, Cols / 2] bytes (ElementType Int4), else default.</summary>
    internal DeviceView<Int4x2> Int4Data { get; private set; }

    /// <summary>The INT4 group scales, [Count, Rows, Cols / GroupSize] bfloat16 (ElementType Int4), else default.</summary>
    internal DeviceView<BFloat16> Int4Scales { get; private set; }

    /// <summary>The INT4 group zero points, [Count, Rows, Cols / GroupSize] bfloat16 (ElementType Int4), else default.</summary>
    internal DeviceView<BFloat16> Int4Zeros { get; private set; }

    /// <summary>
    /// The float32 views of this weight (data or FP8 scales), for overlap checks against float outputs; default for
    /// bf16 and INT4 weights, which hold no float32 memory (a float32 view never shares a buffer of another type).
    /// </summary>
    internal DeviceView<float> FloatView => ElementType switch
    {
        ElementType.F32 => F32,
        ElementType.Fp8E4M3 => ScaleInv,
        _ => default,
    };

    /// <inheritdoc/>
    public override string ToString()
    {
        string type = Scheme == WeightScheme.Int4Group ? $"int4 g{GroupSize}" : ElementType.Name();
        return Count == 1 ? $"{type} [{Rows}, {Cols}]" : $"{type} [{Count}, {Rows}, {Cols}]";
    }
}
