namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// The element types a safetensors header may name; each member is named exactly as the header's "dtype"
/// string. Sizes and parsing: <see cref="SafetensorsDTypeInfo"/>.
/// </summary>
public enum SafetensorsDType
{
    /// <summary>"BOOL": one byte, 0 or 1.</summary>
    BOOL,
    /// <summary>"U8".</summary>
    U8,
    /// <summary>"I8".</summary>
    I8,
    /// <summary>"I16", little-endian.</summary>
    I16,
    /// <summary>"I32", little-endian.</summary>
    I32,
    /// <summary>"I64", little-endian (token ids in golden files).</summary>
    I64,
    /// <summary>"F8_E4M3": float8 e4m3fn, PyTorch's <c>float8_e4m3fn</c> (DeepSeek-V3's FP8 weights).</summary>
    F8_E4M3,
    /// <summary>"F8_E5M2": float8 e5m2.</summary>
    F8_E5M2,
    /// <summary>"F16": IEEE half.</summary>
    F16,
    /// <summary>"BF16": bfloat16.</summary>
    BF16,
    /// <summary>"F32".</summary>
    F32,
    /// <summary>"F64".</summary>
    F64,
}
