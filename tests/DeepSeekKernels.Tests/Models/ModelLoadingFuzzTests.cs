using System.Buffers.Binary;
using System.Text;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// Whole checkpoints with seeded random damage to their config.json, to the JSON header of their
/// model.safetensors, or to the index of a sharded checkpoint. Loading must work or be refused with a <see cref="CheckpointException"/> or
/// <see cref="UnsupportedModelException"/>; a model that loads must then run a forward pass (its numbers may
/// be garbage): the checks at load time must catch whatever would make the forward pass fail.
/// </summary>
[Collection(nameof(DeviceCollection))]
public sealed class ModelLoadingFuzzTests : IDisposable
{
    const int CasesPerFixture = 60;
    readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (string name in CheckpointFixtures.Names)
        {
            data.Add(name, false);
            data.Add(name, true);
        }
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void EveryDamagedCheckpointLoadsAndRunsOrIsRefusedClearly(string fixture, bool damageWeightsHeader) =>
        Fuzz(CheckpointFixtures.HfTiny(fixture), fixture, damageWeightsHeader);

    /// <summary>
    /// GPTQ and AWQ checkpoints (<see cref="Int4CheckpointWriter"/>) damaged the same way: their quantization_config and their
    /// qweight/qzeros/scales/g_idx entries among the keys and shapes the damage reaches.
    /// </summary>
    [Theory]
    [InlineData("deepseek_v2_lite", Int4Packing.Gptq, false), InlineData("deepseek_v2_lite", Int4Packing.Gptq, true)]
    [InlineData("llama", Int4Packing.Awq, false), InlineData("llama", Int4Packing.Awq, true)]
    public void EveryDamagedInt4CheckpointLoadsAndRunsOrIsRefusedClearly(string fixture, Int4Packing packing, bool damageWeightsHeader)
    {
        string source = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny(fixture), _temp.Subfolder($"{fixture}-{packing}"), packing, 32);
        Fuzz(source, $"{fixture} {packing}", damageWeightsHeader);
    }

    void Fuzz(string source, string fixture, bool damageWeightsHeader)
    {
        string config = File.ReadAllText(Path.Combine(source, "config.json"));
        byte[] weights = File.ReadAllBytes(Path.Combine(source, "model.safetensors"));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(weights);
        string header = Encoding.UTF8.GetString(weights, 8, headerLength);
        var random = new Random(20261123 + fixture.Sum(c => c) + (damageWeightsHeader ? 1 : 0));
        var tally = new FuzzTally($"{fixture}, damaged {(damageWeightsHeader ? "weights header" : "config.json")}");
        for (int i = 0; i < CasesPerFixture; i++)
        {
            string folder = _temp.Subfolder($"{fixture.Replace(' ', '-')}-{damageWeightsHeader}-{i}");
            string what;
            if (damageWeightsHeader)
            {
                (string damaged, what) = JsonDamage.Apply(header, random);
                byte[] json = Encoding.UTF8.GetBytes(damaged);
                var file = new byte[8 + json.Length + weights.Length - 8 - headerLength];
                BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)json.Length);
                json.CopyTo(file, 8);
                weights.AsSpan(8 + headerLength).CopyTo(file.AsSpan(8 + json.Length));
                File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), file);
                File.WriteAllText(Path.Combine(folder, "config.json"), config);
            }
            else
            {
                (string damaged, what) = JsonDamage.Apply(config, random);
                File.WriteAllText(Path.Combine(folder, "config.json"), damaged);
                File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), weights);
            }
            tally.Run(i, what, () => LoadAndRun(folder), IsRefusal);
        }
        tally.AssertClean(someMustWork: false);
    }

    [Fact]
    public void EveryDamagedShardIndexLoadsAndRunsOrIsRefusedClearly()
    {
        CheckpointTests.WriteShardedLlama(_temp);
        string indexPath = _temp.File("model.safetensors.index.json");
        string index = File.ReadAllText(indexPath);
        var random = new Random(20261123);
        var tally = new FuzzTally("damaged model.safetensors.index.json");
        for (int i = 0; i < CasesPerFixture * 2; i++)
        {
            var (damaged, what) = JsonDamage.Apply(index, random);
            File.WriteAllText(indexPath, damaged);
            tally.Run(i, what, () => LoadAndRun(_temp.Path), IsRefusal);
        }
        tally.AssertClean();
    }

    /// <summary>Loads the folder's model and runs three tokens through it.</summary>
    static void LoadAndRun(string folder)
    {
        using var model = ModelTestSupport.Load(folder);
        using var cache = model.CreateCache(8);
        model.Forward([1, 2, 3], cache, new float[model.Shape.Vocab]);
    }

    static bool IsRefusal(Exception e) => e is CheckpointException or UnsupportedModelException;
}
