using System.Text;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>Streaming decoding holds back unfinished UTF-8 and adds up to Decode (the corpus-wide check is in the golden tests).</summary>
public class StreamingDecoderTests
{
    [Fact]
    public void HoldsBackBytesUntilTheCharacterIsWhole()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var ids = tokenizer.Encode("ok 😀", addSpecialTokens: false);
        var decoder = tokenizer.CreateStreamingDecoder();
        var pieces = ids.Select(decoder.Append).ToList();
        pieces.Add(decoder.Flush());
        Assert.Equal("ok 😀", string.Concat(pieces));
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.Contains("", pieces); // the emoji's first bytes produced nothing yet
        Assert.Equal("😀", pieces.Last(p => p.Length > 0).TrimStart());
    }

    [Fact]
    public void UnfinishedUtf8IsFlushedAsReplacementCharacter()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var ids = tokenizer.Encode("中", addSpecialTokens: false);
        int firstByte = tokenizer.TokenToId("\u00E4")!.Value; // byte 0xE4, the first of 中's three
        var decoder = tokenizer.CreateStreamingDecoder();
        Assert.Equal("a", decoder.Append(tokenizer.TokenToId("a")!.Value));
        Assert.Equal("", decoder.Append(firstByte));
        Assert.Equal("\uFFFD", decoder.Flush());
        Assert.Equal("a\uFFFD", tokenizer.Decode([tokenizer.TokenToId("a")!.Value, firstByte]));
        // after a flush it starts afresh
        Assert.Equal("中", string.Concat(ids.Select(decoder.Append)) + decoder.Flush());
    }

    [Fact]
    public void InvalidBytesComeOutAsSoonAsTheyAreKnownInvalid()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        int e4 = tokenizer.TokenToId("\u00E4")!.Value;
        int a = tokenizer.TokenToId("a")!.Value;
        var decoder = tokenizer.CreateStreamingDecoder();
        Assert.Equal("", decoder.Append(e4));
        Assert.Equal("\uFFFDa", decoder.Append(a)); // 0xE4 then 'a': the sequence is broken, 'a' stands
        Assert.Equal("", decoder.Flush());
        Assert.Equal("\uFFFDa", tokenizer.Decode([e4, a]));
    }

    [Fact]
    public void SkipsSpecialTokensWhenAsked()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var ids = tokenizer.Encode("Hi<\uFF5Cend\u2581of\u2581sentence\uFF5C>");
        var skipping = tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        Assert.True(skipping.SkipSpecialTokens);
        Assert.Equal("Hi", string.Concat(ids.Select(skipping.Append)) + skipping.Flush());
        var keeping = tokenizer.CreateStreamingDecoder();
        Assert.Equal(tokenizer.Decode(ids), string.Concat(ids.Select(keeping.Append)) + keeping.Flush());
    }

    [Fact]
    public void EveryCutOfAMultilingualTextAddsUp()
    {
        var tokenizer = TokenizerFixtures.Get("qwen2_5");
        string text = "Tiếng Việt 深度求索 𠮷野家 👨‍👩‍👧‍👦 🇯🇵 हिन्दी";
        var ids = tokenizer.Encode(text);
        var decoder = tokenizer.CreateStreamingDecoder();
        var all = new StringBuilder();
        foreach (int id in ids)
        {
            all.Append(decoder.Append(id));
            Assert.StartsWith(all.ToString(), text, StringComparison.Ordinal);
        }
        Assert.Equal(text, all.Append(decoder.Flush()).ToString());
    }
}
