using System.Runtime.InteropServices;

namespace DeepSeekKernels.Numerics;

/// <summary>
/// float8 e4m3fn (the "fn" variant DeepSeek-V3 ships): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no
/// infinities, NaN is S.1111.111, largest finite value 448. Conversion from float rounds to nearest even;
/// anything that rounds past 448, and infinities, become NaN, exactly as PyTorch's <c>float8_e4m3fn</c> cast.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 1)]
public readonly struct Float8E4M3 : IEquatable<Float8E4M3>
{
    /// <summary>The raw bits.</summary>
    public readonly byte Bits;

    Float8E4M3(byte bits) => Bits = bits;

    /// <summary>Largest finite value.</summary>
    public const float MaxValue = 448f;

    static readonly float[] Decoded = BuildTable();

    /// <summary>Wraps raw bits.</summary>
    public static Float8E4M3 FromBits(byte bits) => new(bits);

    /// <summary>The exact float32 value.</summary>
    public float ToSingle() => Decoded[Bits];

    /// <summary>Rounds <paramref name="value"/> to e4m3fn.</summary>
    public static Float8E4M3 FromSingle(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        byte sign = (byte)((bits >> 24) & 0x80);
        uint abs = bits & 0x7FFF_FFFF;
        if (abs >= 0x43F0_0000) // NaN, infinity, or |x| >= 480: no finite encoding
            return new((byte)(sign | 0x7F));
        if (abs < 0x3C80_0000) // below 2^-6: subnormal, a multiple of 2^-9 (8 rounds to the smallest normal)
        {
            int q = (int)MathF.Round(BitConverter.UInt32BitsToSingle(abs) * 512f, MidpointRounding.ToEven);
            return new((byte)(sign | q));
        }
        uint mantissa = abs & 0x7F_FFFF;
        uint r = (((abs >> 23) - 120) << 3) | (mantissa >> 20);
        uint rest = mantissa & 0xF_FFFF;
        if (rest > 0x8_0000 || (rest == 0x8_0000 && (r & 1) == 1))
            r++;
        return new((byte)(sign | (r >= 0x7F ? 0x7Fu : r)));
    }

    /// <summary>
    /// Rounds <paramref name="value"/> to e4m3fn, to nearest even, saturating: anything beyond ±448, infinities included,
    /// becomes ±448 (what a quantiser wants: a value just past the largest code is still closest to it); NaN stays NaN.
    /// Otherwise the same code as <see cref="FromSingle"/>.
    /// </summary>
    public static Float8E4M3 FromSingleSaturating(float value)
    {
        if (float.IsNaN(value))
            return FromSingle(value);
        return FromSingle(Math.Clamp(value, -MaxValue, MaxValue));
    }

    static float[] BuildTable()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int exponent = (b >> 3) & 0xF, mantissa = b & 7;
            float magnitude = (exponent, mantissa) switch
            {
                (15, 7) => float.NaN,
                (0, _) => mantissa / 512f,
                _ => (1f + mantissa / 8f) * MathF.ScaleB(1f, exponent - 7),
            };
            table[b] = (b & 0x80) != 0 ? -magnitude : magnitude;
        }
        return table;
    }

    /// <summary>
    /// One weight of a block-scaled FP8 checkpoint, dequantised as DeepSeek's reference <c>weight_dequant</c>
    /// and Hugging Face transformers do it: <c>fp8 * scale_inv</c> in float32, rounded once to bfloat16 (the
    /// checkpoint's torch_dtype). Keeping the float32 product instead moves the fixture's logits by 5e-3.
    /// </summary>
    public static float Dequantize(Float8E4M3 value, float scaleInv) => BFloat16.FromSingle(value.ToSingle() * scaleInv).ToSingle();

    public static explicit operator Float8E4M3(float value) => FromSingle(value);
    public static explicit operator float(Float8E4M3 value) => value.ToSingle();

    public bool IsNaN => (Bits & 0x7F) == 0x7F;
    public bool Equals(Float8E4M3 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is Float8E4M3 f && Equals(f);
    public override int GetHashCode() => Bits;
    public override string ToString() => ToSingle().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
