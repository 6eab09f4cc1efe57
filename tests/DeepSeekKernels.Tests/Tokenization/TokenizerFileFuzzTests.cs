using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// Damaged tokenizer files: the embedded model's tokenizer.json and tokenizer_config.json with seeded random
/// damage (characters changed or removed, the file cut short, values replaced by JSON values of other types).
/// Loading the folder and encoding and decoding a line must either work or throw a
/// <see cref="TokenizerException"/> naming the damaged file: never another exception.
/// </summary>
public sealed class TokenizerFileFuzzTests : IDisposable
{
    const int CasesPerFile = 150;
    readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("tokenizer.json")]
    [InlineData("tokenizer_config.json")]
    public void EveryDamagedFileLoadsOrIsRefusedClearly(string damagedFile)
    {
        string source = CheckpointFixtures.PydocTiny;
        string tokenizerJson = File.ReadAllText(Path.Combine(source, "tokenizer.json"));
        string configJson = File.ReadAllText(Path.Combine(source, "tokenizer_config.json"));
        var random = new Random(20261123 + damagedFile.Length);
        int loaded = 0, refused = 0;
        var stray = new List<string>();
        for (int i = 0; i < CasesPerFile; i++)
        {
            string valid = damagedFile == "tokenizer.json" ? tokenizerJson : configJson;
            var (text, what) = JsonDamage.Apply(valid, random);
            string folder = _temp.Subfolder($"{damagedFile}-{i}");
            File.WriteAllText(Path.Combine(folder, "tokenizer.json"), damagedFile == "tokenizer.json" ? text : tokenizerJson);
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), damagedFile == "tokenizer.json" ? configJson : text);
            try
            {
                var tokenizer = HfTokenizer.FromFolder(folder);
                var ids = tokenizer.Encode("The list type is a mutable sequence. ü 👍");
                _ = tokenizer.Decode(ids);
                loaded++;
            }
            catch (TokenizerException e)
            {
                Assert.Equal(Path.Combine(folder, damagedFile), e.FilePath);
                refused++;
            }
            catch (Exception e)
            {
                stray.Add($"case {i} ({what}): {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(stray.Count == 0, $"{damagedFile}: {stray.Count} stray exceptions:\n" + string.Join("\n", stray));
        Assert.True(loaded > 0 && refused > 0, $"{loaded} loaded, {refused} refused");
    }
}
