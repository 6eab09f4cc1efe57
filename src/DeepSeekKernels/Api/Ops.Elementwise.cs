using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// Copies a block of columns between two row-major matrices (slices and concatenations of the last
    /// dimension): effectively computes <c>destination[r, destinationOffset + c] = source[r, sourceOffset + c]</c>
    /// for r &lt; rows, c &lt; width; every other element of destination is left as it is.
    /// </summary>
    /// <param name="source">[rows, sourceColumns] (at least that long).</param>
    /// <param name="sourceColumns">Row length of source (at least 1).</param>
    /// <param name="sourceOffset">First column read; sourceOffset + width &lt;= sourceColumns.</param>
    /// <param name="destination">[rows, destinationColumns] (at least that long); must not share memory with source's rows.</param>
    /// <param name="destinationColumns">Row length of destination (at least 1).</param>
    /// <param name="destinationOffset">First column written; destinationOffset + width &lt;= destinationColumns.</param>
    /// <param name="width">Columns copied (at least 1).</param>
    /// <param name="rows">Rows copied (at least 1).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size or offset is out of range.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, too short, or source and destination overlap.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void CopyColumns(DeviceTensor source, int sourceColumns, int sourceOffset, DeviceTensor destination,
        int destinationColumns, int destinationOffset, int width, int rows)
    {
        const string op = nameof(CopyColumns);
        source = Act(op, nameof(source), source, null);
        destination = Act(op, nameof(destination), destination, source.Runtime);
        OneElementType(op, nameof(source), source, nameof(destination), destination);
        OpChecks.AtLeast1(op, nameof(sourceColumns), sourceColumns);
        OpChecks.AtLeast1(op, nameof(destinationColumns), destinationColumns);
        OpChecks.AtLeast1(op, nameof(width), width);
        OpChecks.AtLeast1(op, nameof(rows), rows);
        OpChecks.NotNegative(op, nameof(sourceOffset), sourceOffset);
        OpChecks.NotNegative(op, nameof(destinationOffset), destinationOffset);
        if ((long)sourceOffset + width > sourceColumns)
            ThrowHelper.OutOfRange(op, nameof(sourceOffset), sourceOffset,
                $"columns [sourceOffset, sourceOffset + width) = [{sourceOffset}, {(long)sourceOffset + width}) are not inside sourceColumns = {sourceColumns}.");
        if ((long)destinationOffset + width > destinationColumns)
            ThrowHelper.OutOfRange(op, nameof(destinationOffset), destinationOffset,
                $"columns [destinationOffset, destinationOffset + width) = [{destinationOffset}, {(long)destinationOffset + width}) are not inside destinationColumns = {destinationColumns}.");
        long sourceElements = (long)rows * sourceColumns, destinationElements = (long)rows * destinationColumns;
        OpChecks.LongEnough(op, nameof(source), source.Length, sourceElements, SizeText.Of("rows * sourceColumns", rows, sourceColumns));
        OpChecks.LongEnough(op, nameof(destination), destination.Length, destinationElements,
            SizeText.Of("rows * destinationColumns", rows, destinationColumns));
        var src = source.Slice(0, sourceElements);
        var dst = destination.Slice(0, destinationElements);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(source), src);
        using var call = Dispatch(new OpSignature(op, Activations(src, dst)));
        call.Backend.CopyColumns(src, sourceColumns, sourceOffset, dst, destinationColumns, destinationOffset, width, rows);
    }

    /// <summary>
    /// The gated activation of a SwiGLU MLP: effectively computes, per row,
    /// <c>destination[r, i] = silu(x[r, i]) * x[r, intermediate + i]</c> with <c>silu(g) = g / (1 + exp(-g))</c>, in float32.
    /// </summary>
    /// <param name="x">[rows, 2 * intermediate] = [gate | up] (one fused gate_up projection); at least one row.</param>
    /// <param name="destination">[rows, intermediate] (at least that long); must not overlap x.</param>
    /// <param name="intermediate">The MLP's intermediate size (at least 1).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="intermediate"/> is less than 1.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination overlaps x.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void SiluAndMul(DeviceTensor x, DeviceTensor destination, int intermediate)
    {
        const string op = nameof(SiluAndMul);
        x = Act(op, nameof(x), x, null);
        destination = Act(op, nameof(destination), destination, x.Runtime);
        OneElementType(op, nameof(x), x, nameof(destination), destination);
        OpChecks.AtLeast1(op, nameof(intermediate), intermediate);
        int rows = OpChecks.Rows(op, nameof(x), x.Length, 2L * intermediate, SizeText.Of("2 * intermediate", 2, intermediate));
        long outputs = (long)rows * intermediate;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, SizeText.Of("rows * intermediate", rows, intermediate));
        var dst = destination.Slice(0, outputs);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(x), x);
        using var call = Dispatch(new OpSignature(op, Activations(x, dst)));
        call.Backend.SiluAndMul(x, dst, rows, intermediate);
    }

    /// <summary>
    /// Row-wise softmax: effectively computes, per row of <paramref name="rowLength"/> elements,
    /// <c>destination[i] = exp(x[i] - max(x)) / sum_j exp(x[j] - max(x))</c> in float32.
    /// </summary>
    /// <param name="x">[rows, rowLength]; at least one row.</param>
    /// <param name="destination">[rows, rowLength] (at least that long); may be exactly x (in place), must not overlap it otherwise.</param>
    /// <param name="rowLength">Elements per row (at least 1).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="rowLength"/> is less than 1.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination partially overlaps x.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void Softmax(DeviceTensor x, DeviceTensor destination, int rowLength)
    {
        const string op = nameof(Softmax);
        x = Act(op, nameof(x), x, null);
        destination = Act(op, nameof(destination), destination, x.Runtime);
        OneElementType(op, nameof(x), x, nameof(destination), destination);
        OpChecks.AtLeast1(op, nameof(rowLength), rowLength);
        int rows = OpChecks.Rows(op, nameof(x), x.Length, rowLength, "rowLength");
        OpChecks.LongEnough(op, nameof(destination), destination.Length, x.Length, "x's length");
        var dst = destination.Slice(0, x.Length);
        OpChecks.ExactOrDisjoint(op, nameof(destination), dst, nameof(x), x);
        using var call = Dispatch(new OpSignature(op, Activations(x, dst)));
        call.Backend.Softmax(x, dst, rows, rowLength);
    }

    /// <summary>Elementwise sum (residual adds): effectively computes <c>destination[i] = x[i] + y[i]</c> in float32.</summary>
    /// <param name="x">[n] (n at least 1).</param>
    /// <param name="y">[n].</param>
    /// <param name="destination">[n] (at least that long); may be exactly x or y (in place), must not overlap them otherwise.</param>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination partially overlaps an input.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void Add(DeviceTensor x, DeviceTensor y, DeviceTensor destination)
    {
        const string op = nameof(Add);
        x = Act(op, nameof(x), x, null);
        y = Act(op, nameof(y), y, x.Runtime);
        destination = Act(op, nameof(destination), destination, x.Runtime);
        OneElementType(op, nameof(x), x, nameof(y), y);
        OneElementType(op, nameof(x), x, nameof(destination), destination);
        if (x.Length == 0)
            ThrowHelper.Argument(op, nameof(x), "x is empty: there is nothing to add.");
        OpChecks.Length(op, nameof(y), y.Length, x.Length, "x's length");
        OpChecks.LongEnough(op, nameof(destination), destination.Length, x.Length, "x's length");
        var dst = destination.Slice(0, x.Length);
        OpChecks.ExactOrDisjoint(op, nameof(destination), dst, nameof(x), x);
        OpChecks.ExactOrDisjoint(op, nameof(destination), dst, nameof(y), y);
        using var call = Dispatch(new OpSignature(op, Activations(x, y, dst)));
        call.Backend.Add(x, y, dst);
    }

    /// <summary>Elementwise scaling: effectively computes <c>destination[i] = x[i] * factor</c> in float32.</summary>
    /// <param name="x">[n] (n at least 1).</param>
    /// <param name="factor">The multiplier; finite.</param>
    /// <param name="destination">[n] (at least that long); may be exactly x (in place), must not overlap it otherwise.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="factor"/> is not finite.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, a length is wrong, or destination partially overlaps x.</exception>
    /// <exception cref="NotSupportedException">This Ops' backend does not implement the op and does not fall back.</exception>
    public void Scale(DeviceTensor x, float factor, DeviceTensor destination)
    {
        const string op = nameof(Scale);
        x = Act(op, nameof(x), x, null);
        destination = Act(op, nameof(destination), destination, x.Runtime);
        OneElementType(op, nameof(x), x, nameof(destination), destination);
        OpChecks.Finite(op, nameof(factor), factor);
        if (x.Length == 0)
            ThrowHelper.Argument(op, nameof(x), "x is empty: there is nothing to scale.");
        OpChecks.LongEnough(op, nameof(destination), destination.Length, x.Length, "x's length");
        var dst = destination.Slice(0, x.Length);
        OpChecks.ExactOrDisjoint(op, nameof(destination), dst, nameof(x), x);
        using var call = Dispatch(new OpSignature(op, Activations(x, dst)));
        call.Backend.Scale(x, factor, dst);
    }

    /// <summary>The small ops' operands share one element type (f32 or bf16), as their kernels read and write them.</summary>
    static void OneElementType(string op, string first, DeviceTensor a, string name, DeviceTensor other)
    {
        if (other.ElementType != a.ElementType)
            ThrowHelper.NotSupported(op, $"{first} holds {a.ElementType.Name()} but {name} holds {other.ElementType.Name()}; {op}'s operands share one element type.");
    }
}
