using System.CommandLine;
using DeepSeekKernels.Cli.Serving;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk serve`: an OpenAI-compatible HTTP server over one model (<see cref="OpenAiServer"/>): /v1/completions,
/// /v1/chat/completions (streamed or not), /v1/models, /health; requests run together with continuous batching on a page
/// pool for --max-batch full contexts. Runs until Ctrl+C (or SIGTERM).
/// </summary>
internal static class ServeCommand
{
    /// <summary>The context served when --context is not given (where the model allows it).</summary>
    const int DefaultContext = 4096;

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var host = new Option<string>("--host") { Description = "Address to listen on (0.0.0.0: every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port", "-p") { Description = "Port to listen on (0: a free one, printed at start).", DefaultValueFactory = _ => 8000 };
        var maxBatch = new Option<int>("--max-batch")
        {
            Description = "Most requests running at once (the KV page pool holds this many full contexts; more wait their turn).",
            DefaultValueFactory = _ => 8,
        };
        var name = new Option<string?>("--served-model-name") { Description = "The model's name in /v1/models and the answers (default: the model folder's name)." };
        var engine = new EngineOptions();
        var sampling = new CommonOptions.Sampling();
        var command = new Command("serve", "Serve a model over OpenAI's HTTP API (/v1/chat/completions, /v1/completions, /v1/models), " +
            "with continuous batching and streaming; the sampling flags are the defaults of requests that leave them out.")
        {
            model, host, port, maxBatch, name,
        };
        engine.AddTo(command);
        sampling.AddTo(command);
        command.SetAction(parse => Run(parse.GetValue(model), parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(maxBatch),
            parse.GetValue(name), engine.Read(parse), sampling.Read(parse), parse.GetValue(sampling.Context),
            parse.GetResult(sampling.MaxNewTokens) is { Implicit: false } ? parse.GetValue(sampling.MaxNewTokens) : null));
        return command;
    }

    static int Run(string? modelFlag, string host, int port, int maxBatch, string? servedName, EngineChoice engine,
        Generation.GenerationOptions defaults, int? context, int? maxNewTokens)
    {
        if (maxBatch < 1)
            throw new UsageException($"--max-batch must be at least 1 (got {maxBatch}).");
        if (port is < 0 or > 65535)
            throw new UsageException($"--port {port} is outside 0..65535 (0: a free port).");
        if (host.Trim().Length == 0)
            throw new UsageException("--host is empty: give an address such as 127.0.0.1 or 0.0.0.0.");
        string folder = CommonOptions.ModelFolder(modelFlag);
        var shape = CommonOptions.ShapeOf(folder);
        if (context is { } c)
            CommonOptions.CheckContext(c, shape.MaxPositions);
        int ctx = context ?? Math.Min(DefaultContext, shape.MaxPositions);
        if (ctx < 2)
            throw new UsageException($"--context {ctx} leaves no room for a prompt and a generated token.");
        HfTokenizer? tokenizer = File.Exists(Path.Combine(folder, "tokenizer.json")) ? HfTokenizer.FromFolder(folder) : null;
        string modelName = servedName ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        if (maxNewTokens is < 1)
            throw new UsageException($"--max-new-tokens {maxNewTokens}: a request's default must be at least 1 token.");

        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // shut down in order: stop listening, finish, free
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, s =>
        {
            s.Cancel = true;
            stop.Cancel();
        });
        try
        {
            using var loaded = engine.Load(folder, ctx, "serve", kvSequences: maxBatch);
            var conversation = tokenizer is null ? null : Conversation.For(folder, tokenizer, "serve");
            using var inference = new InferenceEngine(loaded.Model, tokenizer, ctx, maxBatch, loaded.KvType);
            using var server = new OpenAiServer(inference, tokenizer, conversation, modelName, shape.Vocab, defaults, maxNewTokens, Console.Error);
            server.Start(host, port);
            CliErrors.Status($"dsk serve: listening on {server.Address} (model \"{modelName}\", context {ctx:N0}, up to {maxBatch} requests at once, " +
                $"KV cache {inference.CacheBytes / 1e6:F1} MB); POST /v1/chat/completions, /v1/completions; GET /v1/models, /health; Ctrl+C stops");
            server.RunAsync(stop.Token).GetAwaiter().GetResult();
            CliErrors.Status($"dsk serve: stopped after {inference.Steps} steps");
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        return 0;
    }
}
