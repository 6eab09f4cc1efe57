using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// Every tokenizer in tests/fixtures/tokenizers against Hugging Face's own output (scripts/tokenizer-golden) on
/// every corpus line: ids with and without special tokens, pre-tokenisation, normalisation, decoding; and
/// round trips and streaming decoding. A failure names the line and shows both sides.
/// </summary>
public class HfTokenizerGoldenTests
{
    public static TheoryData<string> Names() => TokenizerFixtures.Names();

    static readonly JsonSerializerOptions Readable = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static string Quote(string text) => JsonSerializer.Serialize(text, Readable);

    [Fact]
    public void TheCorpusIsVariedEnough()
    {
        var corpus = TokenizerFixtures.Corpus;
        Assert.True(corpus.Length >= 80, $"{corpus.Length} corpus lines");
        Assert.Contains("", corpus);
        Assert.Contains(corpus, l => l.EnumerateRunes().Any(r => r.Value >= 0x20000 && r.Value < 0x30000)); // astral CJK
        Assert.Contains(corpus, l => l.EnumerateRunes().Any(r => r.Value >= 0x1D400 && r.Value < 0x1D800)); // math letters, digits
        Assert.Contains(corpus, l => l.Contains("\u200D", StringComparison.Ordinal));                        // ZWJ sequences
        Assert.Contains(corpus, l => l.Contains("<\uFF5CUser\uFF5C>", StringComparison.Ordinal));
        foreach (var name in TokenizerFixtures.NameList)
            Assert.Equal(corpus.Length, TokenizerFixtures.Golden(name).Length);
    }

    [Theory, MemberData(nameof(Names))]
    public void EncodeGivesHuggingFaceIdsOnEveryLine(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        var golden = TokenizerFixtures.Golden(name);
        var corpus = TokenizerFixtures.Corpus;
        int matches = 0;
        string? first = null;
        for (int i = 0; i < corpus.Length; i++)
        {
            var ours = tokenizer.Encode(corpus[i], addSpecialTokens: false);
            if (ours.SequenceEqual(golden[i].Ids))
                matches++;
            else
                first ??= $"line {i + 1} {Quote(corpus[i])}:\n  HF:   {TokenizerFixtures.Show(golden[i].Ids)}\n  ours: {TokenizerFixtures.Show(ours)}";
        }
        Assert.True(first is null, $"{name}: {matches}/{corpus.Length} lines match; first mismatch at {first}");
    }

    [Theory, MemberData(nameof(Names))]
    public void EncodeWithSpecialTokensAddsWhatTransformersAdds(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        var golden = TokenizerFixtures.Golden(name);
        var corpus = TokenizerFixtures.Corpus;
        for (int i = 0; i < corpus.Length; i++)
        {
            var ours = tokenizer.Encode(corpus[i]);
            Assert.True(ours.SequenceEqual(golden[i].WithSpecial),
                $"{name}, line {i + 1} {Quote(corpus[i])}:\n  HF:   {TokenizerFixtures.Show(golden[i].WithSpecial)}\n  ours: {TokenizerFixtures.Show(ours)}");
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void PreTokenizerSplitsAsHuggingFace(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        var golden = TokenizerFixtures.Golden(name);
        var corpus = TokenizerFixtures.Corpus;
        for (int i = 0; i < corpus.Length; i++)
        {
            if (golden[i].Pre is not { } expected)
                continue;
            var ours = tokenizer.PreTokenizeForTest(corpus[i]);
            Assert.True(ours.SequenceEqual(expected),
                $"{name}, line {i + 1} {Quote(corpus[i])}:\n  HF:   {Quote(string.Join(" | ", expected))}\n  ours: {Quote(string.Join(" | ", ours))}");
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void NormalizerMatchesHuggingFace(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        var golden = TokenizerFixtures.Golden(name);
        var corpus = TokenizerFixtures.Corpus;
        for (int i = 0; i < corpus.Length; i++)
        {
            string expected = golden[i].Norm ?? corpus[i];
            Assert.True(expected == tokenizer.NormalizeForTest(corpus[i]), $"{name}, line {i + 1} {Quote(corpus[i])}: HF {Quote(expected)}, ours {Quote(tokenizer.NormalizeForTest(corpus[i]))}");
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void DecodeMatchesHuggingFace(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        var golden = TokenizerFixtures.Golden(name);
        for (int i = 0; i < golden.Length; i++)
        {
            var g = golden[i];
            Assert.True(g.Text == tokenizer.Decode(g.WithSpecial), $"{name}, line {i + 1}: HF {Quote(g.Text)}, ours {Quote(tokenizer.Decode(g.WithSpecial))}");
            Assert.True(g.Skip == tokenizer.Decode(g.WithSpecial, skipSpecialTokens: true),
                $"{name}, line {i + 1} (skipping special tokens): HF {Quote(g.Skip)}, ours {Quote(tokenizer.Decode(g.WithSpecial, true))}");
            var half = g.Ids.AsSpan(0, (g.Ids.Length + 1) / 2);
            Assert.True(g.Half == tokenizer.Decode(half), $"{name}, line {i + 1} (first half): HF {Quote(g.Half)}, ours {Quote(tokenizer.Decode(half))}");
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void DecodeOfEncodeGivesTheTextBackWhereHuggingFaceDoes(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        var golden = TokenizerFixtures.Golden(name);
        var corpus = TokenizerFixtures.Corpus;
        for (int i = 0; i < corpus.Length; i++)
        {
            if (tokenizer.Decode(golden[i].Ids) != corpus[i])
                continue; // a prefix space, a removed delimiter, a stripped added token or NFC changes the text
            string back = tokenizer.Decode(tokenizer.Encode(corpus[i], addSpecialTokens: false));
            Assert.True(back == corpus[i], $"{name}, line {i + 1}: {Quote(corpus[i])} came back as {Quote(back)}");
        }
    }

    [Theory]
    [InlineData("deepseek_v3")]
    [InlineData("dsv3-pydoc-tiny")]
    [InlineData("qwen2_5")]
    public void RealTokenizersRoundTripEveryLineNfcLeavesAlone(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        int checkedLines = 0;
        foreach (var line in TokenizerFixtures.Corpus)
        {
            if (tokenizer.NormalizeForTest(line) != line)
                continue;
            Assert.Equal(line, tokenizer.Decode(tokenizer.Encode(line, addSpecialTokens: false)), StringComparer.Ordinal);
            if (!line.Contains('<'))
                Assert.Equal(line, tokenizer.Decode(tokenizer.Encode(line), skipSpecialTokens: true), StringComparer.Ordinal);
            checkedLines++;
        }
        Assert.True(checkedLines >= TokenizerFixtures.Corpus.Length - 5, $"{checkedLines} lines checked");
    }

    [Theory, MemberData(nameof(Names))]
    public void StreamingDecodingEqualsDecode(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        foreach (var g in TokenizerFixtures.Golden(name))
        {
            foreach (bool skip in new[] { false, true })
            {
                var decoder = tokenizer.CreateStreamingDecoder(skip);
                var all = new StringBuilder();
                string expected = tokenizer.Decode(g.WithSpecial, skip);
                foreach (int id in g.WithSpecial)
                {
                    string piece = decoder.Append(id);
                    // Never half a character: no piece ends in a high surrogate or adds U+FFFD the full text lacks,
                    // and what has come out so far is a prefix of the full text.
                    Assert.False(piece.Length > 0 && char.IsHighSurrogate(piece[^1]), $"{Quote(piece)} ends in half a surrogate pair");
                    all.Append(piece);
                    Assert.StartsWith(all.ToString(), expected, StringComparison.Ordinal);
                }
                all.Append(decoder.Flush());
                Assert.Equal(expected, all.ToString());
            }
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void VocabSizeCountsAddedTokens(string name)
    {
        var tokenizer = TokenizerFixtures.Get(name);
        Assert.Equal(TokenizerFixtures.Describe(name).VocabSize, tokenizer.VocabSize);
        for (int id = 0; id < tokenizer.VocabSize; id += Math.Max(1, tokenizer.VocabSize / 997))
            Assert.Equal(id, tokenizer.TokenToId(tokenizer.IdToToken(id)));
    }
}
