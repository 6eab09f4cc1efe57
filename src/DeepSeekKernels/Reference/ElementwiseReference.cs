using System.Numerics.Tensors;

namespace DeepSeekKernels.Reference;

/// <summary>
/// The small ops, in float32: CopyColumns, SiluAndMul (<c>silu(g) = g / (1 + exp(-g))</c>, as PyTorch's CPU
/// kernel computes it), Softmax (maximum subtracted), Add and Scale. Exact in-place use (destination = x) works for
/// Softmax, Add and Scale. Arguments are assumed valid (the op API checks them).
/// </summary>
internal static unsafe class ElementwiseReference
{
    const long ParallelThreshold = 1 << 16; // elements

    /// <summary>y[r, yOffset + c] = x[r, xOffset + c] for r &lt; rows, c &lt; width.</summary>
    public static void CopyColumns(nint x, int xColumns, int xOffset, nint y, int yColumns, int yOffset, int width, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            new ReadOnlySpan<float>((float*)x + (long)r * xColumns + xOffset, width)
                .CopyTo(new Span<float>((float*)y + (long)r * yColumns + yOffset, width));
        }
    }

    /// <summary>y[r, i] = silu(x[r, i]) * x[r, intermediate + i].</summary>
    public static void SiluAndMul(nint x, nint y, int rows, int intermediate)
    {
        if ((long)rows * intermediate * 2 >= ParallelThreshold)
        {
            SiluAndMulInParallel(x, y, rows, intermediate);
            return;
        }
        for (int r = 0; r < rows; r++) // no closure on the serial path (the CPU backend's step allocates nothing)
            SiluAndMulOfRow(x, y, r, intermediate);
    }

    static void SiluAndMulInParallel(nint x, nint y, int rows, int intermediate) =>
        Parallel.For(0, rows, r => SiluAndMulOfRow(x, y, r, intermediate));

    static void SiluAndMulOfRow(nint x, nint y, int r, int intermediate) =>
        SiluAndMulRow(new ReadOnlySpan<float>((float*)x + 2L * r * intermediate, intermediate),
            new ReadOnlySpan<float>((float*)x + (2L * r + 1) * intermediate, intermediate),
            new Span<float>((float*)y + (long)r * intermediate, intermediate));

    /// <summary>One row of <see cref="SiluAndMul"/>: output[i] = silu(gate[i]) * up[i] (output may not overlap gate).</summary>
    public static void SiluAndMulRow(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        TensorPrimitives.Negate(gate, output);      // -g
        TensorPrimitives.Exp(output, output);       // exp(-g)
        TensorPrimitives.Add(output, 1f, output);   // 1 + exp(-g)
        TensorPrimitives.Divide(gate, output, output); // silu(g) = g / (1 + exp(-g))
        TensorPrimitives.Multiply(output, up, output);
    }

    /// <summary>Per row: y = exp(x - max(x)) / sum(exp(x - max(x))); y may be exactly x.</summary>
    public static void Softmax(nint x, nint y, int rows, int rowLength)
    {
        if ((long)rows * rowLength >= ParallelThreshold)
        {
            SoftmaxInParallel(x, y, rows, rowLength);
            return;
        }
        for (int r = 0; r < rows; r++)
            SoftmaxOfRow(x, y, r, rowLength);
    }

    static void SoftmaxInParallel(nint x, nint y, int rows, int rowLength) =>
        Parallel.For(0, rows, r => SoftmaxOfRow(x, y, r, rowLength));

    static void SoftmaxOfRow(nint x, nint y, int r, int rowLength)
    {
        var input = new ReadOnlySpan<float>((float*)x + (long)r * rowLength, rowLength);
        var output = new Span<float>((float*)y + (long)r * rowLength, rowLength);
        float max = TensorPrimitives.Max(input);
        TensorPrimitives.Subtract(input, max, output);
        TensorPrimitives.Exp(output, output);
        float sum = TensorPrimitives.Sum(output);
        TensorPrimitives.Divide(output, sum, output);
    }

    /// <summary>z = x + y (z may be exactly x or y).</summary>
    public static void Add(nint x, nint y, nint z, int length) =>
        TensorPrimitives.Add(new ReadOnlySpan<float>((float*)x, length), new ReadOnlySpan<float>((float*)y, length),
            new Span<float>((float*)z, length));

    /// <summary>y = x * factor (y may be exactly x).</summary>
    public static void Scale(nint x, float factor, nint y, int length) =>
        TensorPrimitives.Multiply(new ReadOnlySpan<float>((float*)x, length), factor, new Span<float>((float*)y, length));
}
