using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;

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
        int loaded = 0, refused = 0;
        for (int i = 0; i < CasesPerFixture; i++)
        {
            var (text, what) = JsonDamage.Apply(valid, random);
            string folder = _temp.Subfolder($"{fixture}-{i}");
            string path = Path.Combine(folder, "config.json");
            File.WriteAllText(path, text);
            try
            {
                var config = ModelConfig.Load(folder);
                _ = ModelShapes.From(config);
                loaded++;
            }
            catch (Exception e) when (e is CheckpointException or UnsupportedModelException)
            {
                Assert.Contains("config.json", e.Message);
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"{fixture} case {i} ({what}): {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(loaded > 0 && refused > 0, $"{loaded} loaded, {refused} refused");
    }
}
