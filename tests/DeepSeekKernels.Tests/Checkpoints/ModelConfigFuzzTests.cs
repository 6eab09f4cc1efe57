using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Damaged config.json files: each fixture's config with seeded random damage (characters changed, inserted
/// or removed, the file cut short, values swapped for other JSON values). Loading it and deriving the model's
/// shape must either work or throw a <see cref="CheckpointException"/> or <see cref="UnsupportedModelException"/>
/// that names the file: never a KeyNotFound, InvalidCast, NullReference, Overflow or other stray exception.
/// </summary>
public sealed class ModelConfigFuzzTests : IDisposable
{
    const int CasesPerFixture = 400;
    readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory, MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void EveryDamagedConfigLoadsOrIsRefusedClearly(string fixture)
    {
        string valid = File.ReadAllText(Path.Combine(CheckpointFixtures.Folder(fixture), "config.json"));
        var random = new Random(20261123 + fixture.Sum(c => c)); // deterministic: string hash codes vary per process
        var tally = new FuzzTally($"{fixture}: damaged config.json");
        for (int i = 0; i < CasesPerFixture; i++)
        {
            var (text, what) = JsonDamage.Apply(valid, random);
            string folder = _temp.Subfolder($"{fixture}-{i}");
            File.WriteAllText(Path.Combine(folder, "config.json"), text);
            tally.Run(i, what, () => ModelShapes.From(ModelConfig.Load(folder)),
                e => e is CheckpointException or UnsupportedModelException && e.Message.Contains("config.json", StringComparison.Ordinal));
        }
        tally.AssertClean();
    }
}
