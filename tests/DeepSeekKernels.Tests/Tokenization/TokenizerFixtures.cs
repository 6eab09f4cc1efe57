using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text.Json;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// The tokenizer fixtures (tests/fixtures/tokenizers, written by scripts/tokenizer-golden/golden.js): the corpus,
/// each tokenizer's folder (tokenizer.json stored gzip-compressed) and Hugging Face's golden output for every
/// corpus line. Found by walking up from the test assembly to the repository root; each tokenizer is read once.
/// </summary>
public static class TokenizerFixtures
{
    /// <summary>One manifest entry: where the tokenizer is, its vocabulary size, and the ids encoding with special
    /// tokens puts before and after the text.</summary>
    public sealed record Entry(string Name, string Folder, int VocabSize, int[] Prefix, int[] Suffix);

    /// <summary>Hugging Face's output for one corpus line: ids without and with special tokens, the decoded text
    /// of WithSpecial (as is and skipping special tokens), of the first half of Ids, the pre-tokenizer's pieces,
    /// the normalised text (null where the normalizer leaves the line as it is).</summary>
    public sealed record GoldenLine(int[] Ids, int[] WithSpecial, string Text, string Skip, string Half, string[]? Pre, string? Norm);

    static readonly Lazy<Dictionary<string, Entry>> Manifest = new(ReadManifest);
    static readonly Lazy<string[]> CorpusLines = new(ReadCorpus);
    static readonly ConcurrentDictionary<string, Lazy<HfTokenizer>> Loaded = new();
    static readonly ConcurrentDictionary<string, Lazy<GoldenLine[]>> Goldens = new();

    /// <summary>The repository root.</summary>
    public static string RepositoryRoot => Support.RepositoryRoot.Path;

    /// <summary>tests/fixtures/tokenizers.</summary>
    public static string Directory => Path.Combine(RepositoryRoot, "tests", "fixtures", "tokenizers");

    /// <summary>The embedded model's folder.</summary>
    public static string PydocTiny => Path.Combine(RepositoryRoot, "src", "DeepSeekKernels.Cli", "models", "dsv3-pydoc-tiny");

    /// <summary>Every tokenizer in the manifest, as theory data.</summary>
    public static TheoryData<string> Names() => new(NameList);

    /// <summary>Every tokenizer in the manifest.</summary>
    public static IReadOnlyList<string> NameList => Manifest.Value.Keys.ToArray();

    /// <summary>The manifest entry of <paramref name="name"/>.</summary>
    public static Entry Describe(string name) => Manifest.Value[name];

    /// <summary>The corpus, one string per line of corpus.jsonl.</summary>
    public static string[] Corpus => CorpusLines.Value;

    /// <summary>The tokenizer <paramref name="name"/>, read once.</summary>
    public static HfTokenizer Get(string name) =>
        Loaded.GetOrAdd(name, n => new Lazy<HfTokenizer>(() => Load(Path.Combine(RepositoryRoot, Manifest.Value[n].Folder)))).Value;

    /// <summary>DeepSeek-V3's tokenizer.</summary>
    public static HfTokenizer DeepSeekV3 => Get("deepseek_v3");

    /// <summary>The embedded model's tokenizer.</summary>
    public static HfTokenizer Pydoc => Get("dsv3-pydoc-tiny");

    /// <summary>Hugging Face's output for every corpus line, for tokenizer <paramref name="name"/>.</summary>
    public static GoldenLine[] Golden(string name) =>
        Goldens.GetOrAdd(name, n => new Lazy<GoldenLine[]>(() => ReadGolden(n))).Value;

    /// <summary>
    /// Reads a tokenizer folder; when it holds tokenizer.json.gz instead of tokenizer.json, the files are first
    /// copied (decompressed) to a temporary folder, which is deleted once read.
    /// </summary>
    public static HfTokenizer Load(string folder)
    {
        string gz = Path.Combine(folder, "tokenizer.json.gz");
        if (File.Exists(Path.Combine(folder, "tokenizer.json")) || !File.Exists(gz))
            return HfTokenizer.FromFolder(folder);
        string temp = Path.Combine(Path.GetTempPath(), "dsk-tokenizer-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(temp);
        try
        {
            using (var source = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress))
            using (var target = File.Create(Path.Combine(temp, "tokenizer.json")))
                source.CopyTo(target);
            foreach (var file in new[] { "tokenizer_config.json", "generation_config.json" })
            {
                if (File.Exists(Path.Combine(folder, file)))
                    File.Copy(Path.Combine(folder, file), Path.Combine(temp, file));
            }
            return HfTokenizer.FromFolder(temp);
        }
        finally
        {
            System.IO.Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>A fresh temporary folder holding <paramref name="files"/> (name -> text); delete it when done.</summary>
    public static string TempFolder(IReadOnlyDictionary<string, string> files)
    {
        string temp = Path.Combine(Path.GetTempPath(), "dsk-tokenizer-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(temp);
        foreach (var (file, text) in files)
            File.WriteAllText(Path.Combine(temp, file), text);
        return temp;
    }

    /// <summary>Ids as a short readable list.</summary>
    public static string Show(IEnumerable<int> ids) => "[" + string.Join(", ", ids) + "]";

    static Dictionary<string, Entry> ReadManifest()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, "manifest.json")));
        var entries = new Dictionary<string, Entry>();
        foreach (var e in document.RootElement.GetProperty("entries").EnumerateArray())
        {
            string name = e.GetProperty("name").GetString()!;
            entries[name] = new Entry(name, e.GetProperty("folder").GetString()!, e.GetProperty("vocab_size").GetInt32(),
                Ints(e.GetProperty("prefix")), Ints(e.GetProperty("suffix")));
        }
        return entries;
    }

    static string[] ReadCorpus() =>
        File.ReadAllLines(Path.Combine(Directory, "corpus.jsonl"))
            .Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<string>(l)!)
            .ToArray();

    static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    static GoldenLine[] ReadGolden(string name)
    {
        var entry = Describe(name);
        var lines = new List<GoldenLine>();
        foreach (var line in File.ReadAllLines(Path.Combine(Directory, name + ".golden.jsonl")))
        {
            if (line.Length == 0)
                continue;
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            var ids = Ints(root.GetProperty("ids"));
            lines.Add(new GoldenLine(
                ids,
                [.. entry.Prefix, .. ids, .. entry.Suffix],
                root.GetProperty("text").GetString()!,
                root.GetProperty("skip").GetString()!,
                root.GetProperty("half").GetString()!,
                root.TryGetProperty("pre", out var pre) && pre.ValueKind == JsonValueKind.Array
                    ? pre.EnumerateArray().Select(x => x.GetString()!).ToArray()
                    : null,
                root.TryGetProperty("norm", out var norm) ? norm.GetString() : null));
        }
        return lines.ToArray();
    }
}
