using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels;

/// <summary>
/// A weight matrix [Rows = out, Cols = in] (or a stack of <see cref="Count"/> of them, one per expert, back to back) in host
/// memory, for the Span forms of <see cref="Ops.Linear{T}(ReadOnlySpan{T}, in HostWeightMatrix, ReadOnlySpan{float}, Span{T})"/>
/// and of the grouped expert GEMMs: the same schemes and dequantisation as <see cref="WeightMatrix"/> (dense float32 or
/// bfloat16; FP8 e4m3 with float32 block scales, DeepSeek-V3's format; INT4 with a bfloat16 scale and zero point per group),
/// over spans the caller owns. The factories check the same sizes and lengths, with the same messages, as WeightMatrix's.
/// </summary>
public readonly ref struct HostWeightMatrix
{
    HostWeightMatrix(WeightScheme scheme, ElementType type, ReadOnlySpan<byte> data, ReadOnlySpan<byte> scales, ReadOnlySpan<byte> zeros,
        int rows, int cols, int blockRows, int blockCols, int groupSize, int count)
    {
        Count = count;
        Scheme = scheme;
        ElementType = type;
        Data = data;
        Scales = scales;
        Zeros = zeros;
        Rows = rows;
        Cols = cols;
        BlockRows = blockRows;
        BlockCols = blockCols;
        GroupSize = groupSize;
    }

    /// <summary>How the weight is stored.</summary>
    public WeightScheme Scheme { get; }

    /// <summary>The stored element type: float32, bfloat16, FP8 e4m3 or packed INT4.</summary>
    public ElementType ElementType { get; }

    /// <summary>Matrices in the stack (1 for a single matrix; the experts of a grouped GEMM).</summary>
    public int Count { get; }

    /// <summary>Out features.</summary>
    public int Rows { get; }

    /// <summary>In features.</summary>
    public int Cols { get; }

    /// <summary>FP8: rows and columns per scale block; 0 otherwise.</summary>
    public int BlockRows { get; }

    /// <summary>FP8: columns per scale block; 0 otherwise.</summary>
    public int BlockCols { get; }

    /// <summary>INT4: in features per scale group; 0 otherwise.</summary>
    public int GroupSize { get; }

    internal ReadOnlySpan<byte> Data { get; }
    internal ReadOnlySpan<byte> Scales { get; }
    internal ReadOnlySpan<byte> Zeros { get; }

    /// <summary>A dense float32 weight: <paramref name="data"/> is [count, rows, cols], exactly.</summary>
    /// <exception cref="ArgumentException">data's length is not count * rows * cols.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1.</exception>
    public static HostWeightMatrix Dense(ReadOnlySpan<float> data, int rows, int cols, int count = 1)
    {
        WeightMatrix.CheckDense("HostWeightMatrix.Dense", data.Length, rows, cols, count);
        return new(WeightScheme.Dense, ElementType.F32, MemoryMarshal.AsBytes(data), default, default, rows, cols, 0, 0, 0, count);
    }

    /// <summary>A dense bfloat16 weight: <paramref name="data"/> is [count, rows, cols], exactly.</summary>
    /// <exception cref="ArgumentException">data's length is not count * rows * cols.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1.</exception>
    public static HostWeightMatrix Dense(ReadOnlySpan<BFloat16> data, int rows, int cols, int count = 1)
    {
        WeightMatrix.CheckDense("HostWeightMatrix.Dense", data.Length, rows, cols, count);
        return new(WeightScheme.Dense, ElementType.BF16, MemoryMarshal.AsBytes(data), default, default, rows, cols, 0, 0, 0, count);
    }

    /// <summary>
    /// An FP8 e4m3 weight with block scales (<see cref="WeightMatrix.Fp8"/>): <paramref name="data"/> [count, rows, cols],
    /// <paramref name="scaleInv"/> [count, ceil(rows / blockRows), ceil(cols / blockCols)], exactly.
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size or block is less than 1.</exception>
    public static HostWeightMatrix Fp8(ReadOnlySpan<Float8E4M3> data, ReadOnlySpan<float> scaleInv, int rows, int cols, int blockRows = 128,
        int blockCols = 128, int count = 1)
    {
        WeightMatrix.CheckFp8("HostWeightMatrix.Fp8", data.Length, scaleInv.Length, rows, cols, blockRows, blockCols, count);
        return new(WeightScheme.Fp8Block, ElementType.Fp8E4M3, MemoryMarshal.AsBytes(data), MemoryMarshal.AsBytes(scaleInv), default,
            rows, cols, blockRows, blockCols, 0, count);
    }

    /// <summary>
    /// An INT4 weight with a bfloat16 scale and zero point per group (<see cref="WeightMatrix.Int4"/>): <paramref name="packed"/>
    /// [count, rows, cols / 2] (element 2i of a row in the low nibble of byte i), <paramref name="scales"/> and <paramref name="zeros"/>
    /// [count, rows, cols / groupSize], exactly.
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong, or cols is not a multiple of groupSize.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    public static HostWeightMatrix Int4(ReadOnlySpan<Int4x2> packed, ReadOnlySpan<BFloat16> scales, ReadOnlySpan<BFloat16> zeros, int rows, int cols,
        int groupSize = 128, int count = 1)
    {
        WeightMatrix.CheckInt4("HostWeightMatrix.Int4", packed.Length, scales.Length, zeros.Length, rows, cols, groupSize, count);
        return new(WeightScheme.Int4Group, ElementType.Int4, MemoryMarshal.AsBytes(packed), MemoryMarshal.AsBytes(scales),
            MemoryMarshal.AsBytes(zeros), rows, cols, 0, 0, groupSize, count);
    }
}
