namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// One tensor of a safetensors file, as its header describes it, after validation: its bytes lie at
/// [<see cref="ByteOffset"/>, <see cref="ByteOffset"/> + <see cref="ByteLength"/>) of <see cref="File"/>,
/// row-major, little-endian, and <see cref="ByteLength"/> = <see cref="ElementCount"/> * element size.
/// </summary>
public sealed class TensorInfo
{
    internal TensorInfo(string name, SafetensorsDType dtype, long[] shape, long elementCount, long byteOffset, long byteLength, SafetensorsFile file)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        ElementCount = elementCount;
        ByteOffset = byteOffset;
        ByteLength = byteLength;
        File = file;
    }

    /// <summary>The tensor's name (<c>model.layers.0.self_attn.q_a_proj.weight</c>).</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public SafetensorsDType DType { get; }

    /// <summary>Dimensions, outermost first (a linear weight is [out_features, in_features]); empty for a scalar. Do not modify.</summary>
    public long[] Shape { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>Offset of the first byte from the start of the file (not of the data section).</summary>
    public long ByteOffset { get; }

    /// <summary>Number of bytes: <see cref="ElementCount"/> * the dtype's size.</summary>
    public long ByteLength { get; }

    /// <summary>The file that holds the tensor.</summary>
    public SafetensorsFile File { get; }

    /// <summary>The shape as "[a, b]".</summary>
    public string ShapeText => FormatShape(Shape);

    /// <summary>True when <see cref="Shape"/> equals <paramref name="shape"/>.</summary>
    public bool HasShape(ReadOnlySpan<long> shape) => Shape.AsSpan().SequenceEqual(shape);

    /// <summary>Formats a shape as "[a, b]".</summary>
    public static string FormatShape(ReadOnlySpan<long> shape)
    {
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++)
            parts[i] = shape[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
        return "[" + string.Join(", ", parts) + "]";
    }

    /// <summary>"name DTYPE [a, b]".</summary>
    public override string ToString() => $"{Name} {DType.HeaderName()} {ShapeText}";
}
