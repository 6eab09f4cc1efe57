using DeepSeekKernels.Numerics;
using ILGPU;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// The shape facts a kernel needs to find any element of a <see cref="WeightMatrix"/> (a stack of [Rows, Cols] matrices)
/// and its scale: FP8 block sizes and the scale grid, the INT4 group size. Zero where the scheme has none.
/// </summary>
internal struct WeightShape
{
    public int Rows, Cols;
    public int BlockRows, BlockCols, ScaleRows, ScaleCols;
    public int GroupSize;

    public static WeightShape Of(WeightMatrix w) => new()
    {
        Rows = w.Rows, Cols = w.Cols, BlockRows = w.BlockRows, BlockCols = w.BlockCols, ScaleRows = w.ScaleRows,
        ScaleCols = w.ScaleCols, GroupSize = w.GroupSize,
    };
}

/// <summary>
/// Dequantisation of one weight scheme inside a kernel, bit-exact with <see cref="WeightMatrix"/>'s definition (and so with
/// <see cref="Reference.WeightData"/>): f32 as it is; bf16 widened exactly; FP8 e4m3 times its block scale in fp32, rounded
/// once to bf16 (<see cref="Float8E4M3.Dequantize"/>); INT4 <c>bf16(((float)q - zero) * scale)</c>
/// (<see cref="Quantization.Int4GroupQuantizer.Dequantize(int, BFloat16, BFloat16)"/>). Two forms: one element anywhere
/// (<see cref="Element"/>), and one 16-byte chunk of a row (<see cref="Part"/>: 4 f32, 8 bf16, 16 FP8 or 32 INT4 elements
/// in one load) with the one scale (and zero point) that covers the chunk (<see cref="Scale"/>). A struct type
/// parameter, so ILGPU compiles one kernel per scheme with no runtime branch.
/// </summary>
internal interface IWeightDecoder<TW> where TW : unmanaged
{
    /// <summary>Elements in one 16-byte chunk: 4, 8, 16 or 32.</summary>
    int ChunkElements { get; }

    /// <summary>Element [matrix, r, c] of the stack, dequantised.</summary>
    float Element(ArrayView<TW> data, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        WeightShape w, long matrix, long r, long c);

    /// <summary>The scale (and INT4 zero point) of the chunk of matrix <paramref name="matrix"/>, row r, that starts at column c.</summary>
    ChunkScale Scale(ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, WeightShape w,
        long matrix, long r, long c);

    /// <summary>
    /// Elements 8 * part .. 8 * part + 7 of a chunk (part &lt; max(1, ChunkElements / 8); f32 fills F0..F3 only), dequantised
    /// with the chunk's scale and zero point <paramref name="s"/>.
    /// </summary>
    Lanes8 Part(Vec16 raw, int part, ChunkScale s);
}

/// <summary>The scale and (INT4) zero point that cover one 16-byte chunk of a weight row: one block or group.</summary>
internal readonly record struct ChunkScale(float Scale, float Zero);

/// <summary>The arithmetic shared by the decoders (device code; also valid on the host).</summary>
internal static class WeightDecode
{
    /// <summary>A float rounded to the nearest bf16 (ties to even), returned as that float.</summary>
    public static float RoundToBf16(float value) => Interop.IntAsFloat((uint)BFloat16.RoundToBits(Interop.FloatAsInt(value)) << 16);

    /// <summary>A bf16's bits widened exactly.</summary>
    public static float Bf16(uint bits) => Interop.IntAsFloat((bits & 0xFFFFu) << 16);

    /// <summary>
    /// The exact value of e4m3fn bits (<see cref="Float8E4M3.ToSingle"/>): normal numbers rebuilt as float32 bits,
    /// subnormals mantissa * 2^-9, S.1111.111 NaN.
    /// </summary>
    public static float Fp8(uint bits)
    {
        uint sign = (bits & 0x80u) << 24;
        uint exponent = (bits >> 3) & 0xFu, mantissa = bits & 7u;
        if (exponent == 0xFu && mantissa == 7u)
            return Interop.IntAsFloat(sign | 0x7FC0_0000u);
        if (exponent == 0)
            return Interop.IntAsFloat(sign | Interop.FloatAsInt(mantissa * 0.001953125f));
        return Interop.IntAsFloat(sign | ((exponent + 120u) << 23) | (mantissa << 20));
    }

    /// <summary><c>bf16((float)fp8 * scaleInv)</c>, as <see cref="Float8E4M3.Dequantize"/>.</summary>
    public static float Fp8Dequantize(uint bits, float scaleInv) => RoundToBf16(Fp8(bits) * scaleInv);

    /// <summary><c>bf16(((float)q - zero) * scale)</c>, as Int4GroupQuantizer.Dequantize.</summary>
    public static float Int4Dequantize(uint q, float zero, float scale) => RoundToBf16(((float)q - zero) * scale);

    /// <summary>Word <paramref name="i"/> (0..3) of a chunk.</summary>
    public static uint Word(Vec16 v, int i) => i == 0 ? v.A : i == 1 ? v.B : i == 2 ? v.C : v.D;

    // r < Rows and c < Cols fit in 32 bits: the divisions are 32-bit (a 64-bit division is a long call on a GPU).

    /// <summary>FP8 scale of element [matrix, r, c]: scaleInv[matrix, r / BlockRows, c / BlockCols].</summary>
    public static float Fp8Scale(ArrayView<float> fp8Scales, WeightShape w, long matrix, long r, long c) =>
        fp8Scales[(matrix * w.ScaleRows + (int)r / w.BlockRows) * w.ScaleCols + (int)c / w.BlockCols];

    /// <summary>Index of the INT4 group of element [matrix, r, c] in the scale and zero arrays.</summary>
    public static long Int4Group(WeightShape w, long matrix, long r, long c) =>
        (matrix * w.Rows + r) * (w.Cols / w.GroupSize) + (int)c / w.GroupSize;
}

/// <summary>Dense float32 weights.</summary>
internal readonly struct F32Weights : IWeightDecoder<float>
{
    public int ChunkElements => 4;

    public float Element(ArrayView<float> data, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        WeightShape w, long matrix, long r, long c) => data[(matrix * w.Rows + r) * w.Cols + c];

    public ChunkScale Scale(ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, WeightShape w,
        long matrix, long r, long c) => new(1f, 0f);

    public Lanes8 Part(Vec16 raw, int part, ChunkScale s) => new()
    {
        F0 = Interop.IntAsFloat(raw.A), F1 = Interop.IntAsFloat(raw.B), F2 = Interop.IntAsFloat(raw.C), F3 = Interop.IntAsFloat(raw.D),
    };
}

/// <summary>Dense bfloat16 weights, widened exactly.</summary>
internal readonly struct Bf16Weights : IWeightDecoder<BFloat16>
{
    public int ChunkElements => 8;

    public float Element(ArrayView<BFloat16> data, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        WeightShape w, long matrix, long r, long c) => WeightDecode.Bf16(data[(matrix * w.Rows + r) * w.Cols + c].Bits);

    public ChunkScale Scale(ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, WeightShape w,
        long matrix, long r, long c) => new(1f, 0f);

    public Lanes8 Part(Vec16 raw, int part, ChunkScale s) => new()
    {
        F0 = WeightDecode.Bf16(raw.A), F1 = WeightDecode.Bf16(raw.A >> 16), F2 = WeightDecode.Bf16(raw.B), F3 = WeightDecode.Bf16(raw.B >> 16),
        F4 = WeightDecode.Bf16(raw.C), F5 = WeightDecode.Bf16(raw.C >> 16), F6 = WeightDecode.Bf16(raw.D), F7 = WeightDecode.Bf16(raw.D >> 16),
    };
}

/// <summary>FP8 e4m3 weights with float32 block scales (DeepSeek-V3).</summary>
internal readonly struct Fp8Weights : IWeightDecoder<Float8E4M3>
{
    public int ChunkElements => 16;

    public float Element(ArrayView<Float8E4M3> data, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        WeightShape w, long matrix, long r, long c) =>
        WeightDecode.Fp8Dequantize(data[(matrix * w.Rows + r) * w.Cols + c].Bits, WeightDecode.Fp8Scale(fp8Scales, w, matrix, r, c));

    public ChunkScale Scale(ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, WeightShape w,
        long matrix, long r, long c) => new(WeightDecode.Fp8Scale(fp8Scales, w, matrix, r, c), 0f);

    // part 0: bytes 0..7 (words A, B); part 1: bytes 8..15 (words C, D); byte j of a word is element j of it
    public Lanes8 Part(Vec16 raw, int part, ChunkScale s)
    {
        uint lo = part == 0 ? raw.A : raw.C, hi = part == 0 ? raw.B : raw.D;
        float scale = s.Scale;
        return new()
        {
            F0 = WeightDecode.Fp8Dequantize(lo & 0xFF, scale), F1 = WeightDecode.Fp8Dequantize((lo >> 8) & 0xFF, scale),
            F2 = WeightDecode.Fp8Dequantize((lo >> 16) & 0xFF, scale), F3 = WeightDecode.Fp8Dequantize(lo >> 24, scale),
            F4 = WeightDecode.Fp8Dequantize(hi & 0xFF, scale), F5 = WeightDecode.Fp8Dequantize((hi >> 8) & 0xFF, scale),
            F6 = WeightDecode.Fp8Dequantize((hi >> 16) & 0xFF, scale), F7 = WeightDecode.Fp8Dequantize(hi >> 24, scale),
        };
    }
}

/// <summary>INT4 codes (two a byte, low nibble first) with a bf16 scale and zero point per group of in features.</summary>
internal readonly struct Int4Weights : IWeightDecoder<Int4x2>
{
    public int ChunkElements => 32;

    public float Element(ArrayView<Int4x2> data, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        WeightShape w, long matrix, long r, long c)
    {
        uint pair = data[((matrix * w.Rows + r) * w.Cols + c) / 2].Bits;
        uint q = (c & 1) == 0 ? pair & 0xFu : pair >> 4;
        long g = WeightDecode.Int4Group(w, matrix, r, c);
        return WeightDecode.Int4Dequantize(q, WeightDecode.Bf16(zeros[g].Bits), WeightDecode.Bf16(scales[g].Bits));
    }

    public ChunkScale Scale(ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, WeightShape w,
        long matrix, long r, long c)
    {
        long g = WeightDecode.Int4Group(w, matrix, r, c);
        return new(WeightDecode.Bf16(scales[g].Bits), WeightDecode.Bf16(zeros[g].Bits));
    }

    // part p: word p, 8 codes, element j in nibble j (low nibble of byte 0 first)
    public Lanes8 Part(Vec16 raw, int part, ChunkScale s)
    {
        uint v = WeightDecode.Word(raw, part);
        float scale = s.Scale, zero = s.Zero;
        return new()
        {
            F0 = WeightDecode.Int4Dequantize(v & 0xF, zero, scale), F1 = WeightDecode.Int4Dequantize((v >> 4) & 0xF, zero, scale),
            F2 = WeightDecode.Int4Dequantize((v >> 8) & 0xF, zero, scale), F3 = WeightDecode.Int4Dequantize((v >> 12) & 0xF, zero, scale),
            F4 = WeightDecode.Int4Dequantize((v >> 16) & 0xF, zero, scale), F5 = WeightDecode.Int4Dequantize((v >> 20) & 0xF, zero, scale),
            F6 = WeightDecode.Int4Dequantize((v >> 24) & 0xF, zero, scale), F7 = WeightDecode.Int4Dequantize(v >> 28, zero, scale),
        };
    }
}

internal static class WeightDecoders
{
    /// <summary>The stored element type and the decoder type of a weight, for closing generic kernels.</summary>
    public static (Type Element, Type Decoder) For(WeightMatrix w) => w.ElementType switch
    {
        ElementType.F32 => (typeof(float), typeof(F32Weights)),
        ElementType.BF16 => (typeof(BFloat16), typeof(Bf16Weights)),
        ElementType.Fp8E4M3 => (typeof(Float8E4M3), typeof(Fp8Weights)),
        ElementType.Int4 => (typeof(Int4x2), typeof(Int4Weights)),
        _ => throw new NotSupportedException($"ILGPU kernels: a weight stored as {w.ElementType.Name()} has no decoder."),
    };
}
