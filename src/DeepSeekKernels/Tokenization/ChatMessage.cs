namespace DeepSeekKernels.Tokenization;

/// <summary>One turn of a conversation for <see cref="ChatFormat"/>.</summary>
/// <param name="Role">"system", "user" or "assistant".</param>
/// <param name="Content">What was said.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>A system prompt.</summary>
    public static ChatMessage System(string content) => new("system", content);

    /// <summary>A user turn.</summary>
    public static ChatMessage User(string content) => new("user", content);

    /// <summary>An assistant turn.</summary>
    public static ChatMessage Assistant(string content) => new("assistant", content);
}
