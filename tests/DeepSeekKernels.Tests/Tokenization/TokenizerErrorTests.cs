using System.Text.Json.Nodes;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>Folders that cannot be read give errors that name the file, the field and the value.</summary>
public class TokenizerErrorTests
{
    [Fact]
    public void MissingFolderOrFile()
    {
        string missing = Path.Combine(Path.GetTempPath(), "dsk-no-such-folder-" + Guid.NewGuid().ToString("N"));
        Assert.Throws<DirectoryNotFoundException>(() => HfTokenizer.FromFolder(missing));
        using var folders = new TokenizerFolders();
        string empty = folders.Write(new Dictionary<string, object>());
        var error = Assert.Throws<FileNotFoundException>(() => HfTokenizer.FromFolder(empty));
        Assert.Equal(Path.Combine(empty, "tokenizer.json"), error.FileName);
        Assert.Contains("tokenizer.json", error.Message);
        Assert.Throws<ArgumentNullException>(() => HfTokenizer.FromFolder(null!));
    }

    public static TheoryData<string, string, string> Unsupported() => new()
    {
        // (JSON field to replace, new value, text the message must hold)
        { "model", """{"type": "WordPiece", "vocab": {"a": 0}}""", "$.model.type is \"WordPiece\"" },
        { "model", """{"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}""", "byte_fallback" },
        { "normalizer", """{"type": "NFKC"}""", "$.normalizer.type is \"NFKC\"" },
        { "normalizer", """{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}""", "$.normalizer.normalizers[1].type is \"Lowercase\"" },
        { "pre_tokenizer", """{"type": "Metaspace", "replacement": "▁"}""", "$.pre_tokenizer.type is \"Metaspace\"" },
        { "pre_tokenizer", """{"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "Digits"}]}""", "ByteLevel is supported only as the last step" },
        { "pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "\\p{Han}+"}, "behavior": "Isolated", "invert": false}""", "\\p{Han}+" },
        { "pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false}""", "\"Sideways\"" },
        { "post_processor", """{"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}""", "$.post_processor.type is \"RobertaProcessing\"" },
        { "decoder", """{"type": "Metaspace"}""", "$.decoder.type is \"Metaspace\"" },
        { "decoder", "null", "$.decoder is null" },
    };

    [Theory, MemberData(nameof(Unsupported))]
    public void UnsupportedComponentsAreNamed(string field, string json, string expected)
    {
        using var folders = new TokenizerFolders();
        var tokenizer = TokenizerFolders.PydocJson();
        tokenizer[field] = JsonNode.Parse(json);
        string folder = folders.Write(new Dictionary<string, object> { ["tokenizer.json"] = tokenizer });
        var error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromFolder(folder));
        Assert.Contains(expected, error.Message);
        Assert.Contains(Path.Combine(folder, "tokenizer.json"), error.Message);
        Assert.Equal(Path.Combine(folder, "tokenizer.json"), error.FilePath);
    }

    [Fact]
    public void MalformedFiles()
    {
        using var folders = new TokenizerFolders();
        string folder = folders.Write(new Dictionary<string, object> { ["tokenizer.json"] = "{ not json" });
        var error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromFolder(folder));
        Assert.Contains("is not valid JSON", error.Message);

        var badMerge = TokenizerFolders.PydocJson();
        badMerge["model"]!["merges"]!.AsArray().Add(JsonNode.Parse("""["no-such", "token"]"""));
        folder = folders.Write(new Dictionary<string, object> { ["tokenizer.json"] = badMerge });
        error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromFolder(folder));
        Assert.Contains("$.model", error.Message);
        Assert.Contains("no-such", error.Message);

        // Found by TokenizerFileFuzzTests: an id given to two tokens escaped as a bare ArgumentException.
        var sharedId = TokenizerFolders.PydocJson();
        sharedId["model"]!["vocab"]!["zzzz-extra"] = 5;
        folder = folders.Write(new Dictionary<string, object> { ["tokenizer.json"] = sharedId });
        error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromFolder(folder));
        Assert.Contains("$.model.vocab gives the id 5 to both", error.Message);
        Assert.Contains("\"zzzz-extra\"", error.Message);
    }

    [Fact]
    public void ConfigTokensMustBeInTheVocabulary()
    {
        using var folders = new TokenizerFolders();
        string folder = folders.Write(new Dictionary<string, object>
        {
            ["tokenizer.json"] = TokenizerFolders.PydocJson(),
            ["tokenizer_config.json"] = new JsonObject { ["bos_token"] = new JsonObject { ["content"] = "<s>" }, ["add_bos_token"] = true },
        });
        var error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromFolder(folder));
        Assert.Contains("tokenizer_config.json: $.bos_token is \"<s>\", which is not in the vocabulary", error.Message);

        folder = folders.Write(new Dictionary<string, object>
        {
            ["tokenizer.json"] = TokenizerFolders.PydocJson(),
            ["tokenizer_config.json"] = new JsonObject { ["add_bos_token"] = "yes" },
        });
        error = Assert.Throws<TokenizerException>(() => HfTokenizer.FromFolder(folder));
        Assert.Contains("$.add_bos_token is \"yes\", not true or false", error.Message);
    }
}
