namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>One tensor to write: its header dtype name, shape and raw little-endian bytes.</summary>
public sealed record TensorToWrite(string Name, string DType, long[] Shape, byte[] Data)
{
    /// <summary>The elements of an F32, BF16 or F16 tensor as float32.</summary>
    public float[] ToFloats()
    {
        var result = new float[Data.Length / (DType == "F32" ? 4 : 2)];
        for (int i = 0; i < result.Length; i++)
            result[i] = DType switch
            {
                "F32" => BitConverter.ToSingle(Data, i * 4),
                "BF16" => BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(Data, i * 2) << 16),
                "F16" => (float)BitConverter.ToHalf(Data, i * 2),
                _ => throw new ArgumentException($"tensor '{Name}' is {DType}, not a float dtype"),
            };
        return result;
    }
}
