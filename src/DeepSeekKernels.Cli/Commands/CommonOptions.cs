using System.CommandLine;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>Options several commands share, and how they turn into runtime objects.</summary>
internal static class CommonOptions
{
    /// <summary>
    /// The model shipped with dsk, used when --model is not given: beside the program (models/dsv3-pydoc-tiny),
    /// else in a source checkout at or above the current folder (src/DeepSeekKernels.Cli/models/dsv3-pydoc-tiny),
    /// which is how a device bundle that leaves the model out finds it.
    /// </summary>
    public static string EmbeddedModel
    {
        get
        {
            string beside = Path.Combine(AppContext.BaseDirectory, "models", "dsv3-pydoc-tiny");
            if (Directory.Exists(beside))
                return beside;
            for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir != null; dir = dir.Parent)
            {
                string inCheckout = Path.Combine(dir.FullName, "src", "DeepSeekKernels.Cli", "models", "dsv3-pydoc-tiny");
                if (Directory.Exists(inCheckout))
                    return inCheckout;
            }
            return beside; // missing: the caller's error names where it should be
        }
    }

    public static Option<string?> Model(string description = "Hugging Face model folder (config.json, *.safetensors, tokenizer.json). Default: the embedded dsv3-pydoc-tiny.") =>
        new("--model", "-m") { Description = description };

    public static Option<string> Backend() => new Option<string>("--backend")
    {
        Description = "reference (C# on the CPU; the default), ilgpu or native (GPU kernels; ops they lack run on the reference).",
        DefaultValueFactory = _ => "reference",
    }.AcceptOnlyFromAmong("reference", "ilgpu", "native");

    public static Option<string> Device() => new Option<string>("--device")
    {
        Description = "Device for the ilgpu and native backends: auto, cuda or cpu (ILGPU's CPU accelerator).",
        DefaultValueFactory = _ => "auto",
    }.AcceptOnlyFromAmong("auto", "cuda", "cpu");

    /// <summary>The sampling options, added to a command together.</summary>
    public sealed class Sampling
    {
        public Option<float> Temperature { get; } = new("--temperature", "-t") { Description = "0 = greedy (the default); otherwise the sampling temperature.", DefaultValueFactory = _ => 0f };
        public Option<int> TopK { get; } = new("--top-k") { Description = "Keep the k most likely tokens (0 = off).", DefaultValueFactory = _ => 0 };
        public Option<float> TopP { get; } = new("--top-p") { Description = "Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).", DefaultValueFactory = _ => 1f };
        public Option<float> RepetitionPenalty { get; } = new("--repetition-penalty") { Description = "Hugging Face's repetition penalty (1 = off).", DefaultValueFactory = _ => 1f };
        public Option<int?> Seed { get; } = new("--seed") { Description = "Seed of the sampler, for repeatable sampling." };
        public Option<int> MaxNewTokens { get; } = new("--max-new-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 64 };
        public Option<string[]> Stop { get; } = new("--stop") { Description = "Stop when the text contains this string (repeatable).", AllowMultipleArgumentsPerToken = false };
        public Option<int?> Context { get; } = new("--context") { Description = "Context length (KV cache positions). Default: prompt + max-new-tokens, at most the model's max_position_embeddings." };

        public void AddTo(Command command)
        {
            foreach (Option option in new Option[] { Temperature, TopK, TopP, RepetitionPenalty, Seed, MaxNewTokens, Stop, Context })
                command.Options.Add(option);
        }

        /// <summary>
        /// The options as given, checked (by <see cref="GenerationOptions.Validate"/>) before anything is loaded:
        /// one out of range is an <see cref="ArgumentException"/> naming its flag and value, e.g.
        /// "--temperature -1: temperature must be finite and >= 0 (0 = greedy).". --context is checked by the
        /// command, against the model's max_position_embeddings.
        /// </summary>
        public GenerationOptions Read(ParseResult parse)
        {
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(MaxNewTokens),
                StopStrings = parse.GetValue(Stop) ?? [],
                Sampling = new SamplingOptions
                {
                    Temperature = parse.GetValue(Temperature),
                    TopK = parse.GetValue(TopK),
                    TopP = parse.GetValue(TopP),
                    RepetitionPenalty = parse.GetValue(RepetitionPenalty),
                    Seed = parse.GetValue(Seed),
                },
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e) when (e.ParamName is { } name && FlagOf(name) is { } flag)
            {
                string value = e.ActualValue is string text ? $"\"{text}\"" : FormattableString.Invariant($"{e.ActualValue}");
                throw new ArgumentException($"{flag} {value}: {CliErrors.OneLine(e)}", e);
            }
            return options;
        }

        /// <summary>The flag of a GenerationOptions or SamplingOptions property.</summary>
        string? FlagOf(string property) => property switch
        {
            nameof(SamplingOptions.Temperature) => Temperature.Name,
            nameof(SamplingOptions.TopK) => TopK.Name,
            nameof(SamplingOptions.TopP) => TopP.Name,
            nameof(SamplingOptions.RepetitionPenalty) => RepetitionPenalty.Name,
            nameof(GenerationOptions.MaxNewTokens) => MaxNewTokens.Name,
            nameof(GenerationOptions.StopStrings) => Stop.Name,
            _ => null,
        };
    }

    /// <summary>The runtime and ops for --backend/--device. The reference runs on ILGPU's CPU accelerator (host memory, no copies).</summary>
    public static (DeviceRuntime Runtime, Ops Ops) CreateOps(string backend, string device)
    {
        if (backend == "reference")
        {
            var cpu = DeviceRuntime.Create(DevicePreference.Cpu);
            return (cpu, Ops.Create(cpu, DeepSeekKernels.Backend.Reference));
        }
        var runtime = DeviceRuntime.Create(device switch { "cuda" => DevicePreference.Cuda, "cpu" => DevicePreference.Cpu, _ => DevicePreference.Auto });
        try
        {
            var kind = backend == "native" ? DeepSeekKernels.Backend.Native : DeepSeekKernels.Backend.Ilgpu;
            return (runtime, Ops.Create(runtime, kind).WithReferenceFallback());
        }
        catch
        {
            runtime.Dispose();
            throw;
        }
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming --context unless 1 &lt;= context &lt;= maxPositions.</summary>
    public static void CheckContext(int context, int maxPositions)
    {
        if (context < 1 || context > maxPositions)
            throw new ArgumentException($"--context {context} is outside 1..{maxPositions} (the model's max_position_embeddings).");
    }

    /// <summary>
    /// Checks --context, when given, against the model folder's config.json, before the weights are loaded
    /// (a wrong context should not cost a checkpoint's loading time).
    /// </summary>
    public static void CheckContext(int? context, string modelFolder)
    {
        if (context is { } c)
            CheckContext(c, ModelShapes.From(ModelConfig.Load(modelFolder)).MaxPositions);
    }

    /// <summary>Parses "1,2,3" into ids; throws FormatException naming the bad entry.</summary>
    public static int[] ParseIds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ids[i]))
                throw new FormatException($"--prompt-ids: '{parts[i]}' (entry {i + 1}) is not a non-negative integer.");
        if (ids.Length == 0)
            throw new FormatException("--prompt-ids: no ids given.");
        return ids;
    }
}
