using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// tie_word_embeddings: the output projection is the embedding table. A tied checkpoint (no lm_head tensor)
/// must give exactly the logits of an untied one whose lm_head holds a copy of the embeddings.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class TiedEmbeddingTests
{
    [Fact]
    public void ATiedModelUsesTheEmbeddingsAsItsOutputProjection()
    {
        string source = CheckpointFixtures.HfTiny("qwen2");
        var tensors = new List<TensorToWrite>();
        using (var checkpoint = Checkpoint.Open(source))
        {
            foreach (var t in checkpoint.Tensors)
            {
                string name = t.Name == "lm_head.weight" ? "model.embed_tokens.weight" : t.Name;
                var bytes = checkpoint.GetBytes(checkpoint.GetTensor(name)).ToArray();
                tensors.Add(new TensorToWrite(t.Name, t.DType.HeaderName(), t.Shape, bytes));
            }
        }
        string untied = Folder(source, tensors, tied: false);
        string tied = Folder(source, [.. tensors.Where(t => t.Name != "lm_head.weight")], tied: true);

        var ids = new[] { 3, 1, 4, 1, 5, 9, 2, 6 };
        float[] Logits(string folder)
        {
            using var model = ModelTestSupport.Load(folder);
            using var cache = model.CreateCache(ids.Length);
            var logits = new float[ids.Length * model.Shape.Vocab];
            model.Forward(ids, cache, logits, allPositions: true);
            return logits;
        }
        Assert.Equal(Logits(untied), Logits(tied));
    }

    static string Folder(string source, IEnumerable<TensorToWrite> tensors, bool tied)
    {
        string folder = Directory.CreateTempSubdirectory("dsk-tied").FullName;
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        config["tie_word_embeddings"] = tied;
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return folder;
    }
}
