using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Writes safetensors files for tests, valid ones (header padded with spaces to 8 bytes, as the reference
/// writer does) or deliberately broken ones from a raw header.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>A valid file holding <paramref name="tensors"/> back to back, in order.</summary>
    public static void Write(string path, IEnumerable<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata != null)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                DeepSeekKernels.Checkpoints.SafetensorsHeader.WriteEntry(json, t.Name, t.DType, t.Shape, offset, offset + t.Data.Length);
                offset += t.Data.Length;
            }
            json.WriteEndObject();
        }
        var data = list.SelectMany(t => t.Data).ToArray();
        WriteRaw(path, Encoding.UTF8.GetString(buffer.ToArray()), data);
    }

    /// <summary>A file with header <paramref name="headerJson"/> (padded with spaces to 8 bytes) and <paramref name="data"/>.</summary>
    public static void WriteRaw(string path, string headerJson, byte[] data)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        int padded = (header.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        data.CopyTo(bytes, 8 + padded);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>A file whose first 8 bytes declare <paramref name="declaredHeaderLength"/>, followed by <paramref name="rest"/>.</summary>
    public static void WriteWithDeclaredLength(string path, ulong declaredHeaderLength, byte[] rest)
    {
        var bytes = new byte[8 + rest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength);
        rest.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Float32 values as little-endian bytes.</summary>
    public static byte[] F32(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }
}
