using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Quantization;

/// <summary>
/// FP8 e4m3 block quantisation of float32 weights into DeepSeek-V3's layout (<see cref="WeightMatrix.Fp8"/>): effectively
/// computes, per block of blockRows x blockCols (ragged last blocks have their own scale),
/// <c>scaleInv = amax / 448</c> in float32 (amax = max |w| over the block) and
/// <c>data = e4m3(w / scaleInv)</c>, rounded to nearest even and saturating at ±448
/// (<see cref="Float8E4M3.FromSingleSaturating"/>), as DeepSeek's own block quantiser does.
/// </summary>
/// <remarks>
/// <para>
/// An all-zero block gets scaleInv = 1 (its codes are all 0, dequantising to exactly 0). A block whose amax / 448
/// underflows float32 to 0 (amax below about 6e-43) gets the smallest positive float instead. Inputs must be finite
/// (anything else is refused). The dequantisation is the reference's, <see cref="Float8E4M3.Dequantize"/>:
/// <c>bf16(fp8 * scaleInv)</c>.
/// </para>
/// <para>
/// Error bound, per element: <c>|w - deq| &lt;= 2^-4 * |w| + 2^-10 * scaleInv + 2^-8 * |deq|</c>. The first term is
/// e4m3's unit roundoff (3 mantissa bits, half an ulp of the value) for <c>|w / scaleInv|</c> in e4m3's normal range
/// (at least 2^-6); below it, codes are spaced 2^-9 apart, hence the absolute half step 2^-10 * scaleInv; the last is
/// bf16's rounding of the dequantised value. It holds for blocks with a normal float32 scale (amax at least
/// 448 * 2^-126, about 5e-36); tinier blocks lose precision to subnormal scales.
/// </para>
/// </remarks>
public static class Fp8BlockQuantizer
{
    const string QuantizeOp = "Fp8BlockQuantizer.Quantize";

    /// <summary>
    /// Quantises <paramref name="w"/> ([count, rows, cols] float32, row-major) to FP8 e4m3 with one float32 scale per
    /// block of each matrix: see the class remarks for the method and its bound.
    /// </summary>
    /// <param name="w">[count, rows, cols] finite weights.</param>
    /// <param name="rows">Out features of each matrix, at least 1.</param>
    /// <param name="cols">In features, at least 1.</param>
    /// <param name="blockRows">Rows per scale block, at least 1 (DeepSeek-V3: 128).</param>
    /// <param name="blockCols">Columns per scale block, at least 1 (DeepSeek-V3: 128).</param>
    /// <param name="count">Matrices in the stack, at least 1 (blocks never span two matrices).</param>
    /// <returns>
    /// Data: [count, rows, cols] codes; ScaleInv: [count, ceil(rows / blockRows), ceil(cols / blockCols)] float32.
    /// Exactly what <see cref="WeightMatrix.Fp8"/> takes.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1.</exception>
    /// <exception cref="ArgumentException">w's length is not count * rows * cols, or an element is not finite.</exception>
    public static (Float8E4M3[] Data, float[] ScaleInv) Quantize(ReadOnlySpan<float> w, int rows, int cols, int blockRows = 128,
        int blockCols = 128, int count = 1)
    {
        WeightMatrix.CheckSizes(QuantizeOp, rows, cols, count);
        if (blockRows < 1)
            ThrowHelper.OutOfRange(QuantizeOp, nameof(blockRows), blockRows, $"blockRows must be at least 1 (got {blockRows}).");
        if (blockCols < 1)
            ThrowHelper.OutOfRange(QuantizeOp, nameof(blockCols), blockCols, $"blockCols must be at least 1 (got {blockCols}).");
        long expected = (long)count * rows * cols;
        if (w.Length != expected)
            ThrowHelper.Argument(QuantizeOp, nameof(w), $"w has {w.Length} elements; count * rows * cols = {count} * {rows} * {cols} = {expected}.");
        Int4GroupQuantizer.CheckMagnitudes(QuantizeOp, w, float.PositiveInfinity, "infinity");

        int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
        var data = new Float8E4M3[expected];
        var scaleInv = new float[(long)count * scaleRows * scaleCols];
        unsafe
        {
            fixed (float* source = w)
            fixed (Float8E4M3* codes = data)
            fixed (float* scales = scaleInv)
            {
                nint s = (nint)source, c = (nint)codes, sc = (nint)scales;
                // one task per block row of a matrix: its blocks are independent of every other task's
                void BlockRow(long task)
                {
                    long m = task / scaleRows;
                    int first = (int)(task % scaleRows) * blockRows, end = Math.Min(first + blockRows, rows);
                    for (int block = 0; block < scaleCols; block++)
                    {
                        int c0 = block * blockCols, c1 = Math.Min(c0 + blockCols, cols);
                        float amax = 0f;
                        for (int r = first; r < end; r++)
                        {
                            float* row = (float*)s + (m * rows + r) * cols;
                            for (int col = c0; col < c1; col++)
                                amax = MathF.Max(amax, MathF.Abs(row[col]));
                        }
                        float scale = ScaleInvOf(amax);
                        ((float*)sc)[task * scaleCols + block] = scale;
                        for (int r = first; r < end; r++)
                        {
                            long offset = (m * rows + r) * cols;
                            float* row = (float*)s + offset;
                            Float8E4M3* output = (Float8E4M3*)c + offset;
                            for (int col = c0; col < c1; col++)
                                output[col] = Float8E4M3.FromSingleSaturating(row[col] / scale);
                        }
                    }
                }
                long tasks = (long)count * scaleRows;
                if (expected < ParallelThreshold)
                {
                    for (long t = 0; t < tasks; t++)
                        BlockRow(t);
                }
                else
                {
                    Parallel.For(0, tasks, BlockRow);
                }
            }
        }
        return (data, scaleInv);
    }

    const long ParallelThreshold = 1 << 20; // weights; below this one thread is fast enough

    /// <summary>
    /// The scale of a block whose largest magnitude is <paramref name="amax"/>: amax / 448 in float32; 1 for an all-zero
    /// block; the smallest positive float where amax / 448 underflows to 0.
    /// </summary>
    public static float ScaleInvOf(float amax)
    {
        if (amax == 0f)
            return 1f;
        float scale = amax / Float8E4M3.MaxValue;
        return scale == 0f ? float.Epsilon : scale;
    }
}
