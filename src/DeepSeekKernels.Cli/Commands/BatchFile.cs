using System.Text.Encodings.Web;
using System.Text.Json;
using DeepSeekKernels.Generation;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// One request of a batch file: the prompt, as text (<see cref="Prompt"/>) or token ids (<see cref="PromptIds"/>),
/// exactly one of the two not null; where it came from (<see cref="LineNumber"/>, 1-based, and <see cref="Index"/>,
/// its 0-based place among the requests); the <see cref="Id"/> to echo back (a JSON string or number: the line's
/// "id", or the line number); and the options to generate with (the caller's defaults, overridden by the line).
/// </summary>
internal sealed record BatchRequest(int Index, int LineNumber, JsonElement Id, string? Prompt, IReadOnlyList<int>? PromptIds, GenerationOptions Options);

/// <summary>
/// Reads `dsk generate --batch-file FILE`: JSON Lines, one request object per line (blank lines skipped, a UTF-8
/// byte-order mark tolerated), e.g.
/// <code>{"prompt": "def add(a, b):", "max_new_tokens": 32, "temperature": 0, "stop": ["\n\n"], "id": "add"}</code>
/// Fields: "prompt" (non-empty string) or "prompt_ids" (non-empty array of ids &gt;= 0), exactly one; optional
/// "max_new_tokens" (integer &gt;= 1), "temperature" (finite, &gt;= 0), "top_k" (integer &gt;= 0), "top_p" (0 &lt; p &lt;= 1),
/// "repetition_penalty" (&gt; 0), "seed" (int32), "stop" (a non-empty string, or an array of them; [] means none)
/// and "id" (string or number). A field left out takes the caller's default (the command's flags), so a
/// "seed" given as a flag applies to every line that has none. JSON null is a wrong type, not "default".
/// <para>
/// Every refusal is a <see cref="UsageException"/> whose message starts "FILE:LINE: " and names the field: a line
/// that is not valid UTF-8 or not valid JSON (with the byte where reading stopped), not an object, a field of the
/// wrong type or out of range, an unknown or repeated field (with the nearest known one), both or neither prompt
/// field, an empty prompt; and "FILE: " for a file without requests.
/// </para>
/// </summary>
internal static class BatchFile
{
    /// <summary>The fields a request may have, in the order the documentation lists them.</summary>
    public static IReadOnlyList<string> Fields { get; } =
        ["prompt", "prompt_ids", "max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop", "id"];

    /// <summary>
    /// The requests of the file at <paramref name="path"/> (as <see cref="Parse"/>); a path that is empty, a
    /// folder, missing or unreadable is a <see cref="UsageException"/> naming --batch-file.
    /// </summary>
    public static IReadOnlyList<BatchRequest> Read(string path, GenerationOptions defaults, int? vocabSize = null)
    {
        if (path.Trim().Length == 0)
            throw new UsageException($"--batch-file \"{path}\": give a file of JSON lines, one request per line.");
        if (Directory.Exists(path))
            throw new UsageException($"--batch-file {path}: is a folder; give a file of JSON lines, one request per line.");
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string why = e switch
            {
                FileNotFoundException or DirectoryNotFoundException => "no such file",
                UnauthorizedAccessException => "not allowed to read it",
                _ => CliErrors.OneLine(e),
            };
            throw new UsageException($"--batch-file {path}: {why}.", e);
        }
        using (stream)
            return Parse(stream, path, defaults, vocabSize);
    }

    /// <summary>
    /// The requests in <paramref name="stream"/>, in order; <paramref name="file"/> is the name that starts each
    /// error message. <paramref name="defaults"/> supplies every option a line leaves out. When
    /// <paramref name="vocabSize"/> is given, each prompt id must be below it.
    /// </summary>
    public static IReadOnlyList<BatchRequest> Parse(Stream stream, string file, GenerationOptions defaults, int? vocabSize = null)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var reader = new Utf8LineReader(stream);
        var requests = new List<BatchRequest>();
        for (string? line; (line = reader.ReadLine(out int invalidByte)) != null;)
        {
            var where = new Where(file, reader.LineNumber);
            if (invalidByte > 0)
                throw where.Error($"not valid UTF-8 (byte {invalidByte} of the line); save the file as UTF-8.");
            if (string.IsNullOrWhiteSpace(line))
                continue;
            requests.Add(ParseLine(line, where, requests.Count, defaults, vocabSize));
        }
        if (requests.Count == 0)
            throw new UsageException($"{file}: no requests; give one JSON object per line, such as {{\"prompt\": \"Hello\"}}.");
        return requests;
    }

    /// <summary>The request on one line, or a <see cref="UsageException"/> that names the line and the field.</summary>
    static BatchRequest ParseLine(string line, Where where, int index, GenerationOptions defaults, int? vocabSize)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            string reason = e.Message;
            int cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut > 0)
                reason = reason[..cut];
            string at = e.BytePositionInLine is { } b ? $" at byte {b + 1} of the line" : "";
            throw where.Error($"not valid JSON{at} ({reason.TrimEnd('.', ' ')}).", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw where.Error($"a request is a JSON object such as {{\"prompt\": \"Hello\"}}, not {KindName(root.ValueKind)}.");

            string? prompt = null;
            int[]? promptIds = null;
            JsonElement? id = null;
            var options = defaults;
            var sampling = defaults.Sampling;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var field in root.EnumerateObject())
            {
                string name = field.Name;
                var value = field.Value;
                if (!seen.Add(name))
                    throw where.Error($"\"{name}\" appears twice; give each field once.");
                switch (name)
                {
                    case "prompt":
                        prompt = value.ValueKind == JsonValueKind.String ? value.GetString()! : throw where.Field(name, value, "must be a string (the text to continue).");
                        if (prompt.Length == 0)
                            throw where.Error("\"prompt\" is empty: give some text to continue.");
                        break;
                    case "prompt_ids":
                        promptIds = Ids(where, name, value, vocabSize);
                        break;
                    case "max_new_tokens":
                        options = options with { MaxNewTokens = Integer(where, name, value, 1, "must be an integer >= 1 (tokens to generate).") };
                        break;
                    case "temperature":
                        float temperature = Number(where, name, value, "must be a finite number >= 0 (0 = greedy).");
                        sampling = temperature >= 0 ? sampling with { Temperature = temperature } : throw where.Field(name, value, "must be a finite number >= 0 (0 = greedy).");
                        break;
                    case "top_k":
                        sampling = sampling with { TopK = Integer(where, name, value, 0, "must be an integer >= 0 (0 = off).") };
                        break;
                    case "top_p":
                        float topP = Number(where, name, value, "must be a number in (0, 1] (1 = off).");
                        sampling = topP is > 0 and <= 1 ? sampling with { TopP = topP } : throw where.Field(name, value, "must be a number in (0, 1] (1 = off).");
                        break;
                    case "repetition_penalty":
                        float penalty = Number(where, name, value, "must be a finite number > 0 (1 = off).");
                        sampling = penalty > 0 ? sampling with { RepetitionPenalty = penalty } : throw where.Field(name, value, "must be a finite number > 0 (1 = off).");
                        break;
                    case "seed":
                        sampling = sampling with { Seed = Integer(where, name, value, int.MinValue, $"must be an integer in {int.MinValue}..{int.MaxValue}.") };
                        break;
                    case "stop":
                        options = options with { StopStrings = StopStrings(where, name, value) };
                        break;
                    case "id":
                        id = value.ValueKind is JsonValueKind.String or JsonValueKind.Number
                            ? value.Clone()
                            : throw where.Field(name, value, "must be a string or a number (it is echoed back with the result).");
                        break;
                    default:
                        string? nearest = UnknownOptions.Nearest(name, Fields);
                        throw where.Error($"unknown field \"{name}\"" + (nearest != null
                            ? $" (did you mean {string.Join(" or ", nearest.Split(" or ").Select(n => $"\"{n}\""))}?)."
                            : $"; the fields are {string.Join(", ", Fields)}."));
                }
            }
            if (prompt != null && promptIds != null)
                throw where.Error("give either \"prompt\" or \"prompt_ids\", not both.");
            if (prompt == null && promptIds == null)
                throw where.Error("no prompt: give \"prompt\" (text) or \"prompt_ids\" (token ids).");
            return new BatchRequest(index, where.Line, id ?? JsonSerializer.SerializeToElement(where.Line), prompt, promptIds,
                options with { Sampling = sampling });
        }
    }

    /// <summary>An integer of at least <paramref name="min"/>, or an error with <paramref name="rule"/>.</summary>
    static int Integer(Where where, string name, JsonElement value, int min, string rule) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number) && number >= min
            ? number
            : throw where.Field(name, value, rule);

    /// <summary>A finite number (as float), or an error with <paramref name="rule"/>; the caller checks its range.</summary>
    static float Number(Where where, string name, JsonElement value, string rule) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetSingle(out float number) && float.IsFinite(number)
            ? number
            : throw where.Field(name, value, rule);

    /// <summary>A non-empty array of ids &gt;= 0 (and below <paramref name="vocabSize"/> when given).</summary>
    static int[] Ids(Where where, string name, JsonElement value, int? vocabSize)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw where.Field(name, value, "must be an array of token ids, such as [1, 2, 3].");
        var ids = new int[value.GetArrayLength()];
        if (ids.Length == 0)
            throw where.Error($"\"{name}\" is empty: give at least one token id.");
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]) || ids[i] < 0)
                throw where.Error($"\"{name}\" entry {i + 1}, {Shown(item)}, is not a token id (an integer >= 0).");
            if (ids[i] >= vocabSize)
                throw where.Error($"\"{name}\" entry {i + 1}, {ids[i]}, is outside the model's vocabulary, 0..{vocabSize - 1} (vocab_size in config.json).");
            i++;
        }
        return ids;
    }

    /// <summary>A non-empty string, or an array of them (empty: no stop strings).</summary>
    static string[] StopStrings(Where where, string name, JsonElement value)
    {
        const string rule = "must be a string or an array of strings, such as [\"\\n\\n\", \"###\"].";
        if (value.ValueKind == JsonValueKind.String)
            return value.GetString()!.Length > 0 ? [value.GetString()!] : throw where.Error($"\"{name}\" is an empty string: it would stop before the first token.");
        if (value.ValueKind != JsonValueKind.Array)
            throw where.Field(name, value, rule);
        var stops = new string[value.GetArrayLength()];
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
                throw where.Error($"\"{name}\" entry {i + 1}, {Shown(item)}, is not a string.");
            stops[i] = item.GetString()!;
            if (stops[i].Length == 0)
                throw where.Error($"\"{name}\" entry {i + 1} is an empty string: it would stop before the first token.");
            i++;
        }
        return stops;
    }

    /// <summary>"an array", "a string", ... for a message.</summary>
    static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    /// <summary>The value's JSON text for a message, cut to 40 characters.</summary>
    static string Shown(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length <= 40 ? raw : raw[..37] + "...";
    }

    /// <summary>A line of a file, and the errors that start with "FILE:LINE: ".</summary>
    readonly record struct Where(string File, int Line)
    {
        public UsageException Error(string message, Exception? inner = null) => new($"{File}:{Line}: {message}", inner);

        /// <summary>"FILE:LINE: "field" VALUE: RULE".</summary>
        public UsageException Field(string name, JsonElement value, string rule) => Error($"\"{name}\" {Shown(value)}: {rule}");
    }
}

/// <summary>
/// Writes the results of a batch file as JSON Lines on <c>output</c>, one per request, always in the requests'
/// order: a result that completes before an earlier request's is held until that one is written.
/// Each line: <c>{"id": ..., "prompt_tokens": n, "ids": [...], "text": "...", "finish_reason": "length|eos|stop|context_full|cancelled"}</c>,
/// the id as the request gave it. The text is escaped as System.Text.Json's relaxed encoder does: quotes, control
/// characters and characters outside the Basic Multilingual Plane (emoji) as \ escapes, other non-ASCII as itself.
/// </summary>
internal sealed class BatchResultWriter(TextWriter output, IReadOnlyList<BatchRequest> requests)
{
    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    readonly string?[] _held = new string?[requests.Count];
    int _next;

    /// <summary>Results written so far (a prefix of the requests).</summary>
    public int Written => _next;

    /// <summary>
    /// Takes the result of <paramref name="request"/> (one of the writer's requests, each once) and writes every
    /// line that is now next in order, then flushes.
    /// </summary>
    public void Write(BatchRequest request, GenerationResult result)
    {
        int i = request.Index;
        if (i < 0 || i >= requests.Count || !Equals(requests[i], request))
            throw new ArgumentException($"request {i} (line {request.LineNumber}) is not one of this writer's requests.", nameof(request));
        if (i < _next || _held[i] != null)
            throw new InvalidOperationException($"the result of request {i} (line {request.LineNumber}) was already written.");
        _held[i] = Line(request.Id, result);
        while (_next < _held.Length && _held[_next] is { } line)
        {
            output.WriteLine(line);
            _held[_next] = null;
            _next++;
        }
        output.Flush();
    }

    /// <summary>One result as a JSON line (no line break).</summary>
    public static string Line(JsonElement id, GenerationResult result)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            json.WritePropertyName("id");
            id.WriteTo(json);
            json.WriteNumber("prompt_tokens", result.PromptIds.Count);
            json.WriteStartArray("ids");
            foreach (int token in result.GeneratedIds)
                json.WriteNumberValue(token);
            json.WriteEndArray();
            json.WriteString("text", result.Text);
            json.WriteString("finish_reason", FinishReasonName(result.FinishReason));
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>The "finish_reason" of a <see cref="FinishReason"/>, as OpenAI-style APIs name them.</summary>
    public static string FinishReasonName(FinishReason reason) => reason switch
    {
        FinishReason.Length => "length",
        FinishReason.EndOfSequence => "eos",
        FinishReason.StopString => "stop",
        FinishReason.ContextFull => "context_full",
        FinishReason.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "not a FinishReason."),
    };
}
