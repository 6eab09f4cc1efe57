using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>Damaged copies of model folders for the CLI's bad-input tests, in fresh temp folders.</summary>
internal static class ModelCopies
{
    /// <summary>A copy of <paramref name="source"/> (default: the embedded model), its config.json edited by <paramref name="editConfig"/>.</summary>
    public static string Of(string? source = null, Action<JsonObject>? editConfig = null)
    {
        source ??= CheckpointFixtures.PydocTiny;
        string target = Directory.CreateTempSubdirectory("dsk-cli-model").FullName;
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        if (editConfig != null)
            EditConfig(target, editConfig);
        return target;
    }

    /// <summary>Edits the folder's config.json.</summary>
    public static void EditConfig(string folder, Action<JsonObject> edit)
    {
        string path = Path.Combine(folder, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
    }

    /// <summary>
    /// Overwrites every element of the tensor <paramref name="name"/> in the folder's model.safetensors with
    /// <paramref name="value"/> (written in the tensor's own dtype: BF16, F32 or F8_E4M3's NaN).
    /// </summary>
    public static void FillTensor(string folder, string name, float value)
    {
        string path = Path.Combine(folder, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength));
        var tensor = header.RootElement.GetProperty(name);
        string dtype = tensor.GetProperty("dtype").GetString()!;
        var offsets = tensor.GetProperty("data_offsets");
        long begin = 8 + headerLength + offsets[0].GetInt64(), end = 8 + headerLength + offsets[1].GetInt64();
        for (long at = begin; at < end;)
        {
            switch (dtype)
            {
                case "BF16":
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)at), (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16));
                    at += 2;
                    break;
                case "F32":
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)at), value);
                    at += 4;
                    break;
                default:
                    throw new NotSupportedException($"FillTensor: {dtype}");
            }
        }
        File.WriteAllBytes(path, bytes);
    }
}
