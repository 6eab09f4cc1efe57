namespace DeepSeekKernels.Tokenization;

/// <summary>One turn of a conversation for <see cref="ChatFormat"/> and <see cref="ChatTemplate"/>.</summary>
/// <param name="Role">"system", "user", "assistant" or (for <see cref="ChatTemplate"/>) "tool".</param>
/// <param name="Content">What was said; null for an assistant turn that only calls tools (<see cref="ToolCalls"/>).</param>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>The tools an assistant turn calls (OpenAI's and transformers' <c>tool_calls</c>), or null.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>For a "tool" turn: the id of the call it answers (<c>tool_call_id</c>), or null.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>A system prompt.</summary>
    public static ChatMessage System(string content) => new("system", content);

    /// <summary>A user turn.</summary>
    public static ChatMessage User(string content) => new("user", content);

    /// <summary>An assistant turn.</summary>
    public static ChatMessage Assistant(string content) => new("assistant", content);

    /// <summary>An assistant turn that calls tools and says nothing else (content null, as DeepSeek's templates expect).</summary>
    public static ChatMessage AssistantCalls(params ToolCall[] calls) => new("assistant", null) { ToolCalls = calls };

    /// <summary>A tool's output, answering the call <paramref name="toolCallId"/>.</summary>
    public static ChatMessage Tool(string content, string? toolCallId = null) => new("tool", content) { ToolCallId = toolCallId };
}

/// <summary>One tool call of an assistant turn: <c>{"type": Type, "id": Id, "function": {"name": Name, "arguments": Arguments}}</c>.</summary>
/// <param name="Name">The function's name.</param>
/// <param name="Arguments">Its arguments as JSON text, as OpenAI's API and DeepSeek's templates carry them.</param>
/// <param name="Id">The call's id, or null.</param>
/// <param name="Type">"function".</param>
public sealed record ToolCall(string Name, string Arguments, string? Id = null, string Type = "function");
