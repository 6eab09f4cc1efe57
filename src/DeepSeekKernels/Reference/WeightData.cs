using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// A weight (one matrix or a stack) in host memory, as raw addresses the reference reads: the host side of a
/// <see cref="WeightMatrix"/>. Decodes rows to float32 (FP8 rows also to bf16) exactly as the op docs say (bf16 widened exactly; FP8 times
/// its block scale in float32, rounded once to bf16: <see cref="Float8E4M3.Dequantize"/>).
/// </summary>
internal readonly unsafe struct WeightData
{
    static readonly float[] Fp8Values = BuildFp8Table();
    static readonly float TwoPow120 = MathF.ScaleB(1f, 120);

    public WeightData(ElementType type, nint data, nint scales, int rows, int cols, int count, int blockRows, int blockCols)
    {
        Type = type;
        Data = data;
        Scales = scales;
        Rows = rows;
        Cols = cols;
        Count = count;
        BlockRows = blockRows;
        BlockCols = blockCols;
    }

    public ElementType Type { get; }
    public nint Data { get; }
    public nint Scales { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int Count { get; }
    public int BlockRows { get; }
    public int BlockCols { get; }
    public int ScaleRows => BlockRows == 0 ? 0 : (Rows + BlockRows - 1) / BlockRows;
    public int ScaleCols => BlockCols == 0 ? 0 : (Cols + BlockCols - 1) / BlockCols;

    int ElementSize => Type switch { ElementType.F32 => 4, ElementType.BF16 => 2, _ => 1 };

    /// <summary>Matrix <paramref name="index"/> of the stack.</summary>
    public WeightData Matrix(int index)
    {
        long elements = (long)Rows * Cols;
        nint scales = Type == ElementType.Fp8E4M3 ? Scales + (nint)((long)index * ScaleRows * ScaleCols * sizeof(float)) : 0;
        return new WeightData(Type, Data + (nint)(index * elements * ElementSize), scales, Rows, Cols, 1, BlockRows, BlockCols);
    }

    /// <summary>Rows [first, first + count) of matrix 0 as float32 into <paramref name="destination"/> ([count, Cols]).</summary>
    public void DecodeRows(int first, int count, Span<float> destination)
    {
        int n = count * Cols;
        switch (Type)
        {
            case ElementType.F32:
                new ReadOnlySpan<float>((float*)Data + (long)first * Cols, n).CopyTo(destination);
                break;
            case ElementType.BF16:
                BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((BFloat16*)Data + (long)first * Cols, n), destination);
                break;
            default:
                // each row dequantised to bf16, then widened exactly
                var row = ArrayPool<ushort>.Shared.Rent(Cols);
                for (int i = 0; i < count; i++)
                {
                    DecodeFp8RowsToBf16(first + i, 1, row);
                    BFloat16Conversions.ToSingle(MemoryMarshal.Cast<ushort, BFloat16>(row.AsSpan(0, Cols)), destination.Slice(i * Cols, Cols));
                }
                ArrayPool<ushort>.Shared.Return(row);
                break;
        }
    }

    /// <summary>
    /// Rows [first, first + count) of an FP8 matrix 0, dequantised, as bfloat16 bits into <paramref name="destination"/>
    /// ([count, Cols]): <c>bf16(fp8[r, c] * scaleInv[r / BlockRows, c / BlockCols])</c>, <see cref="Float8E4M3.Dequantize"/>.
    /// </summary>
    public void DecodeFp8RowsToBf16(int first, int count, Span<ushort> destination)
    {
        int scaleCols = ScaleCols;
        fixed (float* table = Fp8Values)
        fixed (ushort* output = destination)
        {
            for (int i = 0; i < count; i++)
            {
                int row = first + i;
                byte* codes = (byte*)Data + (long)row * Cols;
                float* scales = (float*)Scales + (long)(row / BlockRows) * scaleCols;
                ushort* bits = output + (long)i * Cols;
                for (int block = 0; block < scaleCols; block++)
                {
                    float scale = scales[block];
                    int c = block * BlockCols, end = Math.Min(c + BlockCols, Cols);
                    // Vector<byte>.Count codes at a time; NaN codes and non-finite scales take the scalar path (the
                    // vector one assumes finite products)
                    for (; c <= end - Vector<byte>.Count && float.IsFinite(scale); c += Vector<byte>.Count)
                    {
                        var code = Vector.Load(codes + c);
                        if (Vector.EqualsAny(code | new Vector<byte>(0x80), new Vector<byte>(0xFF)))
                            break;
                        Vector.Widen(code, out var low, out var high);
                        var scaleVector = new Vector<float>(scale);
                        DequantizeFinite(low, scaleVector).Store(bits + c);
                        DequantizeFinite(high, scaleVector).Store(bits + c + Vector<ushort>.Count);
                    }
                    for (; c < end; c++)
                        bits[c] = BFloat16.RoundToBits(BitConverter.SingleToUInt32Bits(table[codes[c]] * scale));
                }
            }
        }
    }

    /// <summary>
    /// <see cref="Float8E4M3.Dequantize"/> of each lane (an e4m3fn code other than NaN, zero-extended) by a finite
    /// <paramref name="scale"/>, as bfloat16 bits: the code's value times the scale in float32, rounded to nearest even
    /// (<see cref="BFloat16.RoundToBits"/>; the product is finite or infinite, never NaN).
    /// </summary>
    static Vector<ushort> DequantizeFinite(Vector<ushort> code, Vector<float> scale)
    {
        // e4m3fn is 1 sign, 4 exponent (bias 7), 3 mantissa bits. The code in the top byte, shifted right by 4 with its
        // sign repeated and masked, has its sign, exponent and mantissa in bf16's fields: read as a number it is
        // 2^(7 - 127) times the code's value, subnormals included, so an exact multiply by 2^120 gives that value.
        var bf16 = Vector.AsVectorUInt16(Vector.ShiftRightArithmetic(Vector.AsVectorInt16(code << 8), 4)) & new Vector<ushort>(0x87F0);
        // Two per 32-bit lane: the even column's bf16 in the low half (a shift makes it a float), the odd one's in the high.
        var pairs = Vector.AsVectorUInt32(bf16);
        var even = RoundToBf16(Vector.AsVectorSingle(pairs << 16) * new Vector<float>(TwoPow120) * scale);
        var odd = RoundToBf16(Vector.AsVectorSingle(pairs & new Vector<uint>(0xFFFF_0000)) * new Vector<float>(TwoPow120) * scale);
        return Vector.AsVectorUInt16((even >> 16) | odd);
    }

    /// <summary>Finite or infinite float32 rounded to nearest even bf16, as float32 bits (<see cref="BFloat16.RoundToBits"/> &lt;&lt; 16).</summary>
    static Vector<uint> RoundToBf16(Vector<float> value)
    {
        var bits = Vector.AsVectorUInt32(value);
        return (bits + new Vector<uint>(0x7FFF) + ((bits >> 16) & Vector<uint>.One)) & new Vector<uint>(0xFFFF_0000);
    }

    static float[] BuildFp8Table()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
            table[b] = Float8E4M3.FromBits((byte)b).ToSingle();
        return table;
    }
}
