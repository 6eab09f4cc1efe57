using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// RMSNorm over rows of <paramref name="rowLength"/> elements: effectively computes, per row,
    /// <c>destination[i] = x[i] / sqrt(mean(x^2) + epsilon) * weight[i]</c> with fp32 accumulation and one
    /// rounding to <typeparamref name="T"/>.
    /// </summary>
    /// <typeparam name="T">Activation type: <see cref="float"/> or <see cref="BFloat16"/>.</typeparam>
    /// <typeparam name="TWeight">Weight type: <see cref="float"/> or <see cref="BFloat16"/>.</typeparam>
    /// <param name="x">[rows, rowLength] input; at least one row.</param>
    /// <param name="weight">[rowLength] scale.</param>
    /// <param name="destination">[rows, rowLength] output; may be exactly <paramref name="x"/> (in place).</param>
    /// <param name="rowLength">Elements per row (the hidden size).</param>
    /// <param name="epsilon">Added to the mean square; finite and &gt; 0.</param>
    /// <exception cref="NotSupportedException">An element type is not f32 or bf16.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="rowLength"/> or <paramref name="epsilon"/> is out of range.</exception>
    /// <exception cref="ArgumentException">A length is wrong, <paramref name="destination"/> is too short, or outputs overlap inputs other than exactly.</exception>
    public void RmsNorm<T, TWeight>(ReadOnlySpan<T> x, ReadOnlySpan<TWeight> weight, Span<T> destination, int rowLength, float epsilon)
        where T : unmanaged where TWeight : unmanaged
    {
        const string op = nameof(RmsNorm);
        var shape = RmsNormChecks.Validate<T, TWeight>(op, rowLength, epsilon, weight.Length, x.Length, null, null, destination.Length,
            new RmsNormChecks.OverlapFacts(
                DestinationWeight: Overlaps.Of<T, TWeight>(destination[..Math.Min(destination.Length, x.Length)], weight),
                DestinationX: Overlaps.Of<T, T>(destination[..Math.Min(destination.Length, x.Length)], x)));
        destination = destination[..x.Length];
        if (!StagesThroughDevice)
        {
            RmsNormReference.RmsNorm(x, weight, destination, rowLength, epsilon);
            return;
        }
        using var dx = StagingRuntime.Upload(x);
        using var dw = StagingRuntime.Upload(weight);
        using var dy = StagingRuntime.Allocate<T>(x.Length);
        using (var call = Dispatch(RmsNormSignature<T, TWeight>(op)))
            call.Backend.RmsNorm<T, TWeight>(dx, default, dw, dy, default, shape.Rows, rowLength, epsilon);
        dy.CopyToHost(destination);
    }

    /// <summary>
    /// Fused residual add and RMSNorm: effectively computes, per row,
    /// <c>residualOut = x + residual</c> (rounded to <typeparamref name="T"/>) and
    /// <c>destination = residualOut / sqrt(mean(residualOut^2) + epsilon) * weight</c>, the pair every
    /// DeepSeek and Llama layer starts with.
    /// </summary>
    /// <param name="x">[rows, rowLength] the layer's output to add.</param>
    /// <param name="residual">[rows, rowLength] the residual stream.</param>
    /// <param name="weight">[rowLength] scale.</param>
    /// <param name="residualOut">[rows, rowLength] receives x + residual; may be exactly <paramref name="x"/> or <paramref name="residual"/>.</param>
    /// <param name="destination">[rows, rowLength] the normalised output; may be exactly <paramref name="x"/> or <paramref name="residual"/>, never <paramref name="residualOut"/>.</param>
    /// <param name="rowLength">Elements per row.</param>
    /// <param name="epsilon">Added to the mean square; finite and &gt; 0.</param>
    public void AddRmsNorm<T, TWeight>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<TWeight> weight,
        Span<T> residualOut, Span<T> destination, int rowLength, float epsilon)
        where T : unmanaged where TWeight : unmanaged
    {
        const string op = nameof(AddRmsNorm);
        ReadOnlySpan<T> dst = destination[..Math.Min(destination.Length, x.Length)];
        ReadOnlySpan<T> rOut = residualOut[..Math.Min(residualOut.Length, x.Length)];
        var shape = RmsNormChecks.Validate<T, TWeight>(op, rowLength, epsilon, weight.Length, x.Length, residual.Length,
            residualOut.Length, destination.Length,
            new RmsNormChecks.OverlapFacts(
                DestinationWeight: Overlaps.Of(dst, weight),
                DestinationX: Overlaps.Of(dst, x),
                DestinationResidual: Overlaps.Of(dst, residual),
                ResidualOutWeight: Overlaps.Of(rOut, weight),
                ResidualOutX: Overlaps.Of(rOut, x),
                ResidualOutResidual: Overlaps.Of(rOut, residual),
                ResidualOutDestination: Overlaps.Of(rOut, dst)));
        destination = destination[..x.Length];
        residualOut = residualOut[..x.Length];
        if (!StagesThroughDevice)
        {
            RmsNormReference.AddRmsNorm(x, residual, weight, residualOut, destination, rowLength, epsilon);
            return;
        }
        using var dx = StagingRuntime.Upload(x);
        using var dres = StagingRuntime.Upload(residual);
        using var dw = StagingRuntime.Upload(weight);
        using var dr = StagingRuntime.Allocate<T>(x.Length);
        using var dy = StagingRuntime.Allocate<T>(x.Length);
        using (var call = Dispatch(RmsNormSignature<T, TWeight>(op)))
            call.Backend.RmsNorm<T, TWeight>(dx, dres, dw, dy, dr, shape.Rows, rowLength, epsilon);
        dr.CopyToHost(residualOut);
        dy.CopyToHost(destination);
    }

    /// <summary>Device-resident <see cref="RmsNorm{T, TWeight}(ReadOnlySpan{T}, ReadOnlySpan{TWeight}, Span{T}, int, float)"/>: enqueued on the runtime's stream.</summary>
    public void RmsNorm<T, TWeight>(DeviceView<T> x, DeviceView<TWeight> weight, DeviceView<T> destination, int rowLength, float epsilon)
        where T : unmanaged where TWeight : unmanaged
    {
        const string op = nameof(RmsNorm);
        RmsNormChecks.CheckTypes<T, TWeight>(op);
        CheckView(op, nameof(x), x, null);
        CheckView(op, nameof(weight), weight, x.Runtime);
        CheckView(op, nameof(destination), destination, x.Runtime);
        var dst = destination.Slice(0, Math.Min(destination.Length, x.Length));
        var shape = RmsNormChecks.Validate<T, TWeight>(op, rowLength, epsilon, weight.Length, x.Length, null, null, destination.Length,
            new RmsNormChecks.OverlapFacts(
                DestinationWeight: Overlaps.Of(dst, weight),
                DestinationX: Overlaps.Of(dst, x)));
        using var call = Dispatch(RmsNormSignature<T, TWeight>(op));
        call.Backend.RmsNorm<T, TWeight>(x, default, weight, dst, default, shape.Rows, rowLength, epsilon);
    }

    /// <summary>Device-resident <see cref="AddRmsNorm{T, TWeight}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{TWeight}, Span{T}, Span{T}, int, float)"/>: enqueued on the runtime's stream.</summary>
    public void AddRmsNorm<T, TWeight>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TWeight> weight,
        DeviceView<T> residualOut, DeviceView<T> destination, int rowLength, float epsilon)
        where T : unmanaged where TWeight : unmanaged
    {
        const string op = nameof(AddRmsNorm);
        RmsNormChecks.CheckTypes<T, TWeight>(op);
        CheckView(op, nameof(x), x, null);
        CheckView(op, nameof(residual), residual, x.Runtime);
        CheckView(op, nameof(weight), weight, x.Runtime);
        CheckView(op, nameof(residualOut), residualOut, x.Runtime);
        CheckView(op, nameof(destination), destination, x.Runtime);
        var dst = destination.Slice(0, Math.Min(destination.Length, x.Length));
        var rOut = residualOut.Slice(0, Math.Min(residualOut.Length, x.Length));
        var shape = RmsNormChecks.Validate<T, TWeight>(op, rowLength, epsilon, weight.Length, x.Length, residual.Length,
            residualOut.Length, destination.Length,
            new RmsNormChecks.OverlapFacts(
                DestinationWeight: Overlaps.Of(dst, weight),
                DestinationX: Overlaps.Of(dst, x),
                DestinationResidual: Overlaps.Of(dst, residual),
                ResidualOutWeight: Overlaps.Of(rOut, weight),
                ResidualOutX: Overlaps.Of(rOut, x),
                ResidualOutResidual: Overlaps.Of(rOut, residual),
                ResidualOutDestination: Overlaps.Of(rOut, dst)));
        using var call = Dispatch(RmsNormSignature<T, TWeight>(op));
        call.Backend.RmsNorm<T, TWeight>(x, residual, weight, dst, rOut, shape.Rows, rowLength, epsilon);
    }

    /// <summary>RMSNorm's signature: x's element type and the weight vector's (no scheme: it is not a WeightMatrix); rows are dense.</summary>
    static OpSignature RmsNormSignature<T, TWeight>(string op) where T : unmanaged where TWeight : unmanaged =>
        new(op, ElementTypes.Of<T>()) { Weight = ElementTypes.Of<TWeight>() };

    /// <summary>
    /// <see cref="RmsNorm{T, TWeight}(DeviceView{T}, DeviceView{TWeight}, DeviceView{T}, int, float)"/> on activation
    /// tensors (f32 or bf16, both the same type): the form the model code calls whatever its activation type. Contiguous
    /// tensors are read as [rows, rowLength]; rank-2 tensors [rows, rowLength] may have strided rows (a column block of a
    /// wider buffer, e.g. MLA's latent part of each kv_a row, normed in place), which the signature says.
    /// </summary>
    public void RmsNorm<TWeight>(DeviceTensor x, DeviceView<TWeight> weight, DeviceTensor destination, int rowLength, float epsilon)
        where TWeight : unmanaged
    {
        const string op = nameof(RmsNorm);
        if (!x.IsNull && x.Rank == 2 && !x.IsContiguous || !destination.IsNull && destination.Rank == 2 && !destination.IsContiguous)
        {
            RmsNormRows(x, weight, destination, rowLength, epsilon);
            return;
        }
        x = Act(op, nameof(x), x, null);
        destination = Act(op, nameof(destination), destination, x.Runtime);
        SameActivationType(op, x, nameof(destination), destination);
        if (x.ElementType == ElementType.BF16)
            RmsNorm(x.AsView<BFloat16>(), weight, destination.AsView<BFloat16>(), rowLength, epsilon);
        else
            RmsNorm(x.AsView<float>(), weight, destination.AsView<float>(), rowLength, epsilon);
    }

    /// <summary>
    /// <see cref="AddRmsNorm{T, TWeight}(DeviceView{T}, DeviceView{T}, DeviceView{TWeight}, DeviceView{T}, DeviceView{T}, int, float)"/>
    /// on activation tensors (f32 or bf16, all the same type, contiguous).
    /// </summary>
    public void AddRmsNorm<TWeight>(DeviceTensor x, DeviceTensor residual, DeviceView<TWeight> weight, DeviceTensor residualOut,
        DeviceTensor destination, int rowLength, float epsilon) where TWeight : unmanaged
    {
        const string op = nameof(AddRmsNorm);
        x = Act(op, nameof(x), x, null);
        residual = Act(op, nameof(residual), residual, x.Runtime);
        residualOut = Act(op, nameof(residualOut), residualOut, x.Runtime);
        destination = Act(op, nameof(destination), destination, x.Runtime);
        SameActivationType(op, x, nameof(residual), residual);
        SameActivationType(op, x, nameof(residualOut), residualOut);
        SameActivationType(op, x, nameof(destination), destination);
        if (x.ElementType == ElementType.BF16)
            AddRmsNorm(x.AsView<BFloat16>(), residual.AsView<BFloat16>(), weight, residualOut.AsView<BFloat16>(), destination.AsView<BFloat16>(), rowLength, epsilon);
        else
            AddRmsNorm(x.AsView<float>(), residual.AsView<float>(), weight, residualOut.AsView<float>(), destination.AsView<float>(), rowLength, epsilon);
    }

    /// <summary>RMSNorm over strided rows: x and destination [rows, rowLength], the same tensor (in place) or apart.</summary>
    void RmsNormRows<TWeight>(DeviceTensor x, DeviceView<TWeight> weight, DeviceTensor destination, int rowLength, float epsilon)
        where TWeight : unmanaged
    {
        const string op = nameof(RmsNorm);
        RmsNormChecks.CheckTypes<float, TWeight>(op);
        TensorChecks.Check(op, nameof(x), x, Runtime, 2, TensorChecks.Activation);
        CheckView(op, nameof(weight), weight, x.Runtime);
        TensorChecks.Check(op, nameof(destination), destination, x.Runtime, 2, x.ElementType);
        OpChecks.AtLeast1(op, nameof(rowLength), rowLength);
        if (!float.IsFinite(epsilon) || epsilon <= 0)
            ThrowHelper.OutOfRange(op, nameof(epsilon), epsilon, $"epsilon must be finite and > 0 (got {epsilon}).");
        TensorChecks.NotEmpty(op, nameof(x), x, 0, "rows");
        TensorChecks.Dim(op, nameof(x), x, 1, rowLength, "rowLength");
        TensorChecks.Dim(op, nameof(destination), destination, 0, x.Dim(0), "x's rows");
        TensorChecks.Dim(op, nameof(destination), destination, 1, rowLength, "rowLength");
        OpChecks.Length(op, nameof(weight), weight.Length, rowLength, "rowLength");
        TensorChecks.ExactOrDisjoint(op, nameof(destination), destination, nameof(x), x);
        using var call = Dispatch(new OpSignature(op, x.ElementType) { Weight = ElementTypes.Of<TWeight>(), StridedRows = true });
        call.Backend.RmsNormRows(x, weight, destination, epsilon);
    }

    static void SameActivationType(string op, DeviceTensor x, string name, DeviceTensor other)
    {
        if (other.ElementType != x.ElementType)
            ThrowHelper.NotSupported(op, $"x holds {x.ElementType.Name()} but {name} holds {other.ElementType.Name()}; RMSNorm's activations share one type.");
    }
}

/// <summary>The argument checks of RMSNorm, shared by the host and device forms, in one fixed order.</summary>
internal static class RmsNormChecks
{
    /// <summary>How outputs share memory with the other operands (None where the operand is absent).</summary>
    public readonly record struct OverlapFacts(
        Overlap DestinationWeight = Overlap.None,
        Overlap DestinationX = Overlap.None,
        Overlap DestinationResidual = Overlap.None,
        Overlap ResidualOutWeight = Overlap.None,
        Overlap ResidualOutX = Overlap.None,
        Overlap ResidualOutResidual = Overlap.None,
        Overlap ResidualOutDestination = Overlap.None);

    public readonly record struct Shape(int Rows);

    public static void CheckTypes<T, TWeight>(string op) where T : unmanaged where TWeight : unmanaged
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(BFloat16))
            ThrowHelper.NotSupported(op, $"x has element type {typeof(T).Name}; {op} supports float and BFloat16 activations.");
        if (typeof(TWeight) != typeof(float) && typeof(TWeight) != typeof(BFloat16))
            ThrowHelper.NotSupported(op, $"weight has element type {typeof(TWeight).Name}; {op} supports float and BFloat16 weights.");
    }

    /// <summary>
    /// Order: element types; rowLength; epsilon; weight length; x length (at least one whole row);
    /// residual length; residualOut and destination long enough; then overlaps.
    /// </summary>
    public static Shape Validate<T, TWeight>(string op, int rowLength, float epsilon, long weightLength, long xLength,
        long? residualLength, long? residualOutLength, long destinationLength, OverlapFacts overlaps)
        where T : unmanaged where TWeight : unmanaged
    {
        CheckTypes<T, TWeight>(op);
        if (rowLength < 1)
            ThrowHelper.OutOfRange(op, "rowLength", rowLength, $"rowLength must be at least 1 (got {rowLength}).");
        if (!float.IsFinite(epsilon) || epsilon <= 0f)
            ThrowHelper.OutOfRange(op, "epsilon", epsilon, $"epsilon must be finite and greater than 0 (got {epsilon}).");
        if (weightLength != rowLength)
            ThrowHelper.Argument(op, "weight", $"weight has {weightLength} elements; it needs rowLength = {rowLength}.");
        if (xLength == 0)
            ThrowHelper.Argument(op, "x", "x is empty: there are zero rows to normalise.");
        if (xLength % rowLength != 0)
            ThrowHelper.Argument(op, "x", $"x has {xLength} elements, not a whole number of rows of {rowLength}.");
        long rows = xLength / rowLength;
        if (rows > int.MaxValue)
            ThrowHelper.Argument(op, "x", $"x has {rows} rows; at most {int.MaxValue} are supported.");
        if (residualLength is long residual && residual != xLength)
            ThrowHelper.Argument(op, "residual", $"residual has {residual} elements; it must match x ({xLength}).");
        if (residualOutLength is long residualOut && residualOut < xLength)
            ThrowHelper.Argument(op, "residualOut", $"residualOut is too short: {residualOut} elements for {xLength}.");
        if (destinationLength < xLength)
            ThrowHelper.Argument(op, "destination", $"destination is too short: {destinationLength} elements for {xLength}.");

        if (overlaps.DestinationWeight != Overlap.None)
            ThrowHelper.Argument(op, "destination", "destination overlaps weight.");
        if (overlaps.ResidualOutWeight != Overlap.None)
            ThrowHelper.Argument(op, "residualOut", "residualOut overlaps weight.");
        if (overlaps.ResidualOutDestination != Overlap.None)
            ThrowHelper.Argument(op, "destination", "destination overlaps residualOut; the two outputs must be separate.");
        if (overlaps.DestinationX == Overlap.Partial)
            ThrowHelper.Argument(op, "destination", "destination partially overlaps x; an output may share an input's memory only exactly (in place).");
        if (overlaps.DestinationResidual == Overlap.Partial)
            ThrowHelper.Argument(op, "destination", "destination partially overlaps residual; an output may share an input's memory only exactly (in place).");
        if (overlaps.ResidualOutX == Overlap.Partial)
            ThrowHelper.Argument(op, "residualOut", "residualOut partially overlaps x; an output may share an input's memory only exactly (in place).");
        if (overlaps.ResidualOutResidual == Overlap.Partial)
            ThrowHelper.Argument(op, "residualOut", "residualOut partially overlaps residual; an output may share an input's memory only exactly (in place).");
        return new Shape((int)rows);
    }
}
