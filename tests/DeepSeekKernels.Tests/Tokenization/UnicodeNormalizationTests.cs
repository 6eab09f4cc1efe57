using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// NFC/NFD (Qwen2's normalizer) against Hugging Face's: hashes of its output around every code point of planes 0
/// and 1 (tests/fixtures/tokenizers/normalization.golden.json, from scripts/tokenizer-golden/unicode-data.js),
/// and cases worked by hand.
/// </summary>
public class UnicodeNormalizationTests
{
    [Fact]
    public void DotNetsOwnNormalizeDoesNothingInInvariantMode()
    {
        // Why the library has its own tables: this test process runs with InvariantGlobalization.
        Assert.Equal("e\u0301", "e\u0301".Normalize(NormalizationForm.FormC));
        Assert.Equal("\u00E9", UnicodeNormalization.ToNfc("e\u0301"));
    }

    [Theory]
    [InlineData("e\u0301", "\u00E9")]
    [InlineData("A\u030A", "\u00C5")]
    [InlineData("\u212B", "\u00C5")]                   // Angstrom sign: a singleton, never composed back
    [InlineData("\u2126", "\u03A9")]                   // Ohm sign
    [InlineData("s\u0307\u0323", "\u1E69")]            // reordered (dot below first), then composed twice
    [InlineData("\u1E0B\u0323", "\u1E0D\u0307")]
    [InlineData("\u0915\u093C", "\u0915\u093C")]       // U+0958 is a composition exclusion
    [InlineData("\u0958", "\u0915\u093C")]
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]       // Hangul jamo L V T
    [InlineData("\uAC00\u11A8", "\uAC01")]
    [InlineData("Vie\u0323\u0302t", "Vi\u1EC7t")]
    [InlineData("a\u0334\u0301", "\u00E1\u0334")]      // U+0301 (class 230) is not blocked by U+0334 (class 1)
    [InlineData("\u0301e", "\u0301e")]                 // a mark with nothing before it stays
    [InlineData("\U0001D15E", "\U0001D157\U0001D165")] // musical half note: excluded from composition
    [InlineData("plain ASCII", "plain ASCII")]
    public void ComposesAsNfc(string input, string expected) =>
        Assert.Equal(Hex(expected), Hex(UnicodeNormalization.ToNfc(input)));

    [Theory]
    [InlineData("\u00E9", "e\u0301")]
    [InlineData("\u1E69", "s\u0323\u0307")]
    [InlineData("\uAC01", "\u1100\u1161\u11A8")]
    [InlineData("a\u0301\u0316", "a\u0316\u0301")]     // class 220 before class 230
    public void DecomposesAsNfd(string input, string expected) =>
        Assert.Equal(Hex(expected), Hex(UnicodeNormalization.ToNfd(input)));

    [Fact]
    public void AgreesWithHuggingFaceAroundEveryCodePoint()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Directory, "normalization.golden.json")));
        var blocks = document.RootElement.GetProperty("blocks");
        Assert.True(blocks.GetArrayLength() > 30);
        foreach (var block in blocks.EnumerateArray())
        {
            int first = block.GetProperty("first").GetInt32(), end = block.GetProperty("end").GetInt32();
            using var nfc = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var nfd = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (int cp = first; cp < end; cp++)
            {
                if (cp is >= 0xD800 and <= 0xDFFF)
                    continue;
                string c = char.ConvertFromUtf32(cp);
                foreach (var input in new[] { c, "a" + c + "\u0334\u0301", c + "\u0323\u0300", c + "\u1161\u11A8" })
                {
                    nfc.AppendData(Encoding.UTF8.GetBytes(UnicodeNormalization.ToNfc(input) + "\0"));
                    nfd.AppendData(Encoding.UTF8.GetBytes(UnicodeNormalization.ToNfd(input) + "\0"));
                }
            }
            Assert.True(block.GetProperty("nfc").GetString() == Convert.ToHexStringLower(nfc.GetHashAndReset()), $"NFC differs from Hugging Face's in U+{first:X4}..U+{end - 1:X4}");
            Assert.True(block.GetProperty("nfd").GetString() == Convert.ToHexStringLower(nfd.GetHashAndReset()), $"NFD differs from Hugging Face's in U+{first:X4}..U+{end - 1:X4}");
        }
    }

    static string Hex(string text) => string.Join(" ", text.EnumerateRunes().Select(r => $"U+{r.Value:X4}"));
}
