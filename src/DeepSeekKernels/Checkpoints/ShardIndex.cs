using System.Text.Json;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file name}}. Shard names
/// must be plain file names in the model folder.
/// </summary>
internal sealed class ShardIndex
{
    ShardIndex(IReadOnlyList<KeyValuePair<string, string>> weightMap, IReadOnlyList<string> shards)
    {
        WeightMap = weightMap;
        Shards = shards;
    }

    /// <summary>Tensor name to shard file name, in index order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> WeightMap { get; }

    /// <summary>The distinct shard file names, in order of first mention.</summary>
    public IReadOnlyList<string> Shards { get; }

    public static ShardIndex Read(string indexPath, string folder)
    {
        string json;
        try
        {
            json = File.ReadAllText(indexPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{indexPath}: cannot read: {ex.Message}", indexPath, null, ex);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new CheckpointException($"{indexPath}: not valid JSON ({ex.Message})", indexPath, null, ex);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath}: not a JSON object", indexPath, null);
            if (!root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath}: no \"weight_map\" object (tensor name -> shard file)", indexPath, null);

            var entries = new List<KeyValuePair<string, string>>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            var shards = new List<string>();
            var shardSet = new HashSet<string>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                if (!names.Add(item.Name))
                    throw new CheckpointException($"{indexPath}: tensor '{item.Name}' appears twice in weight_map", indexPath, item.Name);
                if (item.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointException($"{indexPath}: weight_map maps tensor '{item.Name}' to {item.Value.GetRawText()}, not a shard file name", indexPath, item.Name);
                string shard = item.Value.GetString()!;
                if (shardSet.Add(shard))
                {
                    CheckShardName(shard, item.Name, indexPath, folder);
                    shards.Add(shard);
                }
                entries.Add(new(item.Name, shard));
            }
            if (entries.Count == 0)
                throw new CheckpointException($"{indexPath}: weight_map is empty", indexPath, null);
            return new ShardIndex(entries, shards);
        }
    }

    static void CheckShardName(string shard, string tensor, string indexPath, string folder)
    {
        bool plain = shard.Length > 0 && shard != "." && shard != ".."
            && shard.IndexOfAny(['/', '\\']) < 0 && !Path.IsPathRooted(shard)
            && Path.GetFileName(shard) == shard;
        if (!plain)
            throw new CheckpointException($"{indexPath}: weight_map maps tensor '{tensor}' to '{shard}', which is not a file name in {folder}", indexPath, tensor);
    }
}
