using System.Text.Json;
using DeepSeekKernels.Tokenization.Templates;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// A model's own chat template (tokenizer_config.json's <c>chat_template</c>, a Jinja template) rendered as transformers'
/// <c>apply_chat_template</c> renders it: Jinja2 with <c>trim_blocks</c> and <c>lstrip_blocks</c>, loop controls, and
/// transformers' <c>tojson</c>, <c>raise_exception</c> and <c>strftime_now</c>; the context holds <c>messages</c>,
/// <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c> and, when given, <c>tools</c>. So a conversation with
/// tool calls and tool outputs gets exactly the prompt the model was trained on, whichever DeepSeek template revision
/// the checkpoint ships. The engine implements the Jinja that chat templates use (statements if / for / set / macro /
/// break / continue, namespaces, Python's string and dict methods, the common filters and tests); anything else is
/// refused when the template is parsed, with a <see cref="ChatTemplateException"/> giving its line and column.
/// </summary>
public sealed class ChatTemplate
{
    readonly IReadOnlyList<JinjaNode> _nodes;

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <exception cref="ChatTemplateException">Syntax the engine does not implement, or a malformed template.</exception>
    public ChatTemplate(string source, string bosToken, string eosToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        BosToken = bosToken;
        EosToken = eosToken;
        try
        {
            _nodes = JinjaParser.Parse(source);
        }
        catch (ChatTemplateException e)
        {
            throw Located(e, "cannot be parsed");
        }
    }

    /// <summary>The template's text.</summary>
    public string Source { get; }

    /// <summary>The context's <c>bos_token</c>.</summary>
    public string BosToken { get; }

    /// <summary>The context's <c>eos_token</c>.</summary>
    public string EosToken { get; }

    /// <summary>
    /// The chat template of the model in <paramref name="folder"/> (tokenizer_config.json's <c>chat_template</c>: a string,
    /// or the entry named "default" of a list of named templates); null when it has none. Its bos_token and eos_token are
    /// <paramref name="tokenizer"/>'s (<see cref="HfTokenizer.BosToken"/>, <see cref="HfTokenizer.EosToken"/>; "" where it has
    /// none), as transformers takes them from the tokenizer.
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <param name="tokenizer">The model's tokenizer (<see cref="HfTokenizer.FromFolder"/> of the same folder).</param>
    /// <exception cref="TokenizerException">tokenizer_config.json is not valid JSON, or the template cannot be parsed (the message names the file).</exception>
    public static ChatTemplate? FromFolder(string folder, HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path))
            return null;
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("chat_template", out var template))
                return null;
            string? source = template.ValueKind switch
            {
                JsonValueKind.String => template.GetString(),
                JsonValueKind.Array => template.EnumerateArray()
                    .Where(t => t.ValueKind == JsonValueKind.Object && t.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                        && n.GetString() == "default" && t.TryGetProperty("template", out var body) && body.ValueKind == JsonValueKind.String)
                    .Select(t => t.GetProperty("template").GetString()).FirstOrDefault(),
                JsonValueKind.Null => null,
                _ => throw new TokenizerException($"{path}: chat_template is {template.ValueKind}; it must be a string or a list of named templates", path),
            };
            if (source is null)
                return null;
            return new ChatTemplate(source, tokenizer.BosToken ?? "", tokenizer.EosToken ?? "");
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{path}: not valid JSON ({e.Message})", path, e);
        }
        catch (IOException e)
        {
            throw new TokenizerException($"{path}: cannot be read ({e.Message})", path, e);
        }
        catch (ChatTemplateException e)
        {
            throw new TokenizerException($"{path}: chat_template: {e.Message}", path, e);
        }
    }

    /// <summary>
    /// The prompt text for <paramref name="messages"/> (with <paramref name="addGenerationPrompt"/>, whatever the template
    /// adds to make the model write the next assistant turn). Encode it with <c>addSpecialTokens: false</c>.
    /// </summary>
    /// <param name="messages">The conversation: role, content (null for a turn that only calls tools), tool calls, tool_call_id.</param>
    /// <param name="addGenerationPrompt">Whether to add the generation prompt.</param>
    /// <param name="toolsJson">The tools the model may call, a JSON array of definitions (OpenAI's form), or null for none.</param>
    /// <exception cref="ChatTemplateException">The template raised an error for this conversation, or used a value it cannot.</exception>
    /// <exception cref="ArgumentException">A message is null, or <paramref name="toolsJson"/> is not a JSON array.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, string? toolsJson = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<object?>();
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ArgumentException($"ChatTemplate.Render: message {i} is null.", nameof(messages));
            var message = new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content };
            if (m.ToolCalls is { } calls)
            {
                message["tool_calls"] = calls.Select(c =>
                {
                    var call = new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = c.Type };
                    if (c.Id != null)
                        call["id"] = c.Id;
                    call["function"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["name"] = c.Name, ["arguments"] = c.Arguments };
                    return (object?)call;
                }).ToList();
            }
            if (m.ToolCallId != null)
                message["tool_call_id"] = m.ToolCallId;
            list.Add(message);
        }
        var context = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = BosToken,
            ["eos_token"] = EosToken,
        };
        if (toolsJson != null)
        {
            JsonDocument tools;
            try
            {
                tools = JsonDocument.Parse(toolsJson);
            }
            catch (JsonException e)
            {
                throw new ArgumentException($"ChatTemplate.Render: the tools are not valid JSON ({e.Message}).", nameof(toolsJson), e);
            }
            using (tools)
            {
                if (tools.RootElement.ValueKind != JsonValueKind.Array)
                    throw new ArgumentException("ChatTemplate.Render: the tools must be a JSON array of tool definitions.", nameof(toolsJson));
                context["tools"] = FromJson(tools.RootElement);
            }
        }
        try
        {
            return JinjaRuntime.Render(_nodes, context);
        }
        catch (ChatTemplateException e)
        {
            throw Located(e, "failed");
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or IndexOutOfRangeException or KeyNotFoundException
            or OverflowException or FormatException or InvalidOperationException)
        {
            // a built-in called with the wrong arguments (s.startswith() with none, a slice of absurd size)
            throw new ChatTemplateException($"the chat template failed: {e.Message}", -1, e);
        }
    }

    /// <summary>A JSON value as the template's values (objects keep their key order).</summary>
    static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value), StringComparer.Ordinal),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };

    ChatTemplateException Located(ChatTemplateException e, string what)
    {
        if (e.Position < 0)
            return new ChatTemplateException($"the chat template {what}: {e.Message}", e.Position, e);
        int line = 1, column = 1;
        for (int i = 0; i < e.Position && i < Source.Length; i++)
        {
            if (Source[i] == '\n') { line++; column = 1; }
            else column++;
        }
        string excerpt = Source.Substring(e.Position, Math.Min(40, Source.Length - e.Position)).ReplaceLineEndings(" ");
        return new ChatTemplateException($"the chat template {what}: {e.Message} (line {line}, column {column}: \"{excerpt}\")", e.Position, e);
    }
}
