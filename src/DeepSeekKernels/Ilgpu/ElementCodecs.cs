using DeepSeekKernels.Numerics;
using ILGPU;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// Loads an element as fp32 and stores fp32 back with the element's rounding. Kernels take the codec as a
/// struct type parameter, so ILGPU specialises each kernel per dtype with no runtime branch.
/// </summary>
internal interface IElementCodec<T> where T : unmanaged
{
    float Load(T value);
    T Store(float value);
}

internal readonly struct F32Codec : IElementCodec<float>
{
    public float Load(float value) => value;
    public float Store(float value) => value;
}

internal readonly struct BF16Codec : IElementCodec<BFloat16>
{
    public float Load(BFloat16 value) => Interop.IntAsFloat((uint)value.Bits << 16);
    public BFloat16 Store(float value) => BFloat16.FromBits(BFloat16.RoundToBits(Interop.FloatAsInt(value)));
}

internal static class ElementCodecs
{
    /// <summary>The codec type for element type <paramref name="t"/>, for closing generic kernels.</summary>
    public static Type CodecFor(Type t) =>
        t == typeof(float) ? typeof(F32Codec)
        : t == typeof(BFloat16) ? typeof(BF16Codec)
        : throw new NotSupportedException($"ILGPU kernels: element type {t.Name} has no codec.");
}
