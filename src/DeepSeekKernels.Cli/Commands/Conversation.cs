using DeepSeekKernels.Tokenization;
using DeepSeekKernels.Tokenization.Templates;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// How dsk renders a conversation for a model (`dsk chat`, `dsk generate --batch-file` "messages"): with the model's own chat
/// template (tokenizer_config.json's chat_template, <see cref="ChatTemplate"/>) where it has one, else with DeepSeek's format
/// built in (<see cref="ChatFormat"/>, which takes no tools and no tool turns). A template the engine cannot parse is named in a
/// warning and the built-in format used; a conversation the template refuses is a <see cref="UsageException"/>.
/// </summary>
internal sealed class Conversation
{
    readonly string _folder;
    readonly ChatTemplate? _template;
    readonly ChatFormat _format;

    Conversation(string folder, ChatTemplate? template, ChatFormat format) => (_folder, _template, _format) = (folder, template, format);

    /// <summary>The renderer for the model in <paramref name="folder"/>; <paramref name="command"/> names the warning's source.</summary>
    public static Conversation For(string folder, HfTokenizer tokenizer, string command)
    {
        ChatTemplate? template = null;
        try
        {
            template = ChatTemplate.FromFolder(folder, tokenizer);
        }
        catch (TokenizerException e)
        {
            CliErrors.Warning(command, $"{e.Message}; using DeepSeek's chat format built into dsk instead.");
        }
        return new Conversation(folder, template, new ChatFormat(tokenizer, reasoning: ChatFormat.TemplateStartsReasoning(folder)));
    }

    /// <summary>Whether the model's own template renders (else the built-in format).</summary>
    public bool UsesModelTemplate => _template != null;

    /// <summary>Whether the model's template opens the assistant's turn with "&lt;think&gt;" (R1).</summary>
    public bool Reasoning => _format.Reasoning;

    /// <summary>
    /// The prompt for <paramref name="messages"/> with the generation prompt (encode it without adding BOS again);
    /// <paramref name="where"/> starts an error's message (default: the folder's tokenizer_config.json).
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, string? toolsJson = null, string? where = null)
    {
        where ??= Path.Combine(_folder, "tokenizer_config.json");
        try
        {
            if (_template != null)
                return _template.Render(messages, addGenerationPrompt: true, toolsJson);
            if (toolsJson != null)
                throw new UsageException($"{where}: \"tools\" need the model's chat template, and {_folder} has none (tokenizer_config.json's chat_template).");
            return _format.Render(messages);
        }
        catch (Exception e) when (e is ChatTemplateException or ArgumentException)
        {
            throw new UsageException($"{where}: {e.Message}", e);
        }
    }
}
