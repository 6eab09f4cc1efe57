using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;
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
        var tally = new FuzzTally($"damaged {damagedFile}");
        for (int i = 0; i < CasesPerFile; i++)
        {
            string valid = damagedFile == "tokenizer.json" ? tokenizerJson : configJson;
            var (text, what) = JsonDamage.Apply(valid, random);
            string folder = _temp.Subfolder($"{damagedFile}-{i}");
            File.WriteAllText(Path.Combine(folder, "tokenizer.json"), damagedFile == "tokenizer.json" ? text : tokenizerJson);
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), damagedFile == "tokenizer.json" ? configJson : text);
            tally.Run(i, what, () =>
            {
                var tokenizer = HfTokenizer.FromFolder(folder);
                _ = tokenizer.Decode(tokenizer.Encode("The list type is a mutable sequence. ü 👍"));
            }, e => e is TokenizerException t && t.FilePath == Path.Combine(folder, damagedFile));
        }
        tally.AssertClean();
    }
}
