using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// A linear layer, <c>destination = x @ W^T (+ bias)</c>: effectively computes, for every row r of x and every
    /// output feature o, <c>destination[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o])</c>, with the dot product
    /// accumulated in float32 and the bias added after it. FP8 weights are dequantised element by element first,
    /// <c>W[o, c] = bf16((float)fp8[o, c] * scaleInv[o / BlockRows, c / BlockCols])</c> (<see cref="Numerics.Float8E4M3.Dequantize"/>), then dotted.
    /// </summary>
    /// <param name="x">[rows, weight.Cols] input; at least one row.</param>
    /// <param name="weight">[Rows = out, Cols = in] weight, float32, bfloat16, FP8 with block scales or INT4 with group scales and zero points (dequantised as <see cref="WeightMatrix"/> says); Count must be 1.</param>
    /// <param name="bias">[weight.Rows], or <c>default</c> for none.</param>
    /// <param name="destination">[rows, weight.Rows] output (at least that long; only those elements are written); must not overlap x, bias or weight.</param>
    /// <exception cref="ArgumentNullException"><paramref name="weight"/> is null.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, weight is a stack, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement Linear and does not fall back to the reference.</exception>
    public void Linear(DeviceTensor x, WeightMatrix weight, DeviceView<float> bias, DeviceTensor destination)
    {
        const string op = nameof(Linear);
        if (weight is null)
            ThrowHelper.ArgumentNull(op, nameof(weight));
        var rows = TensorChecks.InputRows(op, nameof(x), x, Runtime, weight.Cols, "weight.Cols");
        CheckWeight(op, nameof(weight), weight, x.Runtime);
        CheckOptionalView(op, nameof(bias), bias, x.Runtime);
        if (weight.Count != 1)
            ThrowHelper.Argument(op, nameof(weight), $"weight is a stack of {weight.Count} matrices; Linear takes one (use weight.Matrix(i), HeadwiseLinear or GroupedLinear).");
        if (!bias.IsNull)
            OpChecks.Length(op, nameof(bias), bias.Length, weight.Rows, "weight.Rows");
        var dst = TensorChecks.OutputRows(op, nameof(destination), destination, x.Runtime, rows.Dim(0), weight.Rows,
            SizeText.Of("rows * weight.Rows", rows.Dim(0), weight.Rows));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(x), rows);
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(bias), DeviceTensor.FromView(bias));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(weight), DeviceTensor.FromView(weight.FloatView));
        using var call = Dispatch(OpSignature.WithWeight(op, Activations(rows, dst), weight) with { StridedRows = Strided(rows, dst) }, weight);
        call.Backend.Linear(rows, weight, bias, dst);
    }

    /// <summary>
    /// Host-span <see cref="Linear(DeviceTensor, WeightMatrix, DeviceView{float}, DeviceTensor)"/>:
    /// <c>destination[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o])</c> over a weight in host memory (dense, FP8 block-scaled or
    /// INT4 group-wise, dequantised as <see cref="WeightMatrix"/> says), float32 accumulation, each output rounded once to
    /// <typeparamref name="T"/>. The arguments are checked here, then the operands are staged into this Ops' runtime (a
    /// copy in host memory on the CPU, an upload on a GPU; the reference, which has no runtime, stages into a shared CPU
    /// one) and the device-resident Linear runs: the same backend and the same result. Each call copies the weight: for
    /// many calls with one weight, upload it once and use the device-resident overload.
    /// </summary>
    /// <typeparam name="T">Activation type: <see cref="float"/> or <see cref="BFloat16"/>.</typeparam>
    /// <param name="x">[rows, weight.Cols] input; at least one row.</param>
    /// <param name="weight">The weight, [Rows = out, Cols = in].</param>
    /// <param name="bias">[weight.Rows], or empty for none.</param>
    /// <param name="destination">[rows, weight.Rows] output (at least that long; only those elements are written); must not overlap x, bias or weight.</param>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor BFloat16, or this Ops' backend does not run the signature.</exception>
    /// <exception cref="ArgumentException">A length is wrong, or destination overlaps an input; nothing is written.</exception>
    public void Linear<T>(ReadOnlySpan<T> x, in HostWeightMatrix weight, ReadOnlySpan<float> bias, Span<T> destination) where T : unmanaged
    {
        const string op = nameof(Linear);
        if (typeof(T) != typeof(float) && typeof(T) != typeof(BFloat16))
            ThrowHelper.NotSupported(op, $"x has element type {typeof(T).Name}; activations are float or BFloat16.");
        if (weight.Rows < 1)
            ThrowHelper.Argument(op, nameof(weight), "weight is a default HostWeightMatrix (make it with HostWeightMatrix.Dense, Fp8 or Int4).");
        if (weight.Count != 1)
            ThrowHelper.Argument(op, nameof(weight), $"weight is a stack of {weight.Count} matrices; Linear takes one (the grouped GEMMs take stacks).");
        int cols = weight.Cols, outs = weight.Rows;
        if (x.Length == 0 || x.Length % cols != 0)
            ThrowHelper.Argument(op, nameof(x), $"x has {x.Length} elements; a positive multiple of weight.Cols = {cols} (rows x in features).");
        int rows = x.Length / cols;
        long needed = (long)rows * outs;
        if (destination.Length < needed)
            ThrowHelper.Argument(op, nameof(destination), $"destination has {destination.Length} elements; rows * weight.Rows = {rows} * {outs} = {needed} are written.");
        if (!bias.IsEmpty)
            OpChecks.Length(op, nameof(bias), bias.Length, outs, "weight.Rows");
        var output = destination[..(int)needed];
        HostDisjoint(op, nameof(destination), output, nameof(x), x);
        HostDisjoint(op, nameof(destination), output, nameof(bias), bias);
        HostDisjoint(op, nameof(destination), output, "weight", weight.Data);
        HostDisjoint(op, nameof(destination), output, "weight.Scales", weight.Scales);
        HostDisjoint(op, nameof(destination), output, "weight.Zeros", weight.Zeros);

        using var stage = new HostStage(Runtime ?? HostStaging);
        var w = stage.Weight(weight);
        var dy = stage.InOut<T>(output);
        Linear(DeviceTensor.Of(stage.View(x), rows, cols), w, bias.IsEmpty ? default : stage.View(bias), DeviceTensor.Of(dy, rows, outs));
        HostStage.CopyBack(dy, output);
    }

    /// <summary>
    /// A SwiGLU MLP's gate and up projections with the activation fused in (one read of the fused weight, no
    /// [rows, 2 * half] intermediate): effectively computes, for every row r of x and every j &lt; half = weight.Rows / 2,
    /// <c>g = sum_c x[r, c] * W[j, c]</c> and <c>u = sum_c x[r, c] * W[half + j, c]</c> in float32, then
    /// <c>destination[r, j] = silu(g) * u</c> with <c>silu(g) = g / (1 + exp(-g))</c> in float32, rounded once to the
    /// destination's type. With float32 activations this is exactly <see cref="Linear"/> into [rows, 2 * half] followed by
    /// <see cref="SiluAndMul(DeviceTensor, DeviceTensor, int)"/>; with bfloat16 it skips the rounding of g and u.
    /// </summary>
    /// <param name="x">[rows, weight.Cols] input; at least one row; rows may be strided.</param>
    /// <param name="gateUp">The fused [2 * half, in] weight: the gate's rows, then the up projection's; Count 1; Rows even.</param>
    /// <param name="destination">[rows, half] output; rows may be strided; must not overlap x or the weight.</param>
    /// <exception cref="ArgumentNullException"><paramref name="gateUp"/> is null.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, the weight is a stack or has an odd number of rows, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back to the reference.</exception>
    public void LinearSiluMul(DeviceTensor x, WeightMatrix gateUp, DeviceTensor destination)
    {
        const string op = nameof(LinearSiluMul);
        if (gateUp is null)
            ThrowHelper.ArgumentNull(op, nameof(gateUp));
        var rows = TensorChecks.InputRows(op, nameof(x), x, Runtime, gateUp.Cols, "gateUp.Cols");
        CheckWeight(op, nameof(gateUp), gateUp, x.Runtime);
        if (gateUp.Count != 1)
            ThrowHelper.Argument(op, nameof(gateUp), $"gateUp is a stack of {gateUp.Count} matrices; {op} takes one fused [gate | up] matrix.");
        if (gateUp.Rows % 2 != 0)
            ThrowHelper.Argument(op, nameof(gateUp), $"gateUp has {gateUp.Rows} rows; a fused [gate | up] weight has an even number (gate's rows, then up's).");
        int half = gateUp.Rows / 2;
        var dst = TensorChecks.OutputRows(op, nameof(destination), destination, x.Runtime, rows.Dim(0), half,
            SizeText.Of("rows * gateUp.Rows / 2", rows.Dim(0), half));
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(x), rows);
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(gateUp), DeviceTensor.FromView(gateUp.FloatView));
        using var call = Dispatch(OpSignature.WithWeight(op, Activations(rows, dst), gateUp) with { StridedRows = Strided(rows, dst) }, gateUp);
        call.Backend.LinearSiluMul(rows, gateUp, dst);
    }

    /// <summary>
    /// Dequantises an FP8 weight to dense float32: effectively computes
    /// <c>destination[m, r, c] = bf16((float)fp8[m, r, c] * scaleInv[m, r / BlockRows, c / BlockCols])</c> (floor division;
    /// <see cref="Numerics.Float8E4M3.Dequantize"/>), for every matrix m of the stack. Loading uses it for small matrices.
    /// </summary>
    /// <param name="fp8Weight">An FP8 weight (<see cref="WeightMatrix.Fp8"/>), any Count.</param>
    /// <param name="destination">[Count, Rows, Cols] float32 output (at least that long); must not overlap the scales.</param>
    /// <exception cref="ArgumentNullException"><paramref name="fp8Weight"/> is null.</exception>
    /// <exception cref="NotSupportedException">The weight is not FP8, or the backend does not implement the op.</exception>
    /// <exception cref="ArgumentException">destination is default, on another runtime, too short or overlaps the scales.</exception>
    public void DequantizeFp8(WeightMatrix fp8Weight, DeviceView<float> destination)
    {
        const string op = nameof(DequantizeFp8);
        if (fp8Weight is null)
            ThrowHelper.ArgumentNull(op, nameof(fp8Weight));
        if (fp8Weight.ElementType != ElementType.Fp8E4M3)
            ThrowHelper.NotSupported(op, $"fp8Weight is stored as {fp8Weight.ElementType.Name()}; {op} takes an FP8 weight.");
        CheckWeight(op, nameof(fp8Weight), fp8Weight, null);
        CheckView(op, nameof(destination), destination, fp8Weight.Runtime);
        long elements = (long)fp8Weight.Count * fp8Weight.Rows * fp8Weight.Cols;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, elements,
            SizeText.Of("Count * Rows * Cols", fp8Weight.Count, fp8Weight.Rows, fp8Weight.Cols));
        var dst = destination.Slice(0, elements);
        OpChecks.Disjoint(op, nameof(destination), dst, "fp8Weight's scales", fp8Weight.ScaleInv);
        using var call = Dispatch(OpSignature.WithWeight(op, ElementType.F32, fp8Weight), fp8Weight);
        call.Backend.DequantizeFp8(fp8Weight, dst);
    }

    /// <summary>
    /// One small linear map per head (MLA's weight absorption): effectively computes, for every token t and head h,
    /// <c>destination[t, h, :] = W[h] @ x[t, h, :]</c>, i.e. <c>destination[t, h, o] = sum_c W[h][o, c] * x[t, h, c]</c>
    /// (float32 accumulation); with <paramref name="transpose"/>, <c>destination[t, h, c] = sum_o W[h][o, c] * x[t, h, o]</c>
    /// (<c>W[h]^T @ x[t, h, :]</c>, summed over o in order). FP8 weights dequantise as in <see cref="Linear"/>.
    /// </summary>
    /// <param name="x">[tokens, heads = weight.Count, in] where in = weight.Cols (weight.Rows when transposed); at least one token.</param>
    /// <param name="weight">A stack of one [Rows, Cols] matrix per head.</param>
    /// <param name="destination">[tokens, heads, out] where out = weight.Rows (weight.Cols when transposed); must not overlap x or weight.</param>
    /// <param name="transpose">Multiply by each W[h]^T instead (DeepSeek's q_nope absorption with kv_b_proj's W_UK as stored).</param>
    /// <exception cref="ArgumentNullException"><paramref name="weight"/> is null.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void HeadwiseLinear(DeviceTensor x, WeightMatrix weight, DeviceTensor destination, bool transpose = false)
    {
        const string op = nameof(HeadwiseLinear);
        if (weight is null)
            ThrowHelper.ArgumentNull(op, nameof(weight));
        int inDim = transpose ? weight.Rows : weight.Cols, outDim = transpose ? weight.Cols : weight.Rows;
        string inName = transpose ? "weight.Rows" : "weight.Cols", outName = transpose ? "weight.Cols" : "weight.Rows";
        DeviceTensor xs;
        if (!x.IsNull && x.Rank == 3)
        {
            TensorChecks.Check(op, nameof(x), x, Runtime, 3, TensorChecks.Activation);
            TensorChecks.NotEmpty(op, nameof(x), x, 0, "tokens");
            TensorChecks.Dim(op, nameof(x), x, 1, weight.Count, "weight.Count heads");
            TensorChecks.Dim(op, nameof(x), x, 2, inDim, inName);
            xs = x;
        }
        else
        {
            var rows = TensorChecks.InputRows(op, nameof(x), x, Runtime, (long)weight.Count * inDim, SizeText.Of(transpose ? "heads * weight.Rows" : "heads * weight.Cols", weight.Count, inDim));
            xs = rows.Reshape(rows.Dim(0), weight.Count, inDim);
        }
        CheckWeight(op, nameof(weight), weight, x.Runtime);
        long tokens = xs.Dim(0);
        DeviceTensor dst;
        if (destination.Rank == 3)
        {
            TensorChecks.Check(op, nameof(destination), destination, x.Runtime, 3, TensorChecks.Activation);
            TensorChecks.Dim(op, nameof(destination), destination, 0, tokens, "x's tokens");
            TensorChecks.Dim(op, nameof(destination), destination, 1, weight.Count, "weight.Count heads");
            TensorChecks.Dim(op, nameof(destination), destination, 2, outDim, outName);
            dst = destination;
        }
        else
        {
            dst = TensorChecks.OutputRows(op, nameof(destination), destination, x.Runtime, tokens, (long)weight.Count * outDim,
                SizeText.Of(transpose ? "tokens * heads * weight.Cols" : "tokens * heads * weight.Rows", tokens, weight.Count, outDim)).Reshape(tokens, weight.Count, outDim);
        }
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(x), xs);
        TensorChecks.Disjoint(op, nameof(destination), dst, nameof(weight), DeviceTensor.FromView(weight.FloatView));
        using var call = Dispatch(OpSignature.WithWeight(op, Activations(xs, dst), weight) with { StridedRows = Strided(xs, dst) }, weight);
        call.Backend.HeadwiseLinear(xs, weight, dst, transpose);
    }

    /// <summary>Whether any of the tensors (their last dimension dense, as checked) has rows with a stride other than their width.</summary>
    static bool Strided(params ReadOnlySpan<DeviceTensor> tensors)
    {
        foreach (var t in tensors)
            if (!t.IsNull && !t.IsContiguous)
                return true;
        return false;
    }
}
