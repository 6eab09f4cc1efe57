using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// FP8 activations for prefill (W8A8, DeepGEMM's scaling), the specification every backend is tested against:
/// <see cref="QuantizeRow"/> quantises one token's activations with one float32 scale per 128 columns, and
/// <see cref="LinearW8A8"/> multiplies such activations by an FP8 weight with 128 x 128 block scales, applying both scales
/// per 128-wide block of in features, in float32. Plain loops, written for clarity (the order of every float32 operation is
/// the one the op docs state). Arguments are assumed valid (the op API checks them); addresses are host memory.
/// </summary>
internal static unsafe class Fp8ActivationReference
{
    /// <summary>Columns per activation scale, and the weight's block size.</summary>
    public const int Block = Ops.Fp8ActivationBlock;

    const long ParallelThreshold = 1 << 19; // multiply-adds; below this one thread is faster (LinearReference's measure)

    /// <summary>
    /// One row: for each block j of 128 columns (the last one ragged), amax = max |x| over the block (a NaN anywhere makes it
    /// NaN), s = amax == 0 ? 1 : amax / 448 (a NaN or infinite amax gives a NaN or infinite s), q = e4m3(x / s) rounded to
    /// nearest even and saturating at ±448, scales[j] = s.
    /// </summary>
    /// <param name="x">[cols] the row.</param>
    /// <param name="q">[cols] its FP8 codes.</param>
    /// <param name="scales">[ceil(cols / 128)] its scales.</param>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<Float8E4M3> q, Span<float> scales)
    {
        for (int j = 0; j * Block < x.Length; j++)
        {
            var block = x.Slice(j * Block, Math.Min(Block, x.Length - j * Block));
            float amax = 0f;
            foreach (float v in block)
            {
                float a = MathF.Abs(v);
                if (float.IsNaN(a))
                {
                    amax = a;
                    break;
                }
                if (a > amax)
                    amax = a;
            }
            // amax == 0 (an all-zero block) is the only case that takes 1: a NaN amax keeps s NaN
            float s = amax == 0f ? 1f : amax / Float8E4M3.MaxValue;
            scales[j] = s;
            for (int k = 0; k < block.Length; k++)
                q[j * Block + k] = Float8E4M3.FromSingleSaturating(block[k] / s);
        }
    }

    /// <summary>
    /// y[i, n] = round( sum_j (xScales[i, j] * ws[n / 128, j]) * (sum_{k in block j} qx[i, k] * qw[n, k]) + bias[n] ): each
    /// block's dot product in float32 over k in order (the products of two e4m3 values are exact in float32), scaled by the
    /// product of the two scales, the blocks summed in order in float32, the bias added last. y is float32 here; a bf16
    /// destination is rounded once from it by the caller.
    /// </summary>
    /// <param name="qx">[m, w.Cols] FP8 activations, dense rows.</param>
    /// <param name="xScales">[m, w.ScaleCols] activation scales.</param>
    /// <param name="m">Rows (tokens).</param>
    /// <param name="w">FP8 weight with 128 x 128 blocks, one matrix.</param>
    /// <param name="bias">[w.Rows] float32, or 0 for none.</param>
    /// <param name="y">[m, w.Rows] float32, rows <paramref name="yStride"/> elements apart.</param>
    /// <param name="yStride">Elements between rows of y.</param>
    public static void LinearW8A8(ReadOnlySpan<Float8E4M3> qx, ReadOnlySpan<float> xScales, int m, WeightData w, nint bias, float* y, long yStride)
    {
        int inFeatures = w.Cols, outFeatures = w.Rows, blocks = w.ScaleCols;
        fixed (Float8E4M3* x = qx)
        fixed (float* xs = xScales)
        {
            nint xAddress = (nint)x, xsAddress = (nint)xs, yAddress = (nint)y;
            void Row(int i, float[] xRow)
            {
                var qw = new ReadOnlySpan<Float8E4M3>((void*)w.Data, checked(outFeatures * inFeatures));
                var ws = new ReadOnlySpan<float>((void*)w.Scales, w.ScaleRows * blocks);
                for (int k = 0; k < inFeatures; k++)
                    xRow[k] = ((Float8E4M3*)xAddress)[(long)i * inFeatures + k].ToSingle(); // the row's e4m3 values, decoded once
                for (int n = 0; n < outFeatures; n++)
                {
                    var wRow = qw.Slice(n * inFeatures, inFeatures);
                    float acc = 0f;
                    for (int j = 0; j < blocks; j++)
                    {
                        int k0 = j * Block, k1 = Math.Min(k0 + Block, inFeatures);
                        float dot = 0f;
                        for (int k = k0; k < k1; k++)
                            dot += xRow[k] * wRow[k].ToSingle();
                        float scale = ((float*)xsAddress)[(long)i * blocks + j] * ws[n / Block * blocks + j];
                        acc += scale * dot;
                    }
                    if (bias != 0)
                        acc += ((float*)bias)[n];
                    ((float*)yAddress)[i * yStride + n] = acc;
                }
            }
            // every output is computed the same way whatever the threads: rows in parallel when the product is large
            if ((long)m * outFeatures * inFeatures < ParallelThreshold)
            {
                var xRow = new float[inFeatures];
                for (int i = 0; i < m; i++)
                    Row(i, xRow);
                return;
            }
            Parallel.For(0, m, () => new float[inFeatures], (i, _, xRow) => { Row(i, xRow); return xRow; }, _ => { });
        }
    }
}
