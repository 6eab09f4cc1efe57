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
internal sealed record BatchRequest(int Index, int LineNumber, JsonElement Id, string? Prompt, IReadOnlyList<int>? PromptIds, GenerationOptions Options)
{
    /// <summary>A conversation to answer ("messages"), rendered with the model's chat template; null for a prompt.</summary>
    public IReadOnlyList<Tokenization.ChatMessage>? Messages { get; init; }

    /// <summary>The tools the conversation may call ("tools", a JSON array as written), or null.</summary>
    public string? ToolsJson { get; init; }
}

/// <summary>
/// Reads `dsk generate --batch-file FILE`: JSON Lines, one request object per line (blank lines skipped, a UTF-8
/// byte-order mark tolerated), e.g.
/// <code>{"prompt": "def add(a, b):", "max_new_tokens": 32, "temperature": 0, "stop": ["\n\n"], "id": "add"}</code>
/// Fields: "prompt" (non-empty string), "prompt_ids" (non-empty array of ids &gt;= 0) or "messages" (a conversation, OpenAI's
/// form: objects with "role", "content" (a string, an array of text parts, or null for a turn that only calls tools), optional "tool_calls"
/// ([{"id", "type", "function": {"name", "arguments"}}], arguments a JSON string or object) and "tool_call_id"; rendered with
/// the model's chat template, with the optional "tools" array), exactly one of the three; optional
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
        ["prompt", "prompt_ids", "messages", "tools", "max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop", "id"];

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

            string? prompt = null, tools = null;
            int[]? promptIds = null;
            List<Tokenization.ChatMessage>? messages = null;
            JsonElement? id = null;
            var options = defaults;
            var sampling = defaults.Sampling;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var field in root.EnumerateObject())
            {
                string name = field.Name;
                var value = field.Value;
                Once(where, seen, name);
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
                    case "messages":
                        messages = Messages(where, value);
                        break;
                    case "tools":
                        tools = value.ValueKind == JsonValueKind.Array
                            ? value.GetRawText()
                            : throw where.Field(name, value, "must be an array of tool definitions, such as [{\"type\": \"function\", \"function\": {...}}].");
                        break;
                    case "max_new_tokens":
                        options = options with { MaxNewTokens = Integer(where, name, value, 1, "must be an integer >= 1 (tokens to generate).") };
                        break;
                    case "temperature" or "top_k" or "top_p" or "repetition_penalty" or "seed" or "stop":
                        (options, sampling) = GenerationField(where, name, value, options, sampling);
                        break;
                    case "id":
                        id = value.ValueKind is JsonValueKind.String or JsonValueKind.Number
                            ? value.Clone()
                            : throw where.Field(name, value, "must be a string or a number (it is echoed back with the result).");
                        break;
                    default:
                        throw UnknownField(where, name, Fields);
                }
            }
            int given = (prompt != null ? 1 : 0) + (promptIds != null ? 1 : 0) + (messages != null ? 1 : 0);
            if (given > 1)
                throw where.Error("give one of \"prompt\", \"prompt_ids\" and \"messages\", not several.");
            if (given == 0)
                throw where.Error("no prompt: give \"prompt\" (text), \"prompt_ids\" (token ids) or \"messages\" (a conversation).");
            if (tools != null && messages == null)
                throw where.Error("\"tools\" goes with \"messages\": a conversation the chat template lays the tools out for.");
            return new BatchRequest(index, where.Line, id ?? JsonSerializer.SerializeToElement(where.Line), prompt, promptIds,
                options with { Sampling = sampling }) { Messages = messages, ToolsJson = tools };
        }
    }

    /// <summary>Refuses a field given twice in one object.</summary>
    internal static void Once(Where where, HashSet<string> seen, string name)
    {
        if (!seen.Add(name))
            throw where.Error($"\"{name}\" appears twice; give each field once.");
    }

    /// <summary>An unknown field, named with the nearest of <paramref name="fields"/> (or all of them).</summary>
    internal static UsageException UnknownField(Where where, string name, IReadOnlyList<string> fields)
    {
        string? nearest = UnknownOptions.Nearest(name, fields);
        return where.Error($"unknown field \"{name}\"" + (nearest != null
            ? $" (did you mean {string.Join(" or ", nearest.Split(" or ").Select(n => $"\"{n}\""))}?)."
            : $"; the fields are {string.Join(", ", fields)}."));
    }

    /// <summary>
    /// One of the generation fields a batch line and a `dsk serve` body share ("temperature", "top_k", "top_p",
    /// "repetition_penalty", "seed", "stop"), checked, applied to <paramref name="options"/> and <paramref name="sampling"/>.
    /// </summary>
    internal static (GenerationOptions Options, SamplingOptions Sampling) GenerationField(Where where, string name, JsonElement value,
        GenerationOptions options, SamplingOptions sampling)
    {
        switch (name)
        {
            case "temperature":
                float temperature = Number(where, name, value, "must be a finite number >= 0 (0 = greedy).");
                return (options, temperature >= 0 ? sampling with { Temperature = temperature } : throw where.Field(name, value, "must be a finite number >= 0 (0 = greedy)."));
            case "top_k":
                return (options, sampling with { TopK = Integer(where, name, value, 0, "must be an integer >= 0 (0 = off).") });
            case "top_p":
                float topP = Number(where, name, value, "must be a number in (0, 1] (1 = off).");
                return (options, topP is > 0 and <= 1 ? sampling with { TopP = topP } : throw where.Field(name, value, "must be a number in (0, 1] (1 = off)."));
            case "repetition_penalty":
                float penalty = Number(where, name, value, "must be a finite number > 0 (1 = off).");
                return (options, penalty > 0 ? sampling with { RepetitionPenalty = penalty } : throw where.Field(name, value, "must be a finite number > 0 (1 = off)."));
            case "seed":
                return (options, sampling with { Seed = Integer(where, name, value, int.MinValue, $"must be an integer in {int.MinValue}..{int.MaxValue}.") });
            case "stop":
                return (options with { StopStrings = StopStrings(where, name, value) }, sampling);
            default:
                throw new ArgumentOutOfRangeException(nameof(name), name, "not a generation field.");
        }
    }

    /// <summary>"messages": a non-empty array of turns, each {"role", "content", "tool_calls"?, "tool_call_id"?}.</summary>
    internal static List<Tokenization.ChatMessage> Messages(Where where, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
            throw where.Field("messages", value, "must be a non-empty array of turns, such as [{\"role\": \"user\", \"content\": \"Hello\"}].");
        var messages = new List<Tokenization.ChatMessage>();
        int i = 0;
        foreach (var turn in value.EnumerateArray())
        {
            string at = $"messages[{i}]";
            if (turn.ValueKind != JsonValueKind.Object)
                throw where.Error($"\"{at}\" is {KindName(turn.ValueKind)}; a turn is an object with \"role\" and \"content\".");
            string? role = null, content = null, callId = null;
            List<Tokenization.ToolCall>? calls = null;
            foreach (var field in turn.EnumerateObject())
            {
                switch (field.Name)
                {
                    case "role":
                        role = field.Value.ValueKind == JsonValueKind.String && field.Value.GetString()!.Length > 0 ? field.Value.GetString()
                            : throw where.Error($"\"{at}.role\" must be a non-empty string (system, user, assistant or tool).");
                        break;
                    case "content":
                        content = field.Value.ValueKind switch
                        {
                            JsonValueKind.String => field.Value.GetString(),
                            JsonValueKind.Null => null,
                            JsonValueKind.Array => TextParts(where, at, field.Value),
                            _ => throw where.Error($"\"{at}.content\" must be a string (or null for a turn that only calls tools), not {KindName(field.Value.ValueKind)}."),
                        };
                        break;
                    case "tool_call_id":
                        callId = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString()
                            : throw where.Error($"\"{at}.tool_call_id\" must be a string.");
                        break;
                    case "tool_calls":
                        calls = ToolCalls(where, at, field.Value);
                        break;
                    case "name":
                        break; // OpenAI's optional participant name: DeepSeek's templates do not show it
                    default:
                        throw where.Error($"unknown field \"{at}.{field.Name}\"; a turn has role, content, tool_calls, tool_call_id and name.");
                }
            }
            if (role is null)
                throw where.Error($"\"{at}\" has no \"role\".");
            if (content is null && calls is null)
                throw where.Error($"\"{at}\" has no \"content\" (a string) and no \"tool_calls\".");
            messages.Add(new Tokenization.ChatMessage(role, content) { ToolCalls = calls, ToolCallId = callId });
            i++;
        }
        return messages;
    }

    /// <summary>
    /// Content as OpenAI's array of parts, text only ([{"type": "text", "text": "..."}], as some clients always send it): the
    /// texts joined by line breaks, as vLLM joins them; a part of another type (an image) is refused by name.
    /// </summary>
    static string TextParts(Where where, string at, JsonElement parts)
    {
        var texts = new List<string>();
        int i = 0;
        foreach (var part in parts.EnumerateArray())
        {
            string here = $"{at}.content[{i++}]";
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                throw where.Error($"\"{here}\" must be an object such as {{\"type\": \"text\", \"text\": \"...\"}}.");
            if (type.GetString() != "text")
                throw where.Error($"\"{here}\" is a \"{type.GetString()}\" part; these models read text only.");
            if (!part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw where.Error($"\"{here}.text\" must be a string.");
            texts.Add(text.GetString()!);
        }
        return string.Join("\n", texts);
    }

    static List<Tokenization.ToolCall> ToolCalls(Where where, string at, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw where.Error($"\"{at}.tool_calls\" must be an array of calls {{\"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}.");
        var calls = new List<Tokenization.ToolCall>();
        int i = 0;
        foreach (var call in value.EnumerateArray())
        {
            string here = $"{at}.tool_calls[{i++}]";
            if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                throw where.Error($"\"{here}\" must be an object with \"function\": {{\"name\": string, \"arguments\": JSON}}.");
            string arguments = !function.TryGetProperty("arguments", out var args) ? "{}"
                : args.ValueKind == JsonValueKind.String ? args.GetString()!
                : args.ValueKind == JsonValueKind.Object ? args.GetRawText()
                : throw where.Error($"\"{here}.function.arguments\" must be a JSON string or object.");
            string? id = call.TryGetProperty("id", out var idValue) && idValue.ValueKind == JsonValueKind.String ? idValue.GetString() : null;
            string type = call.TryGetProperty("type", out var typeValue) && typeValue.ValueKind == JsonValueKind.String ? typeValue.GetString()! : "function";
            calls.Add(new Tokenization.ToolCall(name.GetString()!, arguments, id, type));
        }
        return calls;
    }

    /// <summary>An integer of at least <paramref name="min"/>, or an error with <paramref name="rule"/>.</summary>
    internal static int Integer(Where where, string name, JsonElement value, int min, string rule) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number) && number >= min
            ? number
            : throw where.Field(name, value, rule);

    /// <summary>A finite number (as float), or an error with <paramref name="rule"/>; the caller checks its range.</summary>
    internal static float Number(Where where, string name, JsonElement value, string rule) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetSingle(out float number) && float.IsFinite(number)
            ? number
            : throw where.Field(name, value, rule);

    /// <summary>A non-empty array of ids &gt;= 0 (and below <paramref name="vocabSize"/> when given).</summary>
    internal static int[] Ids(Where where, string name, JsonElement value, int? vocabSize)
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
    internal static string[] StopStrings(Where where, string name, JsonElement value)
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
    internal static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    /// <summary>The value's JSON text for a message, cut to 40 characters.</summary>
    internal static string Shown(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length <= 40 ? raw : raw[..37] + "...";
    }

    /// <summary>A line of a file, and the errors that start with "FILE:LINE: " (no prefix where there is no file: a request body).</summary>
    internal readonly record struct Where(string? File, int Line)
    {
        /// <summary>A request that is not a line of a file (`dsk serve`'s bodies): its errors have no prefix.</summary>
        public static Where Body => new(null, 0);

        public UsageException Error(string message, Exception? inner = null) => new(File is null ? message : $"{File}:{Line}: {message}", inner);

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
        _held[i] = Line(request.Id, result, parseToolCalls: request.Messages != null);
        while (_next < _held.Length && _held[_next] is { } line)
        {
            output.WriteLine(line);
            _held[_next] = null;
            _next++;
        }
        output.Flush();
    }

    /// <summary>One result as a JSON line (no line break).</summary>
    public static string Line(JsonElement id, GenerationResult result, bool parseToolCalls = false)
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
            if (parseToolCalls)
            {
                // a reply to "messages": the tool calls DeepSeek's layout holds, and the text before them
                var (content, calls, complete) = Tokenization.DeepSeekToolCalls.Parse(result.Text);
                if (calls.Count > 0 || !complete)
                {
                    json.WriteString("content", content);
                    json.WriteStartArray("tool_calls");
                    foreach (var call in calls)
                    {
                        json.WriteStartObject();
                        json.WriteString("type", call.Type);
                        json.WriteStartObject("function");
                        json.WriteString("name", call.Name);
                        json.WriteString("arguments", call.Arguments);
                        json.WriteEndObject();
                        json.WriteEndObject();
                    }
                    json.WriteEndArray();
                    if (!complete)
                        json.WriteBoolean("tool_calls_incomplete", true);
                }
            }
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
