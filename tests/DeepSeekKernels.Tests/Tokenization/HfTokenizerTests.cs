using System.Text.Json.Nodes;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>The API around encoding: special tokens, lookups, added-token flags, bad ids.</summary>
public class HfTokenizerTests
{
    const string Bos = "<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>";
    const string Eos = "<\uFF5Cend\u2581of\u2581sentence\uFF5C>";

    [Fact]
    public void DeepSeekV3SpecialTokensAndSizes()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        Assert.Equal(0, tokenizer.BosId);
        Assert.Equal(Bos, tokenizer.BosToken);
        Assert.Equal(1, tokenizer.EosId);
        Assert.Equal(Eos, tokenizer.EosToken);
        Assert.Equal([1], tokenizer.EosIds);
        Assert.Equal(128815, tokenizer.VocabSize);
        Assert.Equal(128803, tokenizer.TokenToId(ChatFormat.UserMarker));
        Assert.Equal(128804, tokenizer.TokenToId(ChatFormat.AssistantMarker));
        Assert.Equal(ChatFormat.UserMarker, tokenizer.IdToToken(128803));
        Assert.Null(tokenizer.TokenToId("no such token"));
        Assert.Equal("\u0120the", tokenizer.IdToToken(tokenizer.TokenToId("\u0120the")!.Value)); // byte-level form
        Assert.EndsWith("tokenizer.json", tokenizer.TokenizerPath);
    }

    [Fact]
    public void EncodeAddsBosPerTokenizerConfigAndNeverTwice()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var plain = tokenizer.Encode("Hello", addSpecialTokens: false);
        Assert.Equal([0, .. plain], tokenizer.Encode("Hello"));
        Assert.Equal([0], tokenizer.Encode(""));
        Assert.Empty(tokenizer.Encode("", addSpecialTokens: false));
        // BOS written in the text is the added token, not BOS text split into pieces
        Assert.Equal([0, 0, .. plain], tokenizer.Encode(Bos + "Hello"));
    }

    [Fact]
    public void QwenAddsNothingAndTemplateTokenizersAddTheirBos()
    {
        var qwen = TokenizerFixtures.Get("qwen2_5");
        Assert.Null(qwen.BosId);
        Assert.Equal("<|im_end|>", qwen.EosToken);
        Assert.Equal(qwen.Encode("hi", false), qwen.Encode("hi"));

        var llama3Style = TokenizerFixtures.Get("tiny-llama3"); // no tokenizer_config.json: TemplateProcessing adds BOS
        Assert.Equal(0, llama3Style.BosId);
        Assert.Equal([0, .. llama3Style.Encode("hi", false)], llama3Style.Encode("hi"));
    }

    [Fact]
    public void AddedTokenFlagsAreHonoured()
    {
        var tokenizer = TokenizerFixtures.Get("tiny-qwen2");
        int mask = tokenizer.TokenToId("<mask>")!.Value;
        int ony = tokenizer.TokenToId("ony")!.Value;
        // lstrip and rstrip take the spaces around <mask>; single_word "ony" only where it stands alone
        var ids = tokenizer.Encode("a <mask> b", false);
        Assert.Equal([.. tokenizer.Encode("a", false), mask, .. tokenizer.Encode("b", false)], ids);
        Assert.Contains(ony, tokenizer.Encode("x ony y", false));
        Assert.DoesNotContain(ony, tokenizer.Encode("pony", false));
        // normalized: "été" matches its decomposed spelling after NFC; Ñ (not normalized) only as written
        int ete = tokenizer.TokenToId("\u00E9t\u00E9")!.Value;
        Assert.Equal([ete], tokenizer.Encode("e\u0301te\u0301", false));
        // an added token whose text the model already has takes the model's id (Hugging Face does the same)
        Assert.Equal(143, tokenizer.TokenToId("\u00D1"));
        Assert.Equal(2055, tokenizer.VocabSize);
    }

    [Fact]
    public void SpecialTokensAreSkippedOnlyWhenAsked()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var ids = tokenizer.Encode(Bos + "Hi" + ChatFormat.UserMarker + "there" + Eos, addSpecialTokens: false);
        Assert.Equal(Bos + "Hi" + ChatFormat.UserMarker + "there" + Eos, tokenizer.Decode(ids));
        // <｜User｜> is an added token but not a special one
        Assert.Equal("Hi" + ChatFormat.UserMarker + "there", tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void DecodeOfHalfACharacterGivesReplacementCharacter()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var ids = tokenizer.Encode("😀", addSpecialTokens: false); // four bytes, more than one byte-level token
        Assert.True(ids.Length > 1);
        Assert.Equal("\uFFFD", tokenizer.Decode(ids.AsSpan(0, 1)));
        Assert.Equal("😀", tokenizer.Decode(ids));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(128815)]
    [InlineData(int.MaxValue)]
    public void BadIdsAreRejectedByName(int id)
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([5, id]));
        Assert.Contains($"token id {id} at position 1", error.Message);
        Assert.Equal(id, error.ActualValue);
        Assert.Equal("ids", error.ParamName);
        Assert.Equal("id", Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.IdToToken(id)).ParamName);
        Assert.Equal("id", Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.CreateStreamingDecoder().Append(id)).ParamName);
    }

    [Fact]
    public void EosIdsIncludeGenerationConfig()
    {
        using var folders = new TokenizerFolders();
        string folder = folders.Write(new Dictionary<string, object>
        {
            ["tokenizer.json"] = TokenizerFolders.PydocJson(),
            ["tokenizer_config.json"] = new JsonObject { ["eos_token"] = Eos, ["bos_token"] = new JsonObject { ["content"] = Bos } },
            ["generation_config.json"] = new JsonObject { ["eos_token_id"] = new JsonArray(1, 5, 1) },
        });
        var tokenizer = HfTokenizer.FromFolder(folder);
        Assert.Equal([1, 5], tokenizer.EosIds);
        Assert.Equal(0, tokenizer.BosId);
        // no add_bos_token in the config and no template: nothing is added
        Assert.Equal(tokenizer.Encode("x", false), tokenizer.Encode("x"));
    }

    [Fact]
    public void AddEosTokenAppendsEos()
    {
        using var folders = new TokenizerFolders();
        var tokenizer = folders.Load(TokenizerFolders.PydocJson(),
            new JsonObject { ["bos_token"] = Bos, ["eos_token"] = Eos, ["add_bos_token"] = false, ["add_eos_token"] = true });
        Assert.Equal([.. tokenizer.Encode("x", false), 1], tokenizer.Encode("x"));
    }
}
