using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// DeepSeek's chat format (DeepSeek-V3 and R1, and the R1-Distill models, which use the same one), as the
/// chat_template of DeepSeek-V3's tokenizer_config.json renders a conversation without tool calls:
/// <c>{BOS}{system prompts, joined by a blank line}&lt;｜User｜&gt;{u1}&lt;｜Assistant｜&gt;{a1}{EOS}&lt;｜User｜&gt;{u2}&lt;｜Assistant｜&gt;</c>.
/// System prompts go first wherever they appear; nothing follows &lt;｜Assistant｜&gt; (R1's later template adds
/// "&lt;think&gt;\n" there, and drops an assistant turn's reasoning up to "&lt;/think&gt;"; this one does not).
/// </summary>
public sealed class ChatFormat
{
    /// <summary>The marker before a user turn (fullwidth vertical bars U+FF5C; an added token in DeepSeek's tokenizers).</summary>
    public const string UserMarker = "<\uFF5CUser\uFF5C>";

    /// <summary>The marker before an assistant turn, and the generation prompt.</summary>
    public const string AssistantMarker = "<\uFF5CAssistant\uFF5C>";

    readonly HfTokenizer _tokenizer;

    /// <summary>The format with <paramref name="tokenizer"/>'s BOS and EOS tokens.</summary>
    /// <exception cref="ArgumentException">The tokenizer has no BOS or no EOS token.</exception>
    public ChatFormat(HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        BosToken = tokenizer.BosToken
            ?? throw new ArgumentException($"ChatFormat: the tokenizer ({tokenizer.TokenizerPath}) has no BOS token.", nameof(tokenizer));
        EosToken = tokenizer.EosToken
            ?? throw new ArgumentException($"ChatFormat: the tokenizer ({tokenizer.TokenizerPath}) has no EOS token.", nameof(tokenizer));
    }

    /// <summary>The text that starts every conversation (DeepSeek: "&lt;｜begin▁of▁sentence｜&gt;").</summary>
    public string BosToken { get; }

    /// <summary>The text that ends every assistant turn (DeepSeek: "&lt;｜end▁of▁sentence｜&gt;").</summary>
    public string EosToken { get; }

    /// <summary>
    /// The prompt text for <paramref name="messages"/>; with <paramref name="addGenerationPrompt"/>, ending in
    /// <see cref="AssistantMarker"/> so that the model writes the next assistant turn. Encode it with
    /// <c>addSpecialTokens: false</c> (it holds BOS already), or use <see cref="Encode"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A message is null, has null content, or a role other than
    /// "system", "user" or "assistant".</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var system = new StringBuilder();
        bool firstSystem = true;
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw new ArgumentException($"ChatFormat.Render: message {i} is null.", nameof(messages));
            if (message.Content is null)
                throw new ArgumentException($"ChatFormat.Render: message {i} ({message.Role}) has null content.", nameof(messages));
            if (message.Role is not ("system" or "user" or "assistant"))
                throw new ArgumentException(
                    $"ChatFormat.Render: message {i} has the role \"{message.Role}\"; the roles are \"system\", \"user\" and \"assistant\".", nameof(messages));
            if (message.Role == "system")
            {
                if (!firstSystem)
                    system.Append("\n\n");
                system.Append(message.Content);
                firstSystem = false;
            }
        }

        var text = new StringBuilder(BosToken).Append(system);
        foreach (var message in messages)
        {
            if (message.Role == "user")
                text.Append(UserMarker).Append(message.Content);
            else if (message.Role == "assistant")
                text.Append(AssistantMarker).Append(message.Content).Append(EosToken);
        }
        if (addGenerationPrompt)
            text.Append(AssistantMarker);
        return text.ToString();
    }

    /// <summary>The ids of <see cref="Render"/>'s text (encoded without adding BOS again).</summary>
    public int[] Encode(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        _tokenizer.Encode(Render(messages, addGenerationPrompt), addSpecialTokens: false);
}
