using System.CommandLine;
using System.Diagnostics;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>`dsk generate`: continue a prompt (text or ids) with a model, streaming the text.</summary>
internal static class GenerateCommand
{
    /// <summary>The prompt used with the embedded model when none is given.</summary>
    public const string DefaultPrompt = "The list type";

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = new Argument<string?>("prompt")
        {
            Description = "Text to continue (default with the embedded model: \"" + DefaultPrompt + "\"). Text that starts with '-' goes after '--'.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Token ids to continue instead of text, e.g. 1,2,3 (no tokenizer involved; BOS is not added)." };
        var printIds = new Option<bool>("--print-ids") { Description = "Print the generated ids as one comma-separated line instead of the text." };
        var batchFile = new Option<string?>("--batch-file")
        {
            Description = "Run many requests together (continuous batching): a JSON Lines file, one request per line ({\"prompt\": ...} or " +
                "{\"prompt_ids\": [...]} or {\"messages\": [...], \"tools\": [...]}, rendered with the model's chat template; optional max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop, id); " +
                "prints one JSON line per request, in input order. The other sampling flags are the defaults.",
        };
        var maxBatch = new Option<int>("--max-batch")
        {
            Description = "With --batch-file: most requests running at once (the KV page pool is sized for this many full contexts).",
            DefaultValueFactory = _ => 16,
        };
        var engine = new EngineOptions();
        var sampling = new CommonOptions.Sampling();
        var command = new Command("generate", "Continue a prompt with a model (the embedded dsv3-pydoc-tiny by default), streaming the text.")
        {
            prompt, model, promptIds, printIds, batchFile, maxBatch,
        };
        engine.AddTo(command);
        sampling.AddTo(command);
        command.SetAction(parse => parse.GetValue(batchFile) is { } file
            ? RunBatch(parse.GetValue(model), file, parse.GetValue(prompt), parse.GetValue(promptIds), parse.GetValue(maxBatch),
                engine.Read(parse), sampling.Read(parse), parse.GetValue(sampling.Context))
            : Run(parse.GetValue(model), parse.GetValue(prompt), parse.GetValue(promptIds), parse.GetValue(printIds),
                engine.Read(parse), sampling.Read(parse), parse.GetValue(sampling.Context)));
        return command;
    }

    /// <summary>
    /// Everything about the request is checked (options, model folder, config, prompt against the context and
    /// vocabulary) before the model is loaded, and the model is loaded before anything is written to stdout.
    /// </summary>
    static int Run(string? modelFlag, string? prompt, string? promptIds, bool printIds, EngineChoice engine, GenerationOptions options,
        int? context)
    {
        string folder = CommonOptions.ModelFolder(modelFlag);
        if (prompt != null && promptIds != null)
            throw new UsageException("give either a text prompt or --prompt-ids, not both.");
        var shape = CommonOptions.ShapeOf(folder);
        if (context is { } c)
            CommonOptions.CheckContext(c, shape.MaxPositions);
        HfTokenizer? tokenizer = File.Exists(Path.Combine(folder, "tokenizer.json")) ? HfTokenizer.FromFolder(folder) : null;

        int[] ids;
        if (promptIds != null)
        {
            ids = CommonOptions.ParseIds(promptIds, shape.Vocab);
        }
        else
        {
            prompt ??= modelFlag == null ? DefaultPrompt : throw new UsageException("give a prompt (text argument) or --prompt-ids.");
            if (tokenizer is null)
                throw new UsageException($"--model {folder} has no tokenizer.json: give the prompt as --prompt-ids.");
            ids = tokenizer.Encode(prompt);
        }
        int ctx = CommonOptions.ContextFor(context, ids.Length, options.MaxNewTokens, shape.MaxPositions);
        CommonOptions.CheckPromptFits(ids.Length, ctx, context != null, shape.MaxPositions);

        using (var loaded = engine.Load(folder, ctx, "generate"))
        {
            using var generator = new TextGenerator(loaded.Model, tokenizer, ctx, loaded.KvType);
            // The prompt is echoed with the first piece of text, after the prefill ran: an op the backend cannot run
            // (strict mode) or non-finite logits are refused with nothing on stdout.
            bool echoed = printIds || prompt == null;
            void Echo()
            {
                if (!echoed)
                    Console.Out.Write(prompt);
                echoed = true;
            }
            var result = generator.Generate(ids, options, token =>
            {
                Echo();
                if (!printIds && token.Text.Length > 0)
                {
                    Console.Out.Write(token.Text);
                    Console.Out.Flush();
                }
            });
            Echo();
            if (printIds)
                Console.Out.WriteLine(string.Join(",", result.GeneratedIds));
            else
                Console.Out.WriteLine();
            CliErrors.Status($"{result.PromptIds.Count} prompt tokens, {result.GeneratedIds.Count} generated ({result.FinishReason}); " +
                $"prefill {result.PrefillTokensPerSecond:F1} tok/s, decode {result.DecodeTokensPerSecond:F1} tok/s");
            CommonOptions.ReportGraphs(loaded.Model, "generate");
            CommonOptions.ReportFallback(loaded.Ops, "generate");
        }
        return 0;
    }

    /// <summary>
    /// `--batch-file`: every request is read and checked (JSON, fields, prompts against the vocabulary and the context)
    /// before the model is loaded; then all run on one <see cref="BatchScheduler"/> over a shared page pool, and each
    /// result is written as one JSON line, in input order, as soon as every earlier one is written.
    /// </summary>
    static int RunBatch(string? modelFlag, string file, string? prompt, string? promptIds, int maxBatch, EngineChoice engine,
        GenerationOptions defaults, int? context)
    {
        if (prompt != null || promptIds != null)
            throw new UsageException("--batch-file holds the prompts: give no prompt argument or --prompt-ids with it.");
        if (maxBatch < 1)
            throw new UsageException($"--max-batch must be at least 1 (got {maxBatch}).");
        string folder = CommonOptions.ModelFolder(modelFlag);
        var shape = CommonOptions.ShapeOf(folder);
        if (context is { } c)
            CommonOptions.CheckContext(c, shape.MaxPositions);
        var requests = BatchFile.Read(file, defaults, shape.Vocab);
        HfTokenizer? tokenizer = File.Exists(Path.Combine(folder, "tokenizer.json")) ? HfTokenizer.FromFolder(folder) : null;
        var prompts = new int[requests.Count][];
        Conversation? conversation = null; // read at the first "messages"
        int ctx = 1;
        foreach (var request in requests)
        {
            if (request.PromptIds is { } ids)
                prompts[request.Index] = [.. ids];
            else if (tokenizer is null)
                throw new UsageException($"{file}:{request.LineNumber}: --model {folder} has no tokenizer.json: give the prompt as \"prompt_ids\".");
            else if (request.Messages is { } messages)
                prompts[request.Index] = tokenizer.Encode((conversation ??= Conversation.For(folder, tokenizer, "generate"))
                    .Render(messages, request.ToolsJson, $"{file}:{request.LineNumber}"), addSpecialTokens: false);
            else
                prompts[request.Index] = tokenizer.Encode(request.Prompt!);
            if (request.Options.StopStrings.Count > 0 && tokenizer is null)
                throw new UsageException($"{file}:{request.LineNumber}: \"stop\" needs a tokenizer; --model {folder} has no tokenizer.json.");
            ctx = Math.Max(ctx, CommonOptions.ContextFor(context, prompts[request.Index].Length, request.Options.MaxNewTokens, shape.MaxPositions));
        }
        foreach (var request in requests)
        {
            try
            {
                CommonOptions.CheckPromptFits(prompts[request.Index].Length, ctx, context != null, shape.MaxPositions);
            }
            catch (UsageException e)
            {
                throw new UsageException($"{file}:{request.LineNumber}: {e.Message}");
            }
        }

        // as many at once as a step holds (the model's chunk of positions), all at their full context
        int concurrent = Math.Min(Math.Min(maxBatch, requests.Count), Math.Min(ModelLoader.DefaultChunkTokens, ctx));
        using (var loaded = engine.Load(folder, ctx, "generate", kvSequences: concurrent))
        {
            var model = loaded.Model;
            using var cache = model.CreatePagedCache(model.CacheLayout(ctx, concurrent, loaded.KvType));
            CliErrors.Status($"{requests.Count} requests, up to {concurrent} at once; KV cache {cache.Layout.Pages} pages x " +
                $"{cache.Layout.PageSize} {cache.Layout.ElementType.Name()} ({cache.Bytes / 1e6:F1} MB)");
            var writer = new BatchResultWriter(Console.Out, requests);
            var scheduler = new BatchScheduler(model, tokenizer, cache);
            foreach (var request in requests)
                scheduler.Add(prompts[request.Index], request.Options, onFinished: result => writer.Write(request, result));
            var clock = Stopwatch.StartNew();
            scheduler.RunToCompletion();
            CliErrors.Status($"{requests.Count} requests in {scheduler.Steps} steps, {clock.Elapsed.TotalSeconds:F1} s");
            CommonOptions.ReportGraphs(loaded.Model, "generate");
            CommonOptions.ReportFallback(loaded.Ops, "generate");
        }
        return 0;
    }
}
