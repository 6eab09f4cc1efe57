using System.Text.RegularExpressions;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// Split regexes must match whole code points as Hugging Face's engine does, also outside the BMP. Each expected
/// split below is what Hugging Face tokenizers 0.23.2 gives for a Split(Isolated) pre-tokenizer with that pattern.
/// </summary>
public class CodePointRegexTests
{
    public static TheoryData<string, string, string[]> HuggingFaceSplits() => new()
    {
        // three mathematical bold digits (U+1D7CF..) are one \p{N}{1,3} group, as three ASCII digits are
        { @"\p{N}{1,3}", "𝟏𝟐𝟑𝟒 12𝟑4", ["𝟏𝟐𝟑", "𝟒", " ", "12𝟑", "4"] },
        // CJK Extension B (U+20000) and Deseret (U+10400, U+10428) are letters
        { @"\p{L}+", "a𠀀b中 𐐀𐐨x", ["a𠀀b中", " ", "𐐀𐐨x"] },
        // DeepSeek-V3's letter rule: math letters, Brahmi letters with an astral combining mark (virama), a tag character (Cf)
        { @"[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+", " 𝐀𝐁 𑀩𑁆𑀭 \U000E0067x", [" 𝐀𝐁", " 𑀩𑁆𑀭", " ", "\U000E0067x"] },
        // emoji are symbols (So), skin-tone modifiers too (Sk); ZWJ (Cf) and VS16 (Mn) are not
        { @" ?[\p{P}\p{S}]+[\r\n]*", " 👍🏽😀!\n 🏴\u200D☠\uFE0F", [" 👍🏽😀!\n", " 🏴", "\u200D", "☠", "\uFE0F"] },
        // a negated class takes a ZWJ family and a flag (two regional indicators) whole
        { @"[^\s\p{L}\p{N}]+", "👨\u200D👩\u200D👧 a🇨🇳b", ["👨\u200D👩\u200D👧", " a", "🇨🇳", "b"] },
        { @"\s+(?!\S)|\s+", "a  😀  \u3000𠀀", ["a", " ", " ", "😀", "  ", "\u3000", "𠀀"] },
        // a range written in the pattern is not matched by a stand-in: U+10400 is a capital letter like U+0531
        { @"[\u0531-\u0556]+", "Ա𐐀Բ", ["Ա", "𐐀", "Բ"] },
    };

    [Theory, MemberData(nameof(HuggingFaceSplits))]
    public void SplitsAsHuggingFace(string pattern, string text, string[] expected)
    {
        using var folders = new TokenizerFolders();
        var tokenizer = folders.Load(TokenizerFolders.Minimal(TokenizerFolders.Split(pattern)));
        var pieces = tokenizer.PreTokenizeForTest(text);
        Assert.Equal(expected, pieces);
    }

    [Fact]
    public void DotNetsOwnRegexWouldSplitDifferently()
    {
        // The trap this class exists for: on UTF-16, \p{N} never matches U+1D7CF and a negated class takes one surrogate.
        Assert.Empty(Regex.Matches("𝟏𝟐𝟑𝟒", @"\p{N}{1,3}"));
        Assert.Equal(2, Regex.Matches("😀", @"[^\p{L}]").Count);

        var regex = new CodePointRegex(@"\p{N}{1,3}");
        var matches = new List<(int, int)>();
        regex.Matches("𝟏𝟐𝟑𝟒", matches);
        Assert.Equal([(0, 6), (6, 8)], matches); // UTF-16 positions of the original text
    }

    [Fact]
    public void CombiningMarksAndZwjSequencesStayWhereTheyBelong()
    {
        var regex = new CodePointRegex(@"[\p{L}\p{M}]+");
        var matches = new List<(int Start, int End)>();
        string text = "e\u0301 क्\u200Dष 𑀩𑁆";
        regex.Matches(text, matches);
        Assert.Equal(["e\u0301", "क्", "ष", "𑀩𑁆"], matches.Select(m => text[m.Start..m.End]));
    }

    [Fact]
    public void StandInsAvoidWhatThePatternNames()
    {
        // Armenian capitals are the first stand-in for Lu; written in the pattern, the next candidate is used.
        var regex = new CodePointRegex("[\u0531-\u0556]");
        var matches = new List<(int, int)>();
        regex.Matches("\U00010400", matches);
        Assert.Empty(matches);

        Assert.ThrowsAny<ArgumentException>(() => new CodePointRegex("(unclosed"));
    }

    [Fact]
    public void UnpairedSurrogatesAreEncodedAsReplacementCharacters()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        Assert.Equal(tokenizer.Encode("a\uFFFDb\uFFFD"), tokenizer.Encode("a\uD800b\uDFFF"));
        Assert.Equal(tokenizer.Encode("x\uFFFD😀"), tokenizer.Encode("x\uDBFF😀"));
    }
}
