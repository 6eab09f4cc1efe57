using System.Text.Json.Nodes;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>Tokenizer folders made for one test: the embedded model's tokenizer.json, changed, in a temporary folder.</summary>
public sealed class TokenizerFolders : IDisposable
{
    readonly List<string> _folders = [];

    /// <summary>The embedded model's tokenizer.json as a mutable JSON tree.</summary>
    public static JsonObject PydocJson() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.PydocTiny, "tokenizer.json")))!.AsObject();

    /// <summary>A minimal byte-level tokenizer.json around <paramref name="preTokenizer"/>: a 256-byte vocabulary, no merges.</summary>
    public static JsonObject Minimal(JsonNode? preTokenizer)
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++)
            vocab[ByteLevelAlphabetChar(b).ToString()] = b;
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
    }

    /// <summary>A "Split" pre-tokenizer with a regex, Isolated.</summary>
    public static JsonObject Split(string regex) => new()
    {
        ["type"] = "Split",
        ["pattern"] = new JsonObject { ["Regex"] = regex },
        ["behavior"] = "Isolated",
        ["invert"] = false,
    };

    /// <summary>Writes the files (name -> JSON tree or text) to a new temporary folder, deleted with this object.</summary>
    public string Write(IReadOnlyDictionary<string, object> files)
    {
        var text = files.ToDictionary(f => f.Key, f => f.Value is JsonNode node ? node.ToJsonString() : (string)f.Value);
        string folder = TokenizerFixtures.TempFolder(text);
        _folders.Add(folder);
        return folder;
    }

    /// <summary>Writes <paramref name="tokenizerJson"/> (and a tokenizer_config.json when given) and reads it.</summary>
    public HfTokenizer Load(JsonNode tokenizerJson, JsonNode? config = null)
    {
        var files = new Dictionary<string, object> { ["tokenizer.json"] = tokenizerJson };
        if (config is not null)
            files["tokenizer_config.json"] = config;
        return HfTokenizer.FromFolder(Write(files));
    }

    public void Dispose()
    {
        foreach (var folder in _folders)
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    static char ByteLevelAlphabetChar(int b)
    {
        bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        if (printable)
            return (char)b;
        int n = 0;
        for (int i = 0; i < b; i++)
        {
            if (!(i is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF))
                n++;
        }
        return (char)(256 + n);
    }
}
