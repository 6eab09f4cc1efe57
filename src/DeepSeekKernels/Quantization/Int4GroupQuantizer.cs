using System.Numerics.Tensors;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Quantization;

/// <summary>
/// Round-to-nearest INT4 group-wise quantisation of float32 weights into <see cref="WeightMatrix.Int4"/>'s layout, and its
/// host dequantisation: effectively computes, for each group of <c>groupSize</c> consecutive in features of a row,
/// <c>lo = min(min(w), 0)</c>, <c>hi = max(max(w), 0)</c>, <c>scale = bf16 rounded up of (hi - lo) / 15</c>,
/// <c>zero = round(-lo / scale)</c> (an integer in 0..15) and <c>q = clamp(round(w / scale + zero), 0, 15)</c>.
/// </summary>
/// <remarks>
/// <para>
/// Choices, and why. The range includes 0 (as GPTQ's quantiser does): the integer zero point then always lies in
/// 0..15, 0.0 dequantises exactly to 0, and the zero converts to GPTQ's and AWQ's 4-bit zeros
/// (<see cref="Int4Layout"/>); a group far from 0 on one side loses up to half its levels, which trained weights
/// (centred on 0) seldom pay. The zero point is rounded to an integer (GPTQ, AWQ) and stored as bf16, where 0..15 are
/// exact. The scale is rounded UP to bf16 (not to nearest), so the 16 levels still span the whole range after
/// rounding and the error bound below holds without exception. Rounding of <c>w / scale + zero</c> is to nearest,
/// ties to even, computed in float64.
/// </para>
/// <para>
/// Special groups: an all-zero group gets scale 1 and zero 0 (every code 0, dequantising to exactly 0). Inputs must be
/// finite with |w| &lt; 2^126 (about 8.5e37), so that 15 * scale cannot overflow float32 when dequantised; anything
/// else is refused. Tiny groups (range below about 1.5e-39) get a subnormal bf16 scale with few significant bits:
/// the bound still holds, in units of that scale.
/// </para>
/// <para>
/// Error bound, per element, with the dequantisation of <see cref="Dequantize(int, BFloat16, BFloat16)"/>:
/// <c>|w - deq(q(w))| &lt;= scale / 2 + |deq| * 2^-8</c>: half a quantisation step (every w lies within half a step
/// of a level, as the levels run from <c>-zero * scale &lt;= lo + scale / 2</c> to
/// <c>(15 - zero) * scale &gt;= hi - scale / 2</c>), plus bf16's rounding of the result (unit roundoff 2^-8; the
/// product <c>(q - zero) * scale</c> itself is exact in float32, having at most 12 significant bits).
/// </para>
/// </remarks>
public static class Int4GroupQuantizer
{
    const string QuantizeOp = "Int4GroupQuantizer.Quantize";
    const string DequantizeOp = "Int4GroupQuantizer.Dequantize";

    /// <summary>Largest magnitude accepted (exclusive): 2^126.</summary>
    public static readonly float MaxMagnitude = MathF.ScaleB(1f, 126);

    /// <summary>
    /// Quantises <paramref name="w"/> ([rows, cols] float32, row-major; a stack of matrices is quantised as count * rows
    /// rows, which is the same layout) group-wise along the columns: see the class remarks for the method and its bound.
    /// </summary>
    /// <param name="w">[rows, cols] weights, finite, |w| &lt; 2^126.</param>
    /// <param name="rows">Rows (out features; count * rows for a stack), at least 1.</param>
    /// <param name="cols">In features, at least 1 and a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">In features per group: a positive multiple of 32.</param>
    /// <returns>
    /// Packed: [rows, cols / 2] code pairs (element 2i of a row in the low nibble of byte i); Scales and Zeros:
    /// [rows, cols / groupSize] bfloat16. Exactly what <see cref="WeightMatrix.Int4"/> takes.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    /// <exception cref="ArgumentException">cols is not a multiple of groupSize, w's length is not rows * cols, or an element is not finite or too large.</exception>
    public static (Int4x2[] Packed, BFloat16[] Scales, BFloat16[] Zeros) Quantize(ReadOnlySpan<float> w, int rows, int cols, int groupSize = 128)
    {
        CheckShape(QuantizeOp, rows, cols, groupSize);
        long expected = (long)rows * cols;
        if (w.Length != expected)
            ThrowHelper.Argument(QuantizeOp, nameof(w), $"w has {w.Length} elements; rows * cols = {rows} * {cols} = {expected}.");
        CheckMagnitudes(QuantizeOp, w, MaxMagnitude, "2^126");
        int groupsPerRow = cols / groupSize;
        var packed = new Int4x2[expected / 2];
        var scales = new BFloat16[(long)rows * groupsPerRow];
        var zeros = new BFloat16[scales.Length];
        unsafe
        {
            fixed (float* source = w)
            fixed (Int4x2* codes = packed)
            fixed (BFloat16* scaleOut = scales, zeroOut = zeros)
            {
                // groups are independent: large matrices (a model's worth at load time) take every core
                nint s = (nint)source, c = (nint)codes, sc = (nint)scaleOut, z = (nint)zeroOut;
                long groups = scales.Length;
                const long GroupsPerTask = 1024;
                long tasks = (groups + GroupsPerTask - 1) / GroupsPerTask;
                if (expected < ParallelThreshold)
                    QuantizeGroups(s, c, sc, z, groupSize, 0, groups);
                else
                    Parallel.For(0, tasks, t => QuantizeGroups(s, c, sc, z, groupSize, t * GroupsPerTask, Math.Min(GroupsPerTask, groups - t * GroupsPerTask)));
            }
        }
        return (packed, scales, zeros);
    }

    const long ParallelThreshold = 1 << 20; // weights; below this one thread is fast enough

    /// <summary>Groups [first, first + count) of the row-major weights: their scales, zero points and codes.</summary>
    static unsafe void QuantizeGroups(nint source, nint codes, nint scaleOut, nint zeroOut, int groupSize, long first, long count)
    {
        for (long g = first; g < first + count; g++)
        {
            var group = new ReadOnlySpan<float>((float*)source + g * groupSize, groupSize);
            float lo = 0f, hi = 0f;
            for (int i = 0; i < group.Length; i++)
            {
                lo = MathF.Min(lo, group[i]);
                hi = MathF.Max(hi, group[i]);
            }
            var (scale, zero) = GroupParameters(lo, hi);
            ((BFloat16*)scaleOut)[g] = scale;
            ((BFloat16*)zeroOut)[g] = BFloat16.FromSingle(zero);
            double step = scale.ToSingle();
            byte* groupCodes = (byte*)codes + g * groupSize / 2;
            for (int i = 0; i < groupSize; i += 2)
                groupCodes[i / 2] = (byte)(Code(group[i], step, zero) | (Code(group[i + 1], step, zero) << 4));
        }
    }

    /// <summary>
    /// The scale (bf16, rounded up from (hi - lo) / 15; 1 for an all-zero group) and integer zero point (0..15) of a
    /// group whose range is [lo, hi] with lo &lt;= 0 &lt;= hi.
    /// </summary>
    static (BFloat16 Scale, int Zero) GroupParameters(float lo, float hi)
    {
        double range = (double)hi - lo;
        if (range == 0)
            return (BFloat16.One, 0);
        double exact = range / 15;
        var scale = BFloat16.FromSingle((float)exact);
        if (scale.ToSingle() < exact)
            scale = BFloat16.FromBits((ushort)(scale.Bits + 1)); // positive: the next bf16 up
        if (scale.Bits == 0)
            scale = BFloat16.FromBits(1); // below the smallest subnormal: the smallest positive bf16
        // -lo / scale lies in [0, range / scale] within [0, 15], so its rounding does too
        int zero = (int)Math.Round(-(double)lo / scale.ToSingle(), MidpointRounding.ToEven);
        return (scale, Math.Clamp(zero, 0, 15));
    }

    static int Code(float v, double step, int zero) => (int)Math.Clamp(Math.Round(v / step + zero, MidpointRounding.ToEven), 0, 15);

    /// <summary>
    /// One INT4 weight dequantised, the definition every backend follows: effectively computes
    /// <c>bf16(((float)q - (float)zero) * (float)scale)</c>, the subtraction and product in float32, rounded once to
    /// bfloat16 (ties to even), as FP8's <see cref="Float8E4M3.Dequantize"/> rounds to bf16.
    /// </summary>
    /// <param name="q">The unsigned code, 0..15.</param>
    /// <param name="scale">The group's scale.</param>
    /// <param name="zero">The group's zero point, in code units.</param>
    public static float Dequantize(int q, BFloat16 scale, BFloat16 zero) =>
        BFloat16.FromSingle(((float)q - zero.ToSingle()) * scale.ToSingle()).ToSingle();

    /// <summary>
    /// Dequantises a whole INT4 matrix (or stack, as count * rows rows) on the host: effectively computes
    /// <c>destination[r, c] = Dequantize(q[r, c], scales[r, c / groupSize], zeros[r, c / groupSize])</c>
    /// (<see cref="Dequantize(int, BFloat16, BFloat16)"/>), bit-exact with the reference backend's decoding.
    /// </summary>
    /// <param name="packed">[rows, cols / 2] code pairs, low nibble first.</param>
    /// <param name="scales">[rows, cols / groupSize] bfloat16.</param>
    /// <param name="zeros">[rows, cols / groupSize] bfloat16.</param>
    /// <param name="rows">Rows, at least 1.</param>
    /// <param name="cols">In features, a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">A positive multiple of 32.</param>
    /// <returns>[rows, cols] float32 (each a bfloat16 value).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    /// <exception cref="ArgumentException">cols is not a multiple of groupSize, or a length is wrong.</exception>
    public static float[] Dequantize(ReadOnlySpan<Int4x2> packed, ReadOnlySpan<BFloat16> scales, ReadOnlySpan<BFloat16> zeros,
        int rows, int cols, int groupSize = 128)
    {
        CheckShape(DequantizeOp, rows, cols, groupSize);
        CheckLengths(DequantizeOp, packed.Length, scales.Length, zeros.Length, rows, cols, groupSize);
        var result = new float[(long)rows * cols];
        int groupsPerRow = cols / groupSize;
        for (long i = 0; i < result.Length; i += 2)
        {
            long g = i / cols * groupsPerRow + i % cols / groupSize;
            var pair = packed[(int)(i / 2)];
            result[i] = Dequantize(pair.LowUnsigned, scales[(int)g], zeros[(int)g]);
            result[i + 1] = Dequantize(pair.HighUnsigned, scales[(int)g], zeros[(int)g]);
        }
        return result;
    }

    /// <summary>
    /// Every element of <paramref name="w"/> finite and below <paramref name="limit"/> in magnitude, else an ArgumentException
    /// naming the first that is not (checked before anything is quantised, with one vectorised pass when all are fine).
    /// </summary>
    internal static void CheckMagnitudes(string op, ReadOnlySpan<float> w, float limit, string limitText)
    {
        if (w.IsEmpty || MathF.Abs(TensorPrimitives.MaxMagnitude(w)) < limit) // NaN propagates and fails the test
            return;
        for (int i = 0; i < w.Length; i++)
        {
            if (!(MathF.Abs(w[i]) < limit))
                ThrowHelper.Argument(op, nameof(w), $"w[{i}] = {w[i]} is not finite or not below {limitText} in magnitude; quantisation needs finite weights.");
        }
    }

    /// <summary>rows and cols at least 1, groupSize a positive multiple of 32 that tiles cols (as <see cref="WeightMatrix.Int4"/>).</summary>
    internal static void CheckShape(string op, int rows, int cols, int groupSize)
    {
        if (rows < 1)
            ThrowHelper.OutOfRange(op, nameof(rows), rows, $"rows must be at least 1 (got {rows}).");
        if (cols < 1)
            ThrowHelper.OutOfRange(op, nameof(cols), cols, $"cols must be at least 1 (got {cols}).");
        WeightMatrix.CheckInt4Groups(op, cols, groupSize);
    }

    /// <summary>packed [rows, cols / 2], scales and zeros [rows, cols / groupSize], exactly.</summary>
    internal static void CheckLengths(string op, long packed, long scales, long zeros, int rows, int cols, int groupSize)
    {
        long bytes = (long)rows * (cols / 2), groups = (long)rows * (cols / groupSize);
        if (packed != bytes)
            ThrowHelper.Argument(op, nameof(packed), $"packed has {packed} bytes; rows * cols / 2 = {rows} * {cols} / 2 = {bytes}.");
        if (scales != groups)
            ThrowHelper.Argument(op, nameof(scales), $"scales has {scales} elements; rows * (cols / groupSize) = {rows} * ({cols} / {groupSize}) = {groups}.");
        if (zeros != groups)
            ThrowHelper.Argument(op, nameof(zeros), $"zeros has {zeros} elements; rows * (cols / groupSize) = {rows} * ({cols} / {groupSize}) = {groups}.");
    }
}
