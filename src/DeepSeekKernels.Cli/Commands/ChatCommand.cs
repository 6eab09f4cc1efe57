using System.CommandLine;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk chat`: an interactive conversation in DeepSeek's chat format. Each turn renders the whole
/// conversation, and the generator's cache is reused for the part already run, so a turn costs only its new tokens.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var system = new Option<string?>("--system") { Description = "A system prompt." };
        var backend = CommonOptions.Backend();
        var device = CommonOptions.Device();
        var sampling = new CommonOptions.Sampling();
        var command = new Command("chat", "Chat with a model in DeepSeek's chat format (type a message; an empty line or /exit ends).")
        {
            model, system, backend, device,
        };
        sampling.AddTo(command);
        command.SetAction(parse => CliErrors.Run("chat", () => Run(parse.GetValue(model), parse.GetValue(system),
            parse.GetValue(backend)!, parse.GetValue(device)!, sampling.Read(parse), parse.GetValue(sampling.Context))));
        return command;
    }

    static int Run(string? modelFolder, string? system, string backend, string device, GenerationOptions options, int? context)
    {
        string folder = modelFolder ?? CommonOptions.EmbeddedModel;
        CommonOptions.CheckContext(context, folder);
        var tokenizer = HfTokenizer.FromFolder(folder);
        var format = new ChatFormat(tokenizer, reasoning: ChatFormat.TemplateStartsReasoning(folder));
        var (runtime, ops) = CommonOptions.CreateOps(backend, device);
        using (runtime)
        {
            using var model = ModelLoader.Load(folder, ops);
            int ctx = context ?? Math.Min(model.Shape.MaxPositions, 4096);
            using var generator = new TextGenerator(model, tokenizer, ctx);
            var messages = new List<ChatMessage>();
            if (!string.IsNullOrEmpty(system))
                messages.Add(new ChatMessage("system", system));
            CliErrors.Status($"chatting with {model.Shape.Architecture} from {folder} (context {ctx}" +
                (format.Reasoning ? "; its chat template makes it reason first, in <think>" : "") + "); an empty line or /exit ends");
            while (true)
            {
                Console.Out.Write("> ");
                Console.Out.Flush();
                string? line = Console.In.ReadLine();
                if (line is null || line.Trim().Length == 0 || line.Trim() == "/exit")
                    break;
                messages.Add(new ChatMessage("user", line));
                var ids = tokenizer.Encode(format.Render(messages), addSpecialTokens: false);
                if (ids.Length >= ctx)
                {
                    Console.Error.WriteLine($"dsk chat: the conversation has {ids.Length} tokens, the context {ctx}; start a new chat or pass --context.");
                    break;
                }
                var turn = options with { MaxNewTokens = Math.Min(options.MaxNewTokens, ctx - ids.Length) };
                var result = generator.Generate(ids, turn, token =>
                {
                    Console.Out.Write(token.Text);
                    Console.Out.Flush();
                });
                Console.Out.WriteLine();
                messages.Add(new ChatMessage("assistant", result.Text));
            }
        }
        return 0;
    }
}
