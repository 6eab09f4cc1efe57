using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>In features per FP8 activation scale (DeepGEMM's 1 x 128 per-token scaling), and the weight blocks <see cref="LinearW8A8"/> takes (128 x 128).</summary>
    public const int Fp8ActivationBlock = 128;

    /// <summary>
    /// Per-token FP8 quantisation of activations for the W8A8 linear layer (<see cref="LinearW8A8"/>), DeepGEMM's 1 x 128
    /// scaling: effectively computes, for every row i and every block j of 128 columns (the last one ragged when cols is not a
    /// multiple of 128), <c>amax = max_k |x[i, k]|</c> over the block, <c>s = amax == 0 ? 1 : amax / 448</c> (a NaN is the maximum), then
    /// <c>q[i, k] = e4m3(x[i, k] / s)</c> for every k of the block and <c>scales[i, j] = s</c>. The division and amax / 448 are
    /// float32 (correctly rounded), and e4m3 rounds to nearest even, saturating at ±448
    /// (<see cref="Float8E4M3.FromSingleSaturating"/>), so <c>q * s</c> is within half an e4m3 step of x. A block holding a
    /// NaN gets a NaN scale, one holding an infinity (and no NaN) an infinite one: a non-finite input is not clamped away.
    /// </summary>
    /// <param name="x">[m, cols] float32 or bfloat16 activations, rank 2 (rows may be strided: a column block of wider rows); at least one row and one column.</param>
    /// <param name="q">[m, cols] FP8 output, dense rows (at least that long; only those elements are written).</param>
    /// <param name="scales">[m, ceil(cols / 128)] float32 output (at least that long; only those elements are written).</param>
    /// <exception cref="ArgumentException">A view is default or on another runtime, x is not rank 2 or is empty, an output is too short, or outputs overlap x or each other.</exception>
    /// <exception cref="NotSupportedException">x is not float32 or bfloat16, or this Ops' backend does not implement the op and does not fall back.</exception>
    public void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales)
    {
        const string op = nameof(QuantizeFp8Activations);
        TensorChecks.Check(op, nameof(x), x, Runtime, 2, TensorChecks.Activation);
        TensorChecks.NotEmpty(op, nameof(x), x, 0, "rows");
        TensorChecks.NotEmpty(op, nameof(x), x, 1, "columns");
        CheckView(op, nameof(q), q, x.Runtime);
        CheckView(op, nameof(scales), scales, x.Runtime);
        long m = x.Dim(0), cols = x.Dim(1), blocks = (cols + Fp8ActivationBlock - 1) / Fp8ActivationBlock;
        OpChecks.LongEnough(op, nameof(q), q.Length, m * cols, SizeText.Of("m * cols", m, cols));
        OpChecks.LongEnough(op, nameof(scales), scales.Length, m * blocks, $"m * ceil(cols / {Fp8ActivationBlock}) = {m} * {blocks}");
        var qs = q.Slice(0, m * cols);
        var ss = scales.Slice(0, m * blocks);
        TensorChecks.Disjoint(op, nameof(q), DeviceTensor.FromView(qs), nameof(x), x);
        TensorChecks.Disjoint(op, nameof(scales), DeviceTensor.FromView(ss), nameof(x), x);
        OpChecks.Disjoint(op, nameof(scales), ss, nameof(q), qs);
        using var call = Dispatch(new OpSignature(op, x.ElementType) { StridedRows = Strided(x) });
        call.Backend.QuantizeFp8Activations(x, qs, ss);
    }

    /// <summary>
    /// The W8A8 linear layer of FP8 prefill (DeepGEMM's scaling): FP8 activations with a float32 scale per token and 128 in
    /// features (from <see cref="QuantizeFp8Activations"/>) times an FP8 weight with 128 x 128 block scales, both read as
    /// stored, never dequantised. Effectively computes, for every row i and output feature n,
    /// <c>destination[i, n] = round( sum_j (xScales[i, j] * ws[n / 128, j]) * (sum_{k in block j} qx[i, k] * qw[n, k]) + bias[n] )</c>
    /// with ws the weight's scaleInv: for each 128-wide block j of in features (the last ragged where in is not a multiple of
    /// 128), the block's dot product of the two FP8 value sets in float32 (each product of two e4m3 values is exact in
    /// float32), times the product of the two scales; the block results summed over j in order in float32, then the bias
    /// added, then one rounding to the destination's element type.
    /// </summary>
    /// <remarks>
    /// Against <see cref="Linear"/> on the float32 activations with the same FP8 weight, the difference is the activations'
    /// e4m3 rounding (3 mantissa bits: at most 2^-4 relative per element, against its 1 x 128 block's scale) and the weight's
    /// bf16 rounding that Linear applies and this op does not. On Gaussian activations and weights (m 32, in 1024, out 256)
    /// the outputs differ by 2.6% in relative norm, 1.3% when a few channels are 30x larger (measured on the reference:
    /// Fp8ActivationAccuracyTests, which bounds it at 3.5%); the FP8 weight itself costs about 2.6% against float32 weights.
    /// Within one block the summation order of a backend's kernel is free, so backends agree to float32 summation error.
    /// </remarks>
    /// <param name="qx">[m, in] FP8 activations, dense rows, in = weight.Cols; at least one row.</param>
    /// <param name="xScales">[m, ceil(in / 128)] float32 activation scales, exactly.</param>
    /// <param name="weight">[Rows = out, Cols = in] FP8 weight with 128 x 128 scale blocks (<see cref="WeightMatrix.Fp8"/>, DeepSeek-V3's form), Count 1; in a multiple of 16.</param>
    /// <param name="bias">[weight.Rows] float32, or <c>default</c> for none.</param>
    /// <param name="destination">[m, weight.Rows] float32 or bfloat16 output (rank 2, rows may be strided; or rank 1 at least that long); must not overlap the inputs.</param>
    /// <exception cref="ArgumentNullException"><paramref name="weight"/> is null.</exception>
    /// <exception cref="ArgumentException">
    /// A view is default or on another runtime, the weight's blocks are not 128 x 128, it is a stack, its in features are not a
    /// multiple of 16, a length is wrong, or destination overlaps an input.
    /// </exception>
    /// <exception cref="NotSupportedException">The weight is not FP8, the destination is not float32 or bfloat16, or the backend does not implement the op and does not fall back.</exception>
    public void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix weight, DeviceView<float> bias, DeviceTensor destination)
    {
        const string op = nameof(LinearW8A8);
        var (_, dst) = CheckW8A8(op, weight, qx, xScales, destination, "an FP8 weight", "Linear", "m");
        CheckOptionalView(op, nameof(bias), bias, qx.Runtime);
        if (weight.Count != 1)
            ThrowHelper.Argument(op, nameof(weight), $"weight is a stack of {weight.Count} matrices; {op} takes one (use weight.Matrix(i)).");
        if (!bias.IsNull)
            OpChecks.Length(op, nameof(bias), bias.Length, weight.Rows, "weight.Rows");
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(bias), DeviceTensor.FromView(bias));
        using var call = Dispatch(OpSignature.WithWeight(op, dst.ElementType, weight) with { StridedRows = Strided(dst) }, weight);
        call.Backend.LinearW8A8(qx, xScales, weight, bias, dst);
    }

    /// <summary>
    /// The MoE experts' W8A8 product (DeepGEMM's grouped "contiguous" FP8 GEMM): <see cref="LinearW8A8"/> per expert over rows
    /// grouped by expert. Effectively computes, for every expert e &lt; weight.Count, row r in
    /// <c>expertOffsets[e] .. expertOffsets[e + 1]</c> and output feature n,
    /// <c>destination[r, n] = round( sum_j (xScales[r, j] * ws_e[n / 128, j]) * (sum_{k in block j} qx[r, k] * qw_e[n, k]) )</c>
    /// with qw_e, ws_e matrix e of the stack and its scales: LinearW8A8's formula (no bias), in the same float32 order. Rows
    /// outside <c>expertOffsets[0] .. expertOffsets[Count]</c> are left as they are.
    /// </summary>
    /// <remarks>
    /// The offsets are device data, checked where they are read, as <see cref="GroupedLinear"/> checks them: each must be in
    /// [0, M] and none below the one before; the first bad one (out of range first, then out of order) is recorded in the
    /// error word (site GroupedLinearW8A8, "expertOffsets"), nothing is written, and the next synchronisation throws
    /// <see cref="DeviceIndexException"/>. Error bounds against the dequantising product: see <see cref="LinearW8A8"/>.
    /// </remarks>
    /// <param name="qx">[M, weight.Cols] FP8 activations, dense rows grouped by expert (<see cref="QuantizeFp8Activations"/> of <see cref="MoePermute"/>'s rows); at least one row.</param>
    /// <param name="xScales">[M, ceil(weight.Cols / 128)] float32 activation scales, exactly.</param>
    /// <param name="expertOffsets">[weight.Count + 1] (at least that long), from <see cref="MoePermute"/>.</param>
    /// <param name="weight">A stack of one FP8 [Rows = out, Cols = in] matrix per expert with 128 x 128 scale blocks (Count = experts); in a multiple of 16.</param>
    /// <param name="destination">[M, weight.Rows] float32 or bfloat16 (rank 2, rows may be strided; or rank 1 at least that long); must not overlap an input.</param>
    /// <exception cref="ArgumentNullException"><paramref name="weight"/> is null.</exception>
    /// <exception cref="ArgumentException">
    /// A view is default or on another runtime, the weight's blocks are not 128 x 128, its in features are not a multiple of
    /// 16, a length is wrong, or destination overlaps an input.
    /// </exception>
    /// <exception cref="NotSupportedException">The weight is not FP8, the destination is not float32 or bfloat16, or the backend does not implement the op and does not fall back.</exception>
    public void GroupedLinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> expertOffsets, WeightMatrix weight, DeviceTensor destination)
    {
        const string op = nameof(GroupedLinearW8A8);
        var (m, dst) = CheckW8A8(op, weight, qx, xScales, destination, "a stack of FP8 weights", "GroupedLinear", "M");
        CheckView(op, nameof(expertOffsets), expertOffsets, qx.Runtime);
        OpChecks.LongEnough(op, nameof(expertOffsets), expertOffsets.Length, weight.Count + 1L, SizeText.PlusOne("weight.Count + 1", weight.Count));
        var offsets = expertOffsets.Slice(0, weight.Count + 1L);
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(expertOffsets), DeviceTensor.FromView(offsets));
        using var call = Dispatch(OpSignature.WithWeight(op, dst.ElementType, weight) with { StridedRows = Strided(dst) }, weight);
        call.Backend.GroupedLinearW8A8(qx, xScales, offsets, weight, dst, m);
    }

    /// <summary>
    /// What LinearW8A8 and GroupedLinearW8A8 both check: the weight (not null, FP8 with 128 x 128 blocks, in features a
    /// multiple of 16), the activation views (qx's runtime, xScales on it), qx whole rows of the in features and xScales one
    /// per row and block, and the destination [rows, weight.Rows], apart from qx, xScales and the weight. Returns the rows
    /// and the destination as rank 2. <paramref name="what"/> names the weight the op takes; <paramref name="dequantising"/>
    /// the op to use for the others; <paramref name="rows"/> how the messages call the rows.
    /// </summary>
    (int Rows, DeviceTensor Destination) CheckW8A8(string op, WeightMatrix weight, DeviceView<Float8E4M3> qx, DeviceView<float> xScales,
        DeviceTensor destination, string what, string dequantising, string rows)
    {
        if (weight is null)
            ThrowHelper.ArgumentNull(op, nameof(weight));
        if (weight.Scheme != WeightScheme.Fp8Block)
            ThrowHelper.NotSupported(op, $"weight is {weight}; {op} takes {what} with {Fp8ActivationBlock} x {Fp8ActivationBlock} block scales (use {dequantising} for dense and INT4 weights).");
        CheckView(op, nameof(qx), qx, null);
        CheckView(op, nameof(xScales), xScales, qx.Runtime);
        CheckWeight(op, nameof(weight), weight, qx.Runtime);
        if (weight.BlockRows != Fp8ActivationBlock || weight.BlockCols != Fp8ActivationBlock)
            ThrowHelper.Argument(op, nameof(weight), $"weight has {weight.BlockRows} x {weight.BlockCols} scale blocks; {op} takes {Fp8ActivationBlock} x {Fp8ActivationBlock} (DeepSeek-V3's), "
                + $"whose columns line up with the activations' 1 x 128 scales (use {dequantising} for other blocks).");
        if (weight.Cols % 16 != 0)
            ThrowHelper.Argument(op, nameof(weight), $"weight has {weight.Cols} in features (Cols); {op} needs a multiple of 16 (the FP8 tensor-core step along k).");
        int m = OpChecks.Rows(op, nameof(qx), qx.Length, weight.Cols, "weight.Cols");
        OpChecks.Length(op, nameof(xScales), xScales.Length, (long)m * weight.ScaleCols,
            $"{rows} * ceil(weight.Cols / {Fp8ActivationBlock}) = {m} * {weight.ScaleCols}");
        var dst = TensorChecks.OutputRows(op, nameof(destination), destination, qx.Runtime, m, weight.Rows, $"{rows} * weight.Rows = {m} * {weight.Rows}");
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(qx), DeviceTensor.FromView(qx));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(xScales), DeviceTensor.FromView(xScales));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(weight), DeviceTensor.FromView(weight.Fp8Data));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(weight), DeviceTensor.FromView(weight.ScaleInv));
        return (m, dst);
    }
}
