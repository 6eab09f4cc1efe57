using System.Buffers.Binary;
using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Writes an edited copy of a single-file model folder: every file but model.safetensors copied as it is,
/// model.safetensors rewritten tensor by tensor (each may be replaced or dropped), config.json edited.
/// </summary>
public static class CheckpointCopy
{
    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="target"/> (an existing, empty folder) and returns
    /// <paramref name="target"/>. <paramref name="editTensor"/> gets each tensor as stored and returns what to
    /// write in its place (another dtype, shape or data), or null to leave it out; <paramref name="editConfig"/>
    /// edits config.json.
    /// </summary>
    public static string Write(string source, string target, Func<TensorToWrite, TensorToWrite?>? editTensor = null, Action<JsonObject>? editConfig = null) =>
        WriteMany(source, target, t => editTensor is null ? [t] : editTensor(t) is { } edited ? [edited] : [], editConfig);

    /// <summary>
    /// As <see cref="Write"/>, each stored tensor replaced by the tensors <paramref name="editTensor"/> returns (none to leave
    /// it out, several to split it, as a GPTQ layer's qweight, qzeros and scales replace its weight).
    /// </summary>
    public static string WriteMany(string source, string target, Func<TensorToWrite, IEnumerable<TensorToWrite>> editTensor, Action<JsonObject>? editConfig = null)
    {
        foreach (var file in Directory.GetFiles(source))
            if (Path.GetFileName(file) != Checkpoint.SingleFileName)
                File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        var tensors = new List<TensorToWrite>();
        using (var checkpoint = Checkpoint.Open(source))
        {
            foreach (var t in checkpoint.Tensors)
            {
                var stored = new TensorToWrite(t.Name, t.DType.HeaderName(), t.Shape, checkpoint.GetBytes(t).ToArray());
                tensors.AddRange(editTensor(stored));
            }
        }
        SafetensorsWriter.Write(Path.Combine(target, Checkpoint.SingleFileName), tensors);
        if (editConfig != null)
            EditConfig(target, editConfig);
        return target;
    }

    /// <summary>Edits config.json in <paramref name="folder"/> in place.</summary>
    public static void EditConfig(string folder, Action<JsonObject> edit)
    {
        string path = Path.Combine(folder, Checkpoint.ConfigFileName);
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
    }

    /// <summary>
    /// <paramref name="tensor"/> with the elements at <paramref name="indices"/> (all when null) set to
    /// <paramref name="value"/> in the tensor's own dtype (F32, BF16 or F16).
    /// </summary>
    public static TensorToWrite Fill(TensorToWrite tensor, float value, IEnumerable<long>? indices = null)
    {
        var data = (byte[])tensor.Data.Clone();
        int size = tensor.DType switch
        {
            "F32" => 4,
            "BF16" or "F16" => 2,
            _ => throw new ArgumentException($"cannot write {value} into {tensor.DType} tensor '{tensor.Name}'", nameof(tensor)),
        };
        foreach (long i in indices ?? Enumerable.Range(0, data.Length / size).Select(i => (long)i))
        {
            var at = data.AsSpan(checked((int)(i * size)), size);
            switch (tensor.DType)
            {
                case "F32":
                    BinaryPrimitives.WriteSingleLittleEndian(at, value);
                    break;
                case "BF16": // the top half of the float's bits (NaN and Inf stay NaN and Inf)
                    BinaryPrimitives.WriteUInt16LittleEndian(at, (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16));
                    break;
                default:
                    BinaryPrimitives.WriteHalfLittleEndian(at, (Half)value);
                    break;
            }
        }
        return tensor with { Data = data };
    }
}
