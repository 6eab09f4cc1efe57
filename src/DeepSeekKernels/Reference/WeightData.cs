using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// A weight (one matrix or a stack) in host memory, as raw addresses the reference reads: the host side of a
/// <see cref="WeightMatrix"/>. Decodes rows to float32 (FP8 and INT4 rows also to bf16) exactly as the op docs say (bf16
/// widened exactly; FP8 times its block scale in float32, rounded once to bf16: <see cref="Float8E4M3.Dequantize"/>;
/// INT4 minus its group's zero point, times its group's scale, in float32, rounded once to bf16:
/// <see cref="Quantization.Int4GroupQuantizer.Dequantize(int, BFloat16, BFloat16)"/>). For FP8, <see cref="Scales"/>
/// holds float32 block scales; for INT4, bf16 group scales, and <see cref="Zeros"/> the bf16 zero points.
/// </summary>
internal readonly unsafe struct WeightData
{
    static readonly float[] Fp8Values = BuildFp8Table();
    static readonly float TwoPow120 = MathF.ScaleB(1f, 120);

    public WeightData(ElementType type, nint data, nint scales, int rows, int cols, int count, int blockRows, int blockCols,
        nint zeros = 0, int groupSize = 0)
    {
        Type = type;
        Data = data;
        Scales = scales;
        Rows = rows;
        Cols = cols;
        Count = count;
        BlockRows = blockRows;
        BlockCols = blockCols;
        Zeros = zeros;
        GroupSize = groupSize;
    }

    public ElementType Type { get; }
    public nint Data { get; }
    public nint Scales { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int Count { get; }
    public int BlockRows { get; }
    public int BlockCols { get; }
    public nint Zeros { get; }
    public int GroupSize { get; }
    public int GroupsPerRow => GroupSize == 0 ? 0 : Cols / GroupSize;
    public int ScaleRows => BlockRows == 0 ? 0 : (Rows + BlockRows - 1) / BlockRows;
    public int ScaleCols => BlockCols == 0 ? 0 : (Cols + BlockCols - 1) / BlockCols;

    /// <summary>Whether rows decode to bf16 first (<see cref="DecodeRowsToBf16"/>): FP8 and INT4.</summary>
    public bool IsQuantized => Type is ElementType.Fp8E4M3 or ElementType.Int4;

    /// <summary>Bytes of one matrix's data.</summary>
    long MatrixBytes => Type switch
    {
        ElementType.F32 => (long)Rows * Cols * 4,
        ElementType.BF16 => (long)Rows * Cols * 2,
        ElementType.Int4 => (long)Rows * (Cols / 2),
        _ => (long)Rows * Cols,
    };

    /// <summary>Matrix <paramref name="index"/> of the stack.</summary>
    public WeightData Matrix(int index)
    {
        nint data = Data + (nint)(index * MatrixBytes);
        switch (Type)
        {
            case ElementType.Fp8E4M3:
                return new WeightData(Type, data, Scales + (nint)((long)index * ScaleRows * ScaleCols * sizeof(float)), Rows, Cols, 1,
                    BlockRows, BlockCols);
            case ElementType.Int4:
                long groupBytes = (long)index * Rows * GroupsPerRow * 2;
                return new WeightData(Type, data, Scales + (nint)groupBytes, Rows, Cols, 1, 0, 0, Zeros + (nint)groupBytes, GroupSize);
            default:
                return new WeightData(Type, data, 0, Rows, Cols, 1, BlockRows, BlockCols);
        }
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
                    DecodeRowsToBf16(first + i, 1, row);
                    BFloat16Conversions.ToSingle(MemoryMarshal.Cast<ushort, BFloat16>(row.AsSpan(0, Cols)), destination.Slice(i * Cols, Cols));
                }
                ArrayPool<ushort>.Shared.Return(row);
                break;
        }
    }

    /// <summary>
    /// Rows [first, first + count) of an FP8 or INT4 matrix 0, dequantised, as bfloat16 bits into
    /// <paramref name="destination"/> ([count, Cols]): <see cref="DecodeFp8RowsToBf16"/> or <see cref="DecodeInt4RowsToBf16"/>.
    /// </summary>
    public void DecodeRowsToBf16(int first, int count, Span<ushort> destination)
    {
        if (Type == ElementType.Int4)
            DecodeInt4RowsToBf16(first, count, destination);
        else
            DecodeFp8RowsToBf16(first, count, destination);
    }

    /// <summary>
    /// Rows [first, first + count) of an INT4 matrix 0, dequantised, as bfloat16 bits into <paramref name="destination"/>
    /// ([count, Cols]): <c>bf16(((float)q[r, c] - (float)zero[r, g]) * (float)scale[r, g])</c> with g = c / GroupSize and q
    /// the unsigned code of element c (low nibble of byte c / 2 for even c, high nibble for odd c). Per group, the 16
    /// possible results are computed once and the codes look them up, two per byte.
    /// </summary>
    public void DecodeInt4RowsToBf16(int first, int count, Span<ushort> destination)
    {
        int groups = GroupsPerRow, groupBytes = GroupSize / 2;
        Span<ushort> table = stackalloc ushort[16];
        fixed (ushort* output = destination)
        {
            for (int i = 0; i < count; i++)
            {
                int row = first + i;
                byte* codes = (byte*)Data + (long)row * (Cols / 2);
                ushort* scales = (ushort*)Scales + (long)row * groups, zeros = (ushort*)Zeros + (long)row * groups;
                uint* pairs = (uint*)(output + (long)i * Cols); // Cols is even: a bf16 pair per byte
                for (int g = 0; g < groups; g++)
                {
                    float scale = BitConverter.UInt32BitsToSingle((uint)scales[g] << 16), zero = BitConverter.UInt32BitsToSingle((uint)zeros[g] << 16);
                    for (int q = 0; q < 16; q++)
                        table[q] = BFloat16.RoundToBits(BitConverter.SingleToUInt32Bits(((float)q - zero) * scale));
                    int b = g * groupBytes, end = b + groupBytes;
                    for (; b < end; b++)
                    {
                        byte code = codes[b];
                        pairs[b] = table[code & 0xF] | ((uint)table[code >> 4] << 16);
                    }
                }
            }
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
