using System.Text.Json;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Reads a Hugging Face tokenizer folder: tokenizer.json (required) and tokenizer_config.json (optional).
/// Supported: model "BPE"; normalizer null, "NFC", "NFD", "Sequence"; pre-tokenizer null, "Split" (Regex or
/// String pattern, every behaviour, invert), "ByteLevel" (last), "Digits", "Punctuation", "Sequence";
/// post-processor null, "ByteLevel", "TemplateProcessing", "Sequence"; decoder "ByteLevel" (or a "Sequence" of
/// it). Anything else is a <see cref="TokenizerException"/> that names the file, the field and the value.
/// generation_config.json, when present, adds its eos_token_id (a number or a list) to the ids that end generation.
/// </summary>
internal static class TokenizerFileReader
{
    /// <summary>Reads <paramref name="folder"/>.</summary>
    public static TokenizerDefinition Read(string folder)
    {
        string fullFolder = Path.GetFullPath(folder);
        if (!Directory.Exists(fullFolder))
            throw new DirectoryNotFoundException($"HfTokenizer: the tokenizer folder {fullFolder} does not exist.");
        string path = Path.Combine(fullFolder, "tokenizer.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"HfTokenizer: {path} not found (a Hugging Face tokenizer folder holds tokenizer.json).", path);
        string configPath = Path.Combine(fullFolder, "tokenizer_config.json");

        using var document = Parse(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw Fail(path, "$", $"is a JSON {root.ValueKind}, not an object");

        var (model, vocabulary) = ReadModel(path, Required(path, root, "model"));
        var normalizer = ReadNormalizer(path, "$.normalizer", Optional(root, "normalizer"));
        var preTokenizer = ReadPreTokenizer(path, root, out bool byteLevel);
        ReadDecoder(path, "$.decoder", Optional(root, "decoder"));
        var bpe = BuildModel(path, model, vocabulary, byteLevel);
        var (added, matchOrder) = ReadAddedTokens(path, Optional(root, "added_tokens"), vocabulary);

        int? Lookup(string token)
        {
            foreach (var t in added)
            {
                if (t.Content == token)
                    return t.Id;
            }
            return vocabulary.TryGetValue(token, out int id) ? id : null;
        }

        // tokenizer_config.json: BOS / EOS, and whether encode adds them. transformers rebuilds the post-processor
        // from add_bos_token / add_eos_token when the config sets either (DeepSeek's does); otherwise the
        // tokenizer.json post-processor applies (Llama-3's TemplateProcessing adds BOS).
        (string Token, int Id)? bos = null, eos = null;
        bool? addBos = null, addEos = null;
        if (File.Exists(configPath))
        {
            using var configDocument = Parse(configPath);
            var config = configDocument.RootElement;
            if (config.ValueKind != JsonValueKind.Object)
                throw Fail(configPath, "$", $"is a JSON {config.ValueKind}, not an object");
            bos = ConfigToken(configPath, config, "bos_token", Lookup);
            eos = ConfigToken(configPath, config, "eos_token", Lookup);
            addBos = OptionalBool(configPath, config, "add_bos_token");
            addEos = OptionalBool(configPath, config, "add_eos_token");
        }

        int[] prefix, suffix;
        if (addBos is not null || addEos is not null)
        {
            if (addBos == true && bos is null)
                throw Fail(configPath, "$.add_bos_token", "is true but bos_token is not set");
            if (addEos == true && eos is null)
                throw Fail(configPath, "$.add_eos_token", "is true but eos_token is not set");
            prefix = addBos == true ? [bos!.Value.Id] : [];
            suffix = addEos == true ? [eos!.Value.Id] : [];
        }
        else
        {
            var prefixList = new List<int>();
            var suffixList = new List<int>();
            ReadPostProcessor(path, "$.post_processor", Optional(root, "post_processor"), prefixList, suffixList);
            prefix = prefixList.ToArray();
            suffix = suffixList.ToArray();
        }

        // Without a bos_token in the config, a template that puts exactly one token first names it.
        if (bos is null && prefix.Length == 1)
            bos = (TokenOf(prefix[0], added, vocabulary) ?? throw Fail(path, "$.post_processor", $"puts id {prefix[0]} first, which no token has"), prefix[0]);

        var eosIds = new List<int>();
        if (eos is { } e)
            eosIds.Add(e.Id);
        string generationPath = Path.Combine(fullFolder, "generation_config.json");
        if (File.Exists(generationPath))
        {
            using var generationDocument = Parse(generationPath);
            if (Optional(generationDocument.RootElement, "eos_token_id") is { } value)
            {
                var values = value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().ToList() : [value];
                foreach (var v in values)
                {
                    if (!v.TryGetInt32(out int id) || id < 0 || TokenOf(id, added, vocabulary) is null)
                        throw Fail(generationPath, "$.eos_token_id", $"holds {v.GetRawText()}, which is not a token id of tokenizer.json");
                    if (!eosIds.Contains(id))
                        eosIds.Add(id);
                }
            }
        }

        return new TokenizerDefinition
        {
            TokenizerPath = path,
            Model = bpe,
            Normalizer = normalizer,
            PreTokenizer = preTokenizer,
            AddedTokens = added,
            MatchOrder = matchOrder,
            Prefix = prefix,
            Suffix = suffix,
            Bos = bos,
            Eos = eos,
            EosIds = eosIds.ToArray(),
        };
    }

    static JsonDocument Parse(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException ex)
        {
            throw new TokenizerException($"HfTokenizer: {path} is not valid JSON ({ex.Message})", path, ex);
        }
    }

    // ---- model ----

    static (JsonElement Model, Dictionary<string, int> Vocabulary) ReadModel(string path, JsonElement model)
    {
        if (model.ValueKind != JsonValueKind.Object)
            throw Fail(path, "$.model", $"is a JSON {model.ValueKind}, not an object");
        string? type = OptionalString(path, model, "type", "$.model.type");
        if (type is null && Optional(model, "merges") is null)
            throw Fail(path, "$.model.type", "is missing (only \"BPE\" models are supported)");
        if (type is not null && type != "BPE")
            throw Fail(path, "$.model.type", $"is \"{type}\": only \"BPE\" models are supported");

        var vocabElement = Required(path, model, "vocab", "$.model");
        if (vocabElement.ValueKind != JsonValueKind.Object)
            throw Fail(path, "$.model.vocab", $"is a JSON {vocabElement.ValueKind}, not an object of token -> id");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw Fail(path, "$.model.vocab", $"gives \"{entry.Name}\" the id {entry.Value.GetRawText()}, not a non-negative 32-bit integer");
            vocabulary[entry.Name] = id; // a token listed twice: the last id counts, as in Hugging Face's reader
        }
        // An id given to two tokens leaves decoding ambiguous: refused (Hugging Face would keep either one).
        var tokenOf = new Dictionary<int, string>(vocabulary.Count);
        foreach (var (token, id) in vocabulary)
            if (!tokenOf.TryAdd(id, token))
                throw Fail(path, "$.model.vocab", $"gives the id {id} to both \"{tokenOf[id]}\" and \"{token}\"");
        if (vocabulary.Count == 0)
            throw Fail(path, "$.model.vocab", "is empty");

        if (Optional(model, "dropout") is { } dropout && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
            throw Fail(path, "$.model.dropout", $"is {dropout.GetRawText()}: BPE dropout is not supported");
        if (OptionalBool(path, model, "byte_fallback", "$.model.byte_fallback") == true)
            throw Fail(path, "$.model.byte_fallback", "is true: byte-fallback BPE (SentencePiece style) is not supported");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            string? value = OptionalString(path, model, affix, $"$.model.{affix}");
            if (!string.IsNullOrEmpty(value))
                throw Fail(path, $"$.model.{affix}", $"is \"{value}\": BPE with a {affix.Replace('_', ' ')} is not supported");
        }
        return (model, vocabulary);
    }

    static BpeModel BuildModel(string path, JsonElement model, Dictionary<string, int> vocabulary, bool byteLevel)
    {
        var mergesElement = Optional(model, "merges");
        var merges = new List<string>();
        if (mergesElement is { } m)
        {
            if (m.ValueKind != JsonValueKind.Array)
                throw Fail(path, "$.model.merges", $"is a JSON {m.ValueKind}, not an array");
            int index = 0;
            foreach (var merge in m.EnumerateArray())
            {
                string where = $"$.model.merges[{index++}]";
                string? left, right;
                if (merge.ValueKind == JsonValueKind.String)
                {
                    string text = merge.GetString()!;
                    int space = text.IndexOf(' ');
                    if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
                        throw Fail(path, where, $"is \"{text}\", not \"left right\"");
                    left = text[..space];
                    right = text[(space + 1)..];
                }
                else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2 &&
                         merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                {
                    left = merge[0].GetString()!;
                    right = merge[1].GetString()!;
                    if (left.Length == 0 || right.Length == 0 || left.Contains(' ') || right.Contains(' '))
                        throw Fail(path, where, $"is {merge.GetRawText()}: merges of tokens that are empty or contain a space are not supported");
                }
                else
                {
                    throw Fail(path, where, $"is {merge.GetRawText()}, not \"left right\" or [\"left\", \"right\"]");
                }
                merges.Add(left + " " + right);
            }
        }

        // Hugging Face keeps the last rank of a pair listed twice.
        if (new HashSet<string>(merges, StringComparer.Ordinal).Count != merges.Count)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var kept = new List<string>(merges.Count);
            for (int i = merges.Count - 1; i >= 0; i--)
            {
                if (seen.Add(merges[i]))
                    kept.Add(merges[i]);
            }
            kept.Reverse();
            merges = kept;
        }

        string? unknown = OptionalString(path, model, "unk_token", "$.model.unk_token");
        bool fuseUnknown = OptionalBool(path, model, "fuse_unk", "$.model.fuse_unk") ?? false;
        bool ignoreMerges = OptionalBool(path, model, "ignore_merges", "$.model.ignore_merges") ?? false;
        try
        {
            return new BpeModel(vocabulary, merges, byteLevel, ignoreMerges, unknown, fuseUnknown);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            throw new TokenizerException($"HfTokenizer: {path}: $.model: {ex.Message}", path, ex);
        }
    }

    // ---- added tokens ----

    static (List<AddedToken> Added, List<AddedToken> MatchOrder) ReadAddedTokens(string path, JsonElement? element, Dictionary<string, int> vocabulary)
    {
        var byContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        var order = new List<string>();          // contents, in the order first added
        var specialOrder = new List<string>();   // Hugging Face matches special tokens first
        if (element is not { } array)
            return ([], []);
        if (array.ValueKind != JsonValueKind.Array)
            throw Fail(path, "$.added_tokens", $"is a JSON {array.ValueKind}, not an array");
        int index = 0;
        int maxId = -1;
        foreach (var item in array.EnumerateArray())
        {
            string where = $"$.added_tokens[{index++}]";
            if (item.ValueKind != JsonValueKind.Object)
                throw Fail(path, where, $"is a JSON {item.ValueKind}, not an object");
            string content = OptionalString(path, item, "content", where + ".content")
                ?? throw Fail(path, where + ".content", "is missing");
            if (content.Length == 0)
                continue;
            bool special = OptionalBool(path, item, "special", where + ".special") ?? false;
            // The id Hugging Face gives it: its own if already added, the model's if the model has the string,
            // else the next free one (the id written in the file is only checked there, with a warning).
            int id;
            if (byContent.TryGetValue(content, out var previous))
                id = previous.Id;
            else if (vocabulary.TryGetValue(content, out int modelId))
                id = modelId;
            else
                id = maxId < 0 ? vocabulary.Count : (maxId >= vocabulary.Count ? maxId + 1 : vocabulary.Count);
            var token = new AddedToken(
                id,
                content,
                special,
                OptionalBool(path, item, "lstrip", where + ".lstrip") ?? false,
                OptionalBool(path, item, "rstrip", where + ".rstrip") ?? false,
                OptionalBool(path, item, "single_word", where + ".single_word") ?? false,
                OptionalBool(path, item, "normalized", where + ".normalized") ?? !special);
            if (previous is null)
                order.Add(content);
            if (special && !specialOrder.Contains(content))
                specialOrder.Add(content);
            byContent[content] = token;
            maxId = Math.Max(maxId, id);
        }
        var added = order.Select(c => byContent[c]).ToList();
        var matchOrder = specialOrder.Concat(order.Where(c => !specialOrder.Contains(c))).Select(c => byContent[c]).ToList();
        return (added, matchOrder);
    }

    // ---- normalizer ----

    static TextNormalizer? ReadNormalizer(string path, string where, JsonElement? element)
    {
        if (element is not { } n)
            return null;
        string type = TypeOf(path, where, n);
        switch (type)
        {
            case "NFC":
                return new UnicodeFormNormalizer(compose: true);
            case "NFD":
                return new UnicodeFormNormalizer(compose: false);
            case "Sequence":
                var steps = new List<TextNormalizer>();
                var list = Required(path, n, "normalizers", where);
                if (list.ValueKind != JsonValueKind.Array)
                    throw Fail(path, where + ".normalizers", $"is a JSON {list.ValueKind}, not an array");
                int i = 0;
                foreach (var step in list.EnumerateArray())
                {
                    var normalizer = ReadNormalizer(path, $"{where}.normalizers[{i++}]", step.ValueKind == JsonValueKind.Null ? null : step);
                    if (normalizer is not null)
                        steps.Add(normalizer);
                }
                return new SequenceNormalizer(steps);
            default:
                throw Fail(path, where + ".type", $"is \"{type}\": normalizer type not supported (supported: NFC, NFD, Sequence)");
        }
    }

    // ---- pre-tokenizer ----

    static PreTokenizerStep? ReadPreTokenizer(string path, JsonElement root, out bool byteLevel)
    {
        var steps = new List<(PreTokenizerStep Step, string Where)>();
        if (Optional(root, "pre_tokenizer") is { } p)
            ReadPreTokenizerSteps(path, "$.pre_tokenizer", p, steps);
        byteLevel = false;
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i].Step is ByteLevelPreTokenizer)
            {
                if (i != steps.Count - 1)
                    throw Fail(path, steps[i].Where, "is a ByteLevel pre-tokenizer followed by other steps: ByteLevel is supported only as the last step");
                byteLevel = true;
            }
        }
        return steps.Count switch
        {
            0 => null,
            1 => steps[0].Step,
            _ => new SequencePreTokenizer(steps.Select(s => s.Step).ToList()),
        };
    }

    static void ReadPreTokenizerSteps(string path, string where, JsonElement p, List<(PreTokenizerStep, string)> steps)
    {
        string type = TypeOf(path, where, p);
        switch (type)
        {
            case "Sequence":
                var list = Required(path, p, "pretokenizers", where);
                if (list.ValueKind != JsonValueKind.Array)
                    throw Fail(path, where + ".pretokenizers", $"is a JSON {list.ValueKind}, not an array");
                int i = 0;
                foreach (var step in list.EnumerateArray())
                {
                    string at = $"{where}.pretokenizers[{i++}]";
                    if (step.ValueKind != JsonValueKind.Null)
                        ReadPreTokenizerSteps(path, at, step, steps);
                }
                break;
            case "Split":
                steps.Add((ReadSplit(path, where, p), where));
                break;
            case "ByteLevel":
                bool addPrefixSpace = OptionalBool(path, p, "add_prefix_space", where + ".add_prefix_space") ?? true;
                bool useRegex = OptionalBool(path, p, "use_regex", where + ".use_regex") ?? true;
                steps.Add((new ByteLevelPreTokenizer(addPrefixSpace, useRegex), where));
                break;
            case "Digits":
                bool individual = OptionalBool(path, p, "individual_digits", where + ".individual_digits") ?? false;
                steps.Add((CharacterSplitPreTokenizer.Digits(individual), where));
                break;
            case "Punctuation":
                var behavior = Optional(p, "behavior") is { } b ? ReadBehavior(path, where + ".behavior", b) : SplitBehavior.Isolated;
                steps.Add((CharacterSplitPreTokenizer.Punctuation(behavior), where));
                break;
            default:
                throw Fail(path, where + ".type", $"is \"{type}\": pre-tokenizer type not supported (supported: Sequence, Split, ByteLevel, Digits, Punctuation)");
        }
    }

    static PreTokenizerStep ReadSplit(string path, string where, JsonElement split)
    {
        var pattern = Required(path, split, "pattern", where);
        var behavior = ReadBehavior(path, where + ".behavior", Required(path, split, "behavior", where));
        bool invert = OptionalBool(path, split, "invert", where + ".invert") ?? false;
        if (pattern.ValueKind == JsonValueKind.Object && Optional(pattern, "Regex") is { ValueKind: JsonValueKind.String } regex)
        {
            string text = regex.GetString()!;
            CodePointRegex compiled;
            try
            {
                compiled = new CodePointRegex(text);
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
            {
                throw new TokenizerException(
                    $"HfTokenizer: {path}: {where}.pattern.Regex: the pattern \"{text}\" cannot be run by .NET's regex engine ({ex.Message})", path, ex);
            }
            return new RegexSplitPreTokenizer(compiled, behavior, invert);
        }
        if (pattern.ValueKind == JsonValueKind.Object && Optional(pattern, "String") is { ValueKind: JsonValueKind.String } literal)
            return new StringSplitPreTokenizer(literal.GetString()!, behavior, invert);
        throw Fail(path, where + ".pattern", $"is {pattern.GetRawText()}, not {{\"Regex\": \"...\"}} or {{\"String\": \"...\"}}");
    }

    static SplitBehavior ReadBehavior(string path, string where, JsonElement element)
    {
        string? name = element.ValueKind == JsonValueKind.String ? element.GetString() : null;
        return name switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw Fail(path, where, $"is {element.GetRawText()}: not a split behaviour (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)"),
        };
    }

    // ---- post-processor and decoder ----

    static void ReadPostProcessor(string path, string where, JsonElement? element, List<int> prefix, List<int> suffix)
    {
        if (element is not { } p)
            return;
        string type = TypeOf(path, where, p);
        switch (type)
        {
            case "ByteLevel":
                return; // only trims offsets
            case "Sequence":
                var list = Required(path, p, "processors", where);
                if (list.ValueKind != JsonValueKind.Array)
                    throw Fail(path, where + ".processors", $"is a JSON {list.ValueKind}, not an array");
                int i = 0;
                foreach (var step in list.EnumerateArray())
                    ReadPostProcessor(path, $"{where}.processors[{i++}]", step.ValueKind == JsonValueKind.Null ? null : step, prefix, suffix);
                return;
            case "TemplateProcessing":
                ReadTemplate(path, where, p, prefix, suffix);
                return;
            default:
                throw Fail(path, where + ".type", $"is \"{type}\": post-processor type not supported (supported: ByteLevel, TemplateProcessing, Sequence)");
        }
    }

    static void ReadTemplate(string path, string where, JsonElement template, List<int> prefix, List<int> suffix)
    {
        var single = Required(path, template, "single", where);
        if (single.ValueKind != JsonValueKind.Array)
            throw Fail(path, where + ".single", $"is a JSON {single.ValueKind}, not an array");
        var specialTokens = Optional(template, "special_tokens");
        bool seenSequence = false;
        int i = 0;
        foreach (var item in single.EnumerateArray())
        {
            string at = $"{where}.single[{i++}]";
            if (item.ValueKind == JsonValueKind.Object && Optional(item, "Sequence") is { } sequence)
            {
                if (OptionalString(path, sequence, "id", at + ".Sequence.id") is not "A" || seenSequence)
                    throw Fail(path, at, $"is {sequence.GetRawText()}: a single-sequence template holds sequence A once");
                seenSequence = true;
            }
            else if (item.ValueKind == JsonValueKind.Object && Optional(item, "SpecialToken") is { } special)
            {
                string name = OptionalString(path, special, "id", at + ".SpecialToken.id") ?? throw Fail(path, at + ".SpecialToken.id", "is missing");
                if (specialTokens is not { ValueKind: JsonValueKind.Object } map || Optional(map, name) is not { } definition ||
                    Optional(definition, "ids") is not { ValueKind: JsonValueKind.Array } ids)
                    throw Fail(path, where + ".special_tokens", $"does not define the ids of \"{name}\"");
                foreach (var id in ids.EnumerateArray())
                {
                    if (!id.TryGetInt32(out int value) || value < 0)
                        throw Fail(path, $"{where}.special_tokens.{name}.ids", $"holds {id.GetRawText()}, not a token id");
                    (seenSequence ? suffix : prefix).Add(value);
                }
            }
            else
            {
                throw Fail(path, at, $"is {item.GetRawText()}, not {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}");
            }
        }
        if (!seenSequence)
            throw Fail(path, where + ".single", "does not hold the sequence A");
    }

    static void ReadDecoder(string path, string where, JsonElement? element)
    {
        if (element is not { } d)
            throw Fail(path, where, "is null: only the ByteLevel decoder is supported");
        string type = TypeOf(path, where, d);
        if (type == "ByteLevel")
            return;
        if (type == "Sequence" && Optional(d, "decoders") is { ValueKind: JsonValueKind.Array } list && list.GetArrayLength() > 0)
        {
            int i = 0;
            foreach (var step in list.EnumerateArray())
                ReadDecoder(path, $"{where}.decoders[{i++}]", step.ValueKind == JsonValueKind.Null ? null : step);
            return;
        }
        throw Fail(path, where + ".type", $"is \"{type}\": decoder type not supported (only ByteLevel)");
    }

    // ---- tokenizer_config.json ----

    static (string Token, int Id)? ConfigToken(string path, JsonElement config, string name, Func<string, int?> lookup)
    {
        if (Optional(config, name) is not { } element)
            return null;
        string? token = element.ValueKind switch
        {
            JsonValueKind.String => element.GetString(),
            JsonValueKind.Object => OptionalString(path, element, "content", $"$.{name}.content"),
            _ => throw Fail(path, "$." + name, $"is {element.GetRawText()}, not a string or {{\"content\": ...}}"),
        };
        if (token is null)
            throw Fail(path, "$." + name, "has no content");
        int id = lookup(token) ?? throw Fail(path, "$." + name, $"is \"{token}\", which is not in the vocabulary of tokenizer.json");
        return (token, id);
    }

    // ---- JSON helpers ----

    static string? TokenOf(int id, List<AddedToken> added, Dictionary<string, int> vocabulary)
    {
        foreach (var t in added)
        {
            if (t.Id == id)
                return t.Content;
        }
        foreach (var (token, value) in vocabulary)
        {
            if (value == id)
                return token;
        }
        return null;
    }

    static string TypeOf(string path, string where, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw Fail(path, where, $"is a JSON {element.ValueKind}, not an object");
        return OptionalString(path, element, "type", where + ".type") ?? throw Fail(path, where + ".type", "is missing");
    }

    static JsonElement? Optional(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : null;

    static JsonElement Required(string path, JsonElement element, string name, string where = "$") =>
        Optional(element, name) ?? throw Fail(path, $"{where}.{name}", "is missing");

    static string? OptionalString(string path, JsonElement element, string name, string where)
    {
        if (Optional(element, name) is not { } value)
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw Fail(path, where, $"is {value.GetRawText()}, not a string");
        return value.GetString();
    }

    static bool? OptionalBool(string path, JsonElement element, string name, string? where = null)
    {
        if (Optional(element, name) is not { } value)
            return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Fail(path, where ?? "$." + name, $"is {value.GetRawText()}, not true or false"),
        };
    }

    static TokenizerException Fail(string path, string where, string message) =>
        new($"HfTokenizer: {path}: {where} {message}", path);
}
