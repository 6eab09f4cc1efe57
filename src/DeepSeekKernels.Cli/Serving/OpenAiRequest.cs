using System.Text.Json;
using DeepSeekKernels.Cli.Commands;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Serving;

/// <summary>An HTTP error of the API, answered as OpenAI's error object: {"error": {"message", "type", "param", "code"}}.</summary>
internal sealed class ApiException(int status, string message, string? param = null, string? type = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;

    /// <summary>OpenAI's error type: invalid_request_error (4xx) unless given, server_error (5xx).</summary>
    public string Type { get; } = type ?? (status >= 500 ? "server_error" : "invalid_request_error");
}

/// <summary>
/// One request to `dsk serve`, read from a /v1/completions or /v1/chat/completions body: the prompt (text, token ids or a
/// conversation with optional tools), the generation options (the server's defaults, overridden by the body), and how to
/// answer (streamed as server-sent events or not, with a usage chunk). Exactly one of <see cref="Prompt"/>,
/// <see cref="PromptIds"/> and <see cref="Messages"/> is not null; <see cref="MaxTokens"/> is null where the body gave none
/// (the rest of the context is the limit).
/// </summary>
internal sealed record OpenAiRequest(bool Chat, string? Prompt, int[]? PromptIds, IReadOnlyList<ChatMessage>? Messages, string? ToolsJson,
    GenerationOptions Options, int? MaxTokens, bool Stream, bool IncludeUsage)
{
    /// <summary>The fields of a /v1/chat/completions body this server reads (others are refused, with the nearest of these).</summary>
    public static IReadOnlyList<string> ChatFields { get; } =
    [
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "top_k", "seed", "stop", "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "logprobs",
        "response_format", "user", "ignore_eos",
    ];

    /// <summary>The fields of a /v1/completions body this server reads.</summary>
    public static IReadOnlyList<string> CompletionFields { get; } =
    [
        "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "best_of",
        "echo", "suffix", "presence_penalty", "frequency_penalty", "repetition_penalty", "logprobs", "user", "ignore_eos",
    ];

    /// <summary>
    /// The request in <paramref name="body"/> (UTF-8 JSON), or an <see cref="ApiException"/> (400) that names the field and
    /// what it must be: not JSON, not an object, a field of the wrong type or out of range, an unknown or repeated field,
    /// no prompt or messages, and what this server does not do (n or best_of above 1, penalties other than 0, log
    /// probabilities, echo, suffix, a response format other than text, streaming with tools, a forced tool choice).
    /// </summary>
    public static OpenAiRequest Parse(ReadOnlySpan<byte> body, bool chat, GenerationOptions defaults, int vocabSize)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException e)
        {
            string reason = e.Message;
            int cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut > 0)
                reason = reason[..cut];
            throw new ApiException(400, $"The body is not valid JSON ({reason.TrimEnd('.', ' ')}).");
        }
        using (document)
        {
            try
            {
                return Read(document.RootElement, chat, defaults, vocabSize);
            }
            catch (UsageException e)
            {
                throw new ApiException(400, e.Message, ParamOf(e.Message));
            }
        }
    }

    static OpenAiRequest Read(JsonElement root, bool chat, GenerationOptions defaults, int vocabSize)
    {
        var where = BatchFile.Where.Body;
        if (root.ValueKind != JsonValueKind.Object)
            throw where.Error($"a request is a JSON object, not {BatchFile.KindName(root.ValueKind)}.");
        var fields = chat ? ChatFields : CompletionFields;
        string? prompt = null, tools = null;
        int[]? promptIds = null;
        List<ChatMessage>? messages = null;
        int? maxTokens = null;
        bool stream = false, includeUsage = false, streamOptions = false, noTools = false;
        var options = defaults;
        var sampling = defaults.Sampling;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in root.EnumerateObject())
        {
            string name = field.Name;
            var value = field.Value;
            BatchFile.Once(where, seen, name);
            if (!fields.Contains(name))
                throw BatchFile.UnknownField(where, name, fields);
            // null is "not given" for the optional fields, as OpenAI's clients send it
            if (value.ValueKind == JsonValueKind.Null && name is not ("messages" or "prompt"))
                continue;
            switch (name)
            {
                case "model" or "user":
                    if (value.ValueKind != JsonValueKind.String)
                        throw where.Field(name, value, "must be a string.");
                    break;
                case "messages":
                    messages = BatchFile.Messages(where, value);
                    break;
                case "prompt":
                    if (value.ValueKind == JsonValueKind.String)
                        prompt = value.GetString()!.Length > 0 ? value.GetString() : throw where.Error("\"prompt\" is empty: give some text to continue.");
                    else if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0 && value[0].ValueKind == JsonValueKind.Number)
                        promptIds = BatchFile.Ids(where, name, value, vocabSize);
                    else if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 1 && value[0].ValueKind == JsonValueKind.String)
                        prompt = value[0].GetString()!.Length > 0 ? value[0].GetString() : throw where.Error("\"prompt\" is empty: give some text to continue.");
                    else
                        throw where.Field(name, value, "must be a string, an array of token ids, or an array of one string (this server answers one prompt per request).");
                    break;
                case "tools":
                    tools = value.ValueKind == JsonValueKind.Array
                        ? value.GetRawText()
                        : throw where.Field(name, value, "must be an array of tool definitions, such as [{\"type\": \"function\", \"function\": {...}}].");
                    break;
                case "tool_choice":
                    if (!(value.ValueKind == JsonValueKind.String && value.GetString() is "auto" or "none"))
                        throw where.Field(name, value, "must be \"auto\" or \"none\": this server cannot force a tool call.");
                    noTools = value.GetString() == "none";
                    break;
                case "parallel_tool_calls" or "ignore_eos":
                    if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                        throw where.Field(name, value, "must be true or false.");
                    if (name == "ignore_eos")
                        options = options with { StopAtEos = value.ValueKind == JsonValueKind.False };
                    break;
                case "stream":
                    stream = value.ValueKind is JsonValueKind.True or JsonValueKind.False
                        ? value.GetBoolean()
                        : throw where.Field(name, value, "must be true or false.");
                    break;
                case "stream_options":
                    streamOptions = true;
                    includeUsage = value.ValueKind == JsonValueKind.Object && value.TryGetProperty("include_usage", out var usage) && usage.ValueKind is JsonValueKind.True or JsonValueKind.False
                        ? usage.GetBoolean()
                        : throw where.Field(name, value, "must be an object such as {\"include_usage\": true}.");
                    break;
                case "max_tokens" or "max_completion_tokens":
                    maxTokens = BatchFile.Integer(where, name, value, 1, "must be an integer >= 1 (tokens to generate).");
                    break;
                case "top_k" when value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int k) && k == -1:
                    sampling = sampling with { TopK = 0 }; // vLLM's "off"
                    break;
                case "temperature" or "top_k" or "top_p" or "repetition_penalty" or "seed" or "stop":
                    (options, sampling) = BatchFile.GenerationField(where, name, value, options, sampling);
                    break;
                case "presence_penalty" or "frequency_penalty":
                    if (BatchFile.Number(where, name, value, "must be 0: this server has no presence or frequency penalty (repetition_penalty is Hugging Face's).") != 0)
                        throw where.Field(name, value, "must be 0: this server has no presence or frequency penalty (repetition_penalty is Hugging Face's).");
                    break;
                case "n" or "best_of":
                    BatchFile.Integer(where, name, value, 1, "must be 1: this server answers one choice per request.");
                    if (value.GetInt32() != 1)
                        throw where.Field(name, value, "must be 1: this server answers one choice per request.");
                    break;
                case "logprobs":
                    if (!(value.ValueKind == JsonValueKind.False || (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int lp) && lp == 0)))
                        throw where.Field(name, value, "must be false: this server does not return log probabilities.");
                    break;
                case "echo":
                    if (value.ValueKind != JsonValueKind.False)
                        throw where.Field(name, value, "must be false: this server does not echo the prompt.");
                    break;
                case "suffix":
                    throw where.Field(name, value, "is not supported: this server does not fill in the middle (leave it out or null).");
                case "response_format":
                    if (!(value.ValueKind == JsonValueKind.Object && value.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"))
                        throw where.Field(name, value, "must be {\"type\": \"text\"}: this server has no constrained (JSON) decoding.");
                    break;
            }
        }
        if (chat && messages is null)
            throw where.Error("no \"messages\": give the conversation, such as [{\"role\": \"user\", \"content\": \"Hello\"}].");
        if (!chat && prompt is null && promptIds is null)
            throw where.Error("no \"prompt\": give the text to continue (or an array of token ids).");
        if (streamOptions && !stream)
            throw where.Error("\"stream_options\" goes with \"stream\": true.");
        if (tools != null && !noTools && stream)
            throw where.Error("\"tools\" with \"stream\": true is not supported yet: the tool calls are parsed from the whole reply; set \"stream\": false.");
        // "tool_choice": "none": the conversation is rendered without the tools, so the model is not offered any
        return new OpenAiRequest(chat, prompt, promptIds, messages, noTools ? null : tools, options with { Sampling = sampling }, maxTokens, stream, includeUsage);
    }

    /// <summary>The field an error message starts with ("\"top_p\" 7: ..." -> top_p), for the error object's "param".</summary>
    static string? ParamOf(string message)
    {
        if (message.Length < 2 || message[0] != '"')
            return message.StartsWith("unknown field \"", StringComparison.Ordinal) ? message[15..message.IndexOf('"', 15)] : null;
        int end = message.IndexOf('"', 1);
        return end > 1 ? message[1..end] : null;
    }
}
