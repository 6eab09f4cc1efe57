using System.CommandLine;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk chat`: an interactive conversation in the model's own chat template, or DeepSeek's chat format where it has none
/// (<see cref="Conversation"/>). Each turn renders the whole
/// conversation, and the generator's cache is reused for the part already run, so a turn costs only its new tokens.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var system = new Option<string?>("--system") { Description = "A system prompt." };
        var engine = new EngineOptions();
        var sampling = new CommonOptions.Sampling();
        var command = new Command("chat", "Chat with a model in DeepSeek's chat format (type a message; an empty line or /exit ends).")
        {
            model, system,
        };
        engine.AddTo(command);
        sampling.AddTo(command);
        command.SetAction(parse => Run(parse.GetValue(model), parse.GetValue(system), engine.Read(parse), sampling.Read(parse),
            parse.GetValue(sampling.Context)));
        return command;
    }

    /// <summary>The context when --context is not given: the model's limit, at most this.</summary>
    const int DefaultContext = 4096;

    static int Run(string? modelFlag, string? system, EngineChoice engine, GenerationOptions options, int? context)
    {
        string folder = CommonOptions.ModelFolder(modelFlag);
        var shape = CommonOptions.ShapeOf(folder);
        if (context is { } c)
            CommonOptions.CheckContext(c, shape.MaxPositions);
        int ctx = context ?? Math.Min(shape.MaxPositions, DefaultContext);
        var tokenizer = HfTokenizer.FromFolder(folder);
        // The model's own chat template where it ships one (as transformers renders it), else DeepSeek's format built in.
        var conversation = Conversation.For(folder, tokenizer, "chat");
        var messages = new List<ChatMessage>();
        if (!string.IsNullOrEmpty(system))
            messages.Add(new ChatMessage("system", system));
        // The system prompt alone must leave room for a turn.
        CheckFits(tokenizer.Encode(conversation.Render(messages), addSpecialTokens: false).Length, ctx, shape.MaxPositions, context != null);

        using (var loaded = engine.Load(folder, ctx, "chat"))
        {
            var model = loaded.Model;
            using var generator = new TextGenerator(model, tokenizer, ctx, loaded.KvType);
            CliErrors.Status($"chatting with {model.Shape.Architecture} from {folder} (context {ctx}" +
                (conversation.UsesModelTemplate ? "; the model's chat template" : "; DeepSeek's chat format") +
                (conversation.Reasoning ? "; its chat template makes it reason first, in <think>" : "") + "); an empty line or /exit ends");
            var input = new Utf8LineReader(Console.OpenStandardInput());
            while (true)
            {
                Console.Out.Write("> ");
                Console.Out.Flush();
                string? line = input.ReadLine(out int invalidByte);
                if (invalidByte > 0)
                    CliErrors.Warning("chat", $"input line {input.LineNumber} is not valid UTF-8 (byte {invalidByte}); its invalid bytes were read as U+FFFD.");
                if (line is null || line.Trim().Length == 0 || line.Trim() == "/exit")
                    break;
                messages.Add(new ChatMessage("user", line));
                var ids = tokenizer.Encode(conversation.Render(messages), addSpecialTokens: false);
                CheckFits(ids.Length, ctx, shape.MaxPositions, context != null);
                var turn = options with { MaxNewTokens = Math.Min(options.MaxNewTokens, ctx - ids.Length) };
                var result = generator.Generate(ids, turn, token =>
                {
                    Console.Out.Write(token.Text);
                    Console.Out.Flush();
                });
                Console.Out.WriteLine();
                messages.Add(new ChatMessage("assistant", result.Text));
            }
            CommonOptions.ReportGraphs(loaded.Model, "chat");
            CommonOptions.ReportFallback(loaded.Ops, "chat");
        }
        return 0;
    }

    /// <summary>The conversation must leave room for one generated token; if not, the chat cannot go on: an error (exit 1).</summary>
    static void CheckFits(int tokens, int context, int maxPositions, bool contextGiven)
    {
        if (tokens < context)
            return;
        throw new UsageException($"the conversation has {tokens:N0} tokens and the context holds {context:N0}: the chat cannot go on; start a new one" +
            (context < maxPositions ? $" with a larger --context (at most {maxPositions:N0}, the model's max_position_embeddings)." : " (the model's max_position_embeddings is reached)."));
    }
}
