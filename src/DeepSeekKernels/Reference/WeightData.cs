using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// A weight (one matrix or a stack) in host memory, as raw addresses the reference reads: the host side of a
/// <see cref="WeightMatrix"/>. Decodes rows to float32 exactly as the op docs say (bf16 widened exactly; FP8 times
/// its block scale in float32, rounded once to bf16: <see cref="Float8E4M3.Dequantize"/>).
/// </summary>
internal readonly unsafe struct WeightData
{
    static readonly float[] Fp8Values = BuildFp8Table();

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
                fixed (float* table = Fp8Values)
                fixed (float* output = destination)
                {
                    for (int i = 0; i < count; i++)
                        DecodeFp8Row(first + i, table, output + (long)i * Cols);
                }
                break;
        }
    }

    void DecodeFp8Row(int row, float* table, float* output)
    {
        byte* bits = (byte*)Data + (long)row * Cols;
        float* scales = (float*)Scales + (long)(row / BlockRows) * ScaleCols;
        for (int block = 0; block < ScaleCols; block++)
        {
            float scale = scales[block];
            int begin = block * BlockCols, end = Math.Min(begin + BlockCols, Cols);
            for (int c = begin; c < end; c++)
                output[c] = BFloat16.FromSingle(table[bits[c]] * scale).ToSingle(); // = Float8E4M3.Dequantize, table-driven
        }
    }

    static float[] BuildFp8Table()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
            table[b] = Float8E4M3.FromBits((byte)b).ToSingle();
        return table;
    }
}
