namespace DeepSeekKernels.Checkpoints;

/// <summary>Element sizes and header names of <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypeInfo
{
    static readonly (string Name, SafetensorsDType DType)[] Names =
    [
        ("BOOL", SafetensorsDType.BOOL), ("U8", SafetensorsDType.U8), ("I8", SafetensorsDType.I8),
        ("I16", SafetensorsDType.I16), ("I32", SafetensorsDType.I32), ("I64", SafetensorsDType.I64),
        ("F8_E4M3", SafetensorsDType.F8_E4M3), ("F8_E5M2", SafetensorsDType.F8_E5M2), ("F16", SafetensorsDType.F16),
        ("BF16", SafetensorsDType.BF16), ("F32", SafetensorsDType.F32), ("F64", SafetensorsDType.F64),
    ];

    /// <summary>Every header name this reader accepts, comma-separated (for error messages).</summary>
    public static string SupportedNames { get; } = string.Join(", ", Names.Select(n => n.Name));

    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 => 1,
        SafetensorsDType.I16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.I64 or SafetensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype."),
    };

    /// <summary>The name a safetensors header uses ("BF16", "F8_E4M3", ...).</summary>
    public static string HeaderName(this SafetensorsDType dtype)
    {
        foreach (var (name, value) in Names)
            if (value == dtype)
                return name;
        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype.");
    }

    /// <summary>Parses a header dtype name (exact, case-sensitive, as the format specifies).</summary>
    public static bool TryParse(string? name, out SafetensorsDType dtype)
    {
        foreach (var (n, value) in Names)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                dtype = value;
                return true;
            }
        }
        dtype = default;
        return false;
    }
}
