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
            var (text, what) = Damage(valid, random);
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

    const string JsonCharacters = "{}[],:\"0123456789-.etnfx ";
    static readonly string[] Replacements = ["null", "true", "\"x\"", "[]", "{}", "-1", "0", "1e40", "2.5", "99999999999", "[1,2]", "\"\""];

    static (string Text, string What) Damage(string valid, Random random)
    {
        switch (random.Next(5))
        {
            case 0:
            {
                int at = random.Next(valid.Length);
                char c = JsonCharacters[random.Next(JsonCharacters.Length)];
                return (valid[..at] + c + valid[(at + 1)..], $"char {at} -> '{c}'");
            }
            case 1:
            {
                int at = random.Next(valid.Length);
                return (valid[..at], $"cut to {at} chars");
            }
            case 2:
            {
                int at = random.Next(valid.Length), n = Math.Min(random.Next(1, 6), valid.Length - at);
                return (valid[..at] + valid[(at + n)..], $"{n} chars removed at {at}");
            }
            default: // replace one value (after a ':') with another JSON value of any type
            {
                var colons = Enumerable.Range(0, valid.Length).Where(p => valid[p] == ':').ToArray();
                int start = colons[random.Next(colons.Length)] + 1;
                int end = start;
                int depth = 0;
                bool inString = false;
                for (; end < valid.Length; end++)
                {
                    char c = valid[end];
                    if (inString) { if (c == '"' && valid[end - 1] != '\\') inString = false; continue; }
                    if (c == '"') inString = true;
                    else if (c is '[' or '{') depth++;
                    else if (c is ']' or '}') { if (depth == 0) break; depth--; }
                    else if (c == ',' && depth == 0) break;
                }
                string value = Replacements[random.Next(Replacements.Length)];
                return (valid[..start] + " " + value + valid[end..], $"value at {start} -> {value}");
            }
        }
    }
}
