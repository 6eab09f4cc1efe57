using DeepSeekKernels.Bindings;

namespace DeepSeekKernels.Numerics;

/// <summary>The element types device buffers and ops know. Values match <c>dsk_dtype</c> at the C boundary.</summary>
public enum ElementType
{
    /// <summary>IEEE float32 (<see cref="float"/>).</summary>
    F32 = DskDType.F32,
    /// <summary>bfloat16 (<see cref="BFloat16"/>).</summary>
    BF16 = DskDType.BF16,
    /// <summary>IEEE float16 (<see cref="Half"/>).</summary>
    F16 = DskDType.F16,
    /// <summary>float8 e4m3fn (<see cref="Float8E4M3"/>).</summary>
    Fp8E4M3 = DskDType.Fp8E4M3,
    /// <summary>packed int4 pairs (<see cref="Int4x2"/>; signed, or unsigned with a zero point in <see cref="WeightMatrix.Int4"/> weights).</summary>
    Int4 = DskDType.Int4,
    /// <summary>int32 (<see cref="int"/>): token ids, positions, expert ids and offsets.</summary>
    I32 = DskDType.I32,
}

/// <summary>Maps CLR element types to <see cref="ElementType"/>.</summary>
public static class ElementTypes
{
    /// <summary>The <see cref="ElementType"/> of <typeparamref name="T"/>, or null if it is not one we know.</summary>
    public static ElementType? TryOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? ElementType.F32
        : typeof(T) == typeof(BFloat16) ? ElementType.BF16
        : typeof(T) == typeof(Half) ? ElementType.F16
        : typeof(T) == typeof(Float8E4M3) ? ElementType.Fp8E4M3
        : typeof(T) == typeof(Int4x2) ? ElementType.Int4
        : typeof(T) == typeof(int) ? ElementType.I32
        : null;

    /// <summary>The <see cref="ElementType"/> of <typeparamref name="T"/>; throws for types we do not know.</summary>
    public static ElementType Of<T>() where T : unmanaged =>
        TryOf<T>() ?? throw new NotSupportedException(
            $"{typeof(T).Name} is not a DeepSeekKernels element type; use float, BFloat16, Half, Float8E4M3, Int4x2 or int.");

    /// <summary>Bytes per stored element: 4, 2, 2, 1, 1 (a packed pair of INT4 values), 4.</summary>
    public static int Size(this ElementType type) => type switch
    {
        ElementType.F32 or ElementType.I32 => 4,
        ElementType.BF16 or ElementType.F16 => 2,
        ElementType.Fp8E4M3 or ElementType.Int4 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown element type."),
    };

    /// <summary>The short name used in messages and reports ("f32", "bf16", ...).</summary>
    public static string Name(this ElementType type) => type switch
    {
        ElementType.F32 => "f32",
        ElementType.BF16 => "bf16",
        ElementType.F16 => "f16",
        ElementType.Fp8E4M3 => "fp8e4m3",
        ElementType.Int4 => "int4x2",
        ElementType.I32 => "i32",
        _ => type.ToString(),
    };
}
