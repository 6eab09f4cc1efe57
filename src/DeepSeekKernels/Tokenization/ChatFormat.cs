using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// DeepSeek's chat format (DeepSeek-V3 and R1, and the R1-Distill models, which use the same one), as the
/// chat_template of DeepSeek-V3's tokenizer_config.json renders a conversation without tool calls (for tool use, and for any
/// model's own template, see <see cref="ChatTemplate"/>):
/// <c>{BOS}{system prompts, joined by a blank line}&lt;｜User｜&gt;{u1}&lt;｜Assistant｜&gt;{a1}{EOS}&lt;｜User｜&gt;{u2}&lt;｜Assistant｜&gt;</c>.
/// System prompts go first wherever they appear. In reasoning mode (R1's later template, and the R1-Distill
/// models': see <see cref="TemplateStartsReasoning"/>) the generation prompt is followed by "&lt;think&gt;\n" and
/// earlier assistant turns keep only what follows their "&lt;/think&gt;", as that template renders them.
/// </summary>
public sealed class ChatFormat
{
    /// <summary>The marker before a user turn (fullwidth vertical bars U+FF5C; an added token in DeepSeek's tokenizers).</summary>
    public const string UserMarker = "<\uFF5CUser\uFF5C>";

    /// <summary>The marker before an assistant turn, and the generation prompt.</summary>
    public const string AssistantMarker = "<\uFF5CAssistant\uFF5C>";

    /// <summary>What a reasoning model's turn starts with, and what ends its reasoning.</summary>
    public const string ThinkStart = "<think>\n", ThinkEnd = "</think>";

    readonly HfTokenizer _tokenizer;

    /// <summary>The format with <paramref name="tokenizer"/>'s BOS and EOS tokens.</summary>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="reasoning">R1-style reasoning mode (see the class remarks).</param>
    /// <exception cref="ArgumentException">The tokenizer has no BOS or no EOS token.</exception>
    public ChatFormat(HfTokenizer tokenizer, bool reasoning = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        Reasoning = reasoning;
        BosToken = tokenizer.BosToken
            ?? throw new ArgumentException($"ChatFormat: the tokenizer ({tokenizer.TokenizerPath}) has no BOS token.", nameof(tokenizer));
        EosToken = tokenizer.EosToken
            ?? throw new ArgumentException($"ChatFormat: the tokenizer ({tokenizer.TokenizerPath}) has no EOS token.", nameof(tokenizer));
    }

    /// <summary>Whether the model is prompted to reason first (R1): "&lt;think&gt;\n" after the generation prompt.</summary>
    public bool Reasoning { get; }

    /// <summary>
    /// True when the folder's tokenizer_config.json has a chat_template that opens the assistant's turn with
    /// "&lt;think&gt;" (DeepSeek-R1 and the R1-Distill models since their template update); false when it has none.
    /// </summary>
    public static bool TemplateStartsReasoning(string folder)
    {
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path))
            return false;
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        return json.RootElement.TryGetProperty("chat_template", out var template)
            && template.ValueKind == System.Text.Json.JsonValueKind.String
            && template.GetString()!.Contains(AssistantMarker + "<think>", StringComparison.Ordinal);
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
            if (message.ToolCalls is { Count: > 0 } || message.Role == "tool")
                throw new ArgumentException($"ChatFormat.Render: message {i} ({message.Role}) calls tools or answers a call; render tool use with the " +
                    "model's own chat template (ChatTemplate.FromFolder), which says how the model was trained to see it.", nameof(messages));
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
                text.Append(AssistantMarker).Append(Reasoning ? AfterReasoning(message.Content!) : message.Content).Append(EosToken);
        }
        if (addGenerationPrompt)
            text.Append(AssistantMarker).Append(Reasoning ? ThinkStart : "");
        return text.ToString();
    }

    /// <summary>An assistant turn as R1's template keeps it in the history: what follows its last "&lt;/think&gt;".</summary>
    static string AfterReasoning(string content)
    {
        int end = content.LastIndexOf(ThinkEnd, StringComparison.Ordinal);
        return end < 0 ? content : content[(end + ThinkEnd.Length)..];
    }

    /// <summary>The ids of <see cref="Render"/>'s text (encoded without adding BOS again).</summary>
    public int[] Encode(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        _tokenizer.Encode(Render(messages, addGenerationPrompt), addSpecialTokens: false);
}
