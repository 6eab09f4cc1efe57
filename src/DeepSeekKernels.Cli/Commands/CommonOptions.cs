using System.CommandLine;
using System.Globalization;
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
            return beside; // missing: ModelFolder's error names where it should be
        }
    }

    public static Option<string?> Model(string description = "Hugging Face model folder (config.json, *.safetensors, tokenizer.json). Default: the embedded dsv3-pydoc-tiny.") =>
        new("--model", "-m") { Description = description };

    /// <summary>
    /// The model folder --model names (the embedded model when it is not given), or a <see cref="UsageException"/>
    /// naming the flag when it is a file or does not exist.
    /// </summary>
    public static string ModelFolder(string? flag)
    {
        if (flag is null)
        {
            string embedded = EmbeddedModel;
            return Directory.Exists(embedded) ? embedded
                : throw new UsageException($"the embedded model is not at {embedded} (a damaged installation?); give a model folder with --model.");
        }
        if (flag.Length == 0)
            throw new UsageException("--model \"\": give a model folder.");
        if (File.Exists(flag))
            throw new UsageException($"--model {flag}: is a file; give the model's folder (config.json, model.safetensors, tokenizer.json).");
        if (!Directory.Exists(flag))
            throw new UsageException($"--model {flag}: no such folder.");
        return flag;
    }

    public static Option<string> Backend() => new Option<string>("--backend")
    {
        Description = "auto (the default: native on a CUDA GPU with libdeepseek_kernels.so, else ilgpu on a GPU, else cpu), cpu (SIMD kernels " +
            "on the CPU, weights read in place from the mapped checkpoint), reference (the plain C# specification), ilgpu or native " +
            "(GPU kernels; an op they lack is an error unless --allow-fallback).",
        DefaultValueFactory = _ => "auto",
    }.AcceptOnlyFromAmong("auto", "cpu", "reference", "ilgpu", "native");

    /// <summary>`--threads`: the CPU backend's thread count; null when not given (one per physical core).</summary>
    public static Option<int?> Threads() => new("--threads")
    {
        Description = $"Threads of the cpu backend (default: one per physical core, {Ops.DefaultCpuThreads} here).",
    };

    public static Option<string?> Int4Dot() => new("--int4-dot")
    {
        Description = "How the cpu backend's decode multiplies activations with INT4 weights (--quant int4): f32 (default: the " +
            "exact arithmetic) or int8 (activations quantised per group to int8, integer dot products as llama.cpp's Q4_0: " +
            "faster, approximate).",
    };

    /// <summary>--int4-dot's value: f32 (the default) or int8, for the cpu backend only.</summary>
    public static CpuInt4Dot ParseInt4Dot(string? value, string backend) => value switch
    {
        null => CpuInt4Dot.Float32,
        _ when backend != "cpu" => throw new UsageException($"--int4-dot applies to the cpu backend; the backend here is {backend}."),
        "f32" or "float32" => CpuInt4Dot.Float32,
        "int8" => CpuInt4Dot.Int8,
        _ => throw new UsageException($"--int4-dot {value}: give f32 or int8."),
    };

    public static Option<bool> Fp8Activations(string what) => new("--fp8-activations")
    {
        Description = "Prefill runs the FP8-block linear layers (DeepSeek-V3's checkpoints, --quant fp8) as W8A8: activations quantised per token " +
            "and 128 features to e4m3, both scales applied per block, as DeepSeek-V3 and DeepGEMM do (for Hopper's FP8 tensor cores; about 3% " +
            "per layer from the dequantising product); decode and the MoE experts keep the dequantising kernels. " + what,
    };

    public static Option<bool> CudaGraphs() => new("--cuda-graphs")
    {
        Description = "On a CUDA GPU: replay each decode step from a CUDA graph (captured at the second decode step of a batch size) " +
            "instead of launching every kernel (CausalLanguageModel.DecodeGraphs).",
    };

    /// <summary>After a run with --cuda-graphs: how many decode steps replayed a graph, and why capturing failed if it did.</summary>
    public static void ReportGraphs(CausalLanguageModel model, string command)
    {
        if (!model.DecodeGraphs)
            return;
        CliErrors.Status($"dsk {command}: --cuda-graphs: {model.DecodeGraphReplays} decode step(s) replayed from CUDA graphs" +
            (model.DecodeGraphFailure != null ? $"; {model.DecodeGraphFailure}" : ""));
    }

    public static Option<bool> AllowFallback() => new("--allow-fallback")
    {
        Description = "With --backend ilgpu or native: run the ops the backend lacks on the reference (on a GPU, staged through host memory: slow) and list them at the end, instead of failing.",
    };

    /// <summary>
    /// After a run with --allow-fallback: the op calls that ran on the reference, one line each with calls and the bytes
    /// staged between device and host, to stderr (nothing when none fell back).
    /// </summary>
    public static void ReportFallback(Ops ops, string command)
    {
        var report = ops.FallbackReport;
        if (report.Count == 0)
            return;
        CliErrors.Status($"dsk {command}: --allow-fallback: {report.Count} op signature(s) the {ops.Backend.ToString().ToLowerInvariant()} backend lacks ran on the reference:");
        foreach (var line in report)
            CliErrors.Status(FormattableString.Invariant($"  {line.Signature}: {line.Calls:N0} calls, {line.StagedBytes:N0} bytes staged between device and host"));
    }

    public static Option<string> Device() => new Option<string>("--device")
    {
        Description = "Device for the ilgpu and native backends: auto, cuda or cpu (ILGPU's CPU accelerator).",
        DefaultValueFactory = _ => "auto",
    }.AcceptOnlyFromAmong("auto", "cuda", "cpu");

    /// <summary>`--kv-dtype`: the KV cache's element type; null when not given (see <see cref="KvType"/>).</summary>
    public static Option<string?> KvDtype(string defaultText) => new Option<string?>("--kv-dtype")
    {
        Description = $"Element type of the paged KV cache: float32 (the exact path) or bfloat16 (half the memory). Default: {defaultText}.",
    }.AcceptOnlyFromAmong("float32", "bfloat16");

    /// <summary>`--dtype`: the activation type; null when not given (see <see cref="ActivationType"/>).</summary>
    public static Option<string?> Dtype() => new Option<string?>("--dtype")
    {
        Description = "Activation type: float32 (the exact path) or bfloat16 (f32 accumulation, activations rounded to bf16 after each op, " +
            "as transformers runs a bf16 checkpoint). Default: float32 on the CPU (the cpu and reference backends), bfloat16 on a GPU.",
    }.AcceptOnlyFromAmong("float32", "bfloat16");

    /// <summary>
    /// The activation type: the flag's, else float32 with the reference backend or on ILGPU's CPU accelerator (the exact
    /// CPU path), bfloat16 with a GPU backend on a CUDA GPU.
    /// </summary>
    public static Numerics.ElementType ActivationType(string? flag, string backend, bool cuda) => flag switch
    {
        "float32" => Numerics.ElementType.F32,
        "bfloat16" => Numerics.ElementType.BF16,
        _ => backend != "reference" && cuda ? Numerics.ElementType.BF16 : Numerics.ElementType.F32,
    };

    /// <summary>The KV cache's element type: the flag's, else the activation type.</summary>
    public static Numerics.ElementType KvType(string? flag, Numerics.ElementType activations) => flag switch
    {
        "float32" => Numerics.ElementType.F32,
        "bfloat16" => Numerics.ElementType.BF16,
        _ => activations,
    };

    /// <summary>The sampling options, added to a command together.</summary>
    public sealed class Sampling
    {
        public Option<float> Temperature { get; } = new("--temperature", "-t") { Description = "0 = greedy (the default); otherwise the sampling temperature.", DefaultValueFactory = _ => 0f };
        public Option<int> TopK { get; } = new("--top-k") { Description = "Keep the k most likely tokens (0 = off).", DefaultValueFactory = _ => 0 };
        public Option<float> TopP { get; } = new("--top-p") { Description = "Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).", DefaultValueFactory = _ => 1f };
        public Option<float> RepetitionPenalty { get; } = new("--repetition-penalty") { Description = "Hugging Face's repetition penalty (1 = off).", DefaultValueFactory = _ => 1f };
        public Option<int?> Seed { get; } = new("--seed") { Description = "Seed of the sampler, for repeatable sampling." };
        public Option<int> MaxNewTokens { get; } = new("--max-new-tokens", "-n") { Description = "Most tokens to generate (generation also stops when the context is full).", DefaultValueFactory = _ => 64 };
        public Option<string[]> Stop { get; } = new("--stop") { Description = "Stop when the text contains this string (repeatable).", AllowMultipleArgumentsPerToken = false };
        public Option<int?> Context { get; } = new("--context") { Description = "Context length (KV cache positions). Default: prompt + max-new-tokens, at most the model's max_position_embeddings." };

        public void AddTo(Command command)
        {
            foreach (Option option in new Option[] { Temperature, TopK, TopP, RepetitionPenalty, Seed, MaxNewTokens, Stop, Context })
                command.Options.Add(option);
        }

        /// <summary>
        /// The options as given, checked (by <see cref="GenerationOptions.Validate"/>) before anything is loaded:
        /// one out of range is a <see cref="UsageException"/> naming its flag and value, e.g.
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
                throw new UsageException($"{flag} {value}: {CliErrors.OneLine(e)}", e);
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

    /// <summary>
    /// The runtime for --device: a <see cref="UsageException"/> naming the flag (or DSK_DEVICE, when that is what
    /// asked for a GPU) when there is no CUDA GPU.
    /// </summary>
    public static DeviceRuntime CreateRuntime(string device)
    {
        try
        {
            return DeviceRuntime.Create(device switch { "cuda" => DevicePreference.Cuda, "cpu" => DevicePreference.Cpu, _ => DevicePreference.Auto });
        }
        catch (NoCudaDeviceException e)
        {
            string asked = device == "cuda" ? "--device cuda" : $"{DeviceRuntime.DeviceVariable}={Environment.GetEnvironmentVariable(DeviceRuntime.DeviceVariable)?.Trim()}";
            string instead = device == "cuda" ? "use --device auto (the GPU when there is one, else the CPU) or --device cpu"
                : $"unset {DeviceRuntime.DeviceVariable} or set it to cpu";
            throw new UsageException($"{asked}: no CUDA GPU was found on this machine; {instead}.", e);
        }
    }

    /// <summary>
    /// The backend --backend auto stands for: on a CUDA GPU (unless --device cpu or DSK_DEVICE=cpu says otherwise) native where
    /// libdeepseek_kernels.so loads, else ilgpu; without one, cpu. Other values are returned as they are.
    /// </summary>
    public static string ResolveBackend(string backend, string device)
    {
        if (backend != "auto")
            return backend;
        bool cpuAsked = device == "cpu" || (device == "auto"
            && Environment.GetEnvironmentVariable(DeviceRuntime.DeviceVariable)?.Trim().Equals("cpu", StringComparison.OrdinalIgnoreCase) == true);
        if (cpuAsked || (device == "auto" && !DeviceRuntime.IsCudaAvailable()))
            return "cpu";
        return Bindings.DskNative.TryLoad(out _) ? "native" : "ilgpu";
    }

    /// <summary>
    /// The runtime and ops for --backend/--device/--threads (backend already resolved: <see cref="ResolveBackend"/>). The
    /// reference and the cpu backend run on ILGPU's CPU accelerator (host memory, no copies). ilgpu and native are strict
    /// unless <paramref name="allowFallback"/> (--allow-fallback): then what they lack runs on the reference and is counted
    /// in <see cref="Ops.FallbackReport"/>.
    /// </summary>
    public static (DeviceRuntime Runtime, Ops Ops) CreateOps(string backend, string device, bool allowFallback = false, int? threads = null,
        CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        if (threads is int n && (n < 1 || n > 1024))
            throw new UsageException($"--threads {n}: give 1 to 1024 threads.");
        if (threads != null && backend != "cpu")
            throw new UsageException($"--threads applies to the cpu backend; the backend here is {backend}.");
        if (backend is "reference" or "cpu")
        {
            if (device == "cuda")
                throw new UsageException($"--backend {backend} runs on the CPU; drop --device cuda or use --backend ilgpu or native.");
            var cpu = DeviceRuntime.Create(DevicePreference.Cpu);
            var cpuOps = backend == "reference" ? Ops.Create(cpu, DeepSeekKernels.Backend.Reference)
                : threads != null || int4Dot != CpuInt4Dot.Float32 ? Ops.CreateCpu(cpu, threads ?? Ops.DefaultCpuThreads, int4Dot)
                : Ops.Create(cpu, DeepSeekKernels.Backend.Cpu);
            return (cpu, cpuOps);
        }
        var runtime = CreateRuntime(device);
        try
        {
            var kind = backend == "native" ? DeepSeekKernels.Backend.Native : DeepSeekKernels.Backend.Ilgpu;
            var ops = Ops.Create(runtime, kind, referenceFallback: allowFallback);
            return (runtime, ExcludedOps() is { Length: > 0 } excluded ? ops.Excluding(excluded) : ops);
        }
        catch (NotSupportedException e) when (backend == "native")
        {
            runtime.Dispose();
            throw new UsageException($"--backend native: {CliErrors.LowerFirst(CliErrors.OneLine(e))}; use --backend cpu, reference or ilgpu.", e);
        }
        catch
        {
            runtime.Dispose();
            throw;
        }
    }

    /// <summary>The environment variable that names ops the GPU backend must not run (a diagnostic, see <see cref="Ops.Excluding"/>).</summary>
    public const string ExcludeOpsVariable = "DSK_EXCLUDE_OPS";

    /// <summary>
    /// The op names in DSK_EXCLUDE_OPS (comma or space separated; empty when unset): with --backend ilgpu or native, those
    /// ops count as unsupported (refused when strict, run on the reference with --allow-fallback and listed).
    /// </summary>
    static string[] ExcludedOps()
    {
        var names = (Environment.GetEnvironmentVariable(ExcludeOpsVariable) ?? "")
            .Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (string name in names)
        {
            if (!Ops.OpNames.Contains(name))
                throw new UsageException($"{ExcludeOpsVariable}: '{name}' is not an op; the ops are {string.Join(", ", Ops.OpNames)}.");
        }
        return names;
    }

    /// <summary>Throws a <see cref="UsageException"/> naming --context unless 1 &lt;= context &lt;= maxPositions.</summary>
    public static void CheckContext(int context, int maxPositions)
    {
        if (context < 1 || context > maxPositions)
            throw new UsageException($"--context {context} is outside 1..{maxPositions} (the model's max_position_embeddings).");
    }

    /// <summary>
    /// The context to run: --context when given, else prompt + max-new-tokens (at least one new token), at most
    /// max_position_embeddings; computed in 64 bits, so -n 2147483647 means "until the context is full".
    /// </summary>
    public static int ContextFor(int? flag, int promptTokens, int maxNewTokens, int maxPositions) =>
        flag ?? (int)Math.Min(maxPositions, (long)promptTokens + Math.Max(1, maxNewTokens));

    /// <summary>
    /// Checks a prompt of <paramref name="tokens"/> ids against the context before anything is loaded or printed:
    /// it must leave room for at least one generated token.
    /// </summary>
    public static void CheckPromptFits(int tokens, int context, bool contextGiven, int maxPositions)
    {
        if (tokens == 0)
            throw new UsageException("the prompt is empty (no tokens): give some text, or ids with --prompt-ids.");
        if (tokens < context)
            return;
        throw new UsageException(contextGiven
            ? $"the prompt has {tokens:N0} tokens and --context {context:N0} leaves no room to generate: give a context above {tokens:N0} (at most {maxPositions:N0}, the model's max_position_embeddings) or a shorter prompt."
            : $"the prompt has {tokens:N0} tokens; the model holds at most {maxPositions:N0} (max_position_embeddings), and one is needed to generate: shorten the prompt.");
    }

    /// <summary>
    /// Parses "1,2,3" into ids, each in [0, <paramref name="vocabSize"/>): a <see cref="UsageException"/> names
    /// an empty, non-numeric or out-of-range entry by its position.
    /// </summary>
    public static int[] ParseIds(string text, int vocabSize)
    {
        if (text.Trim().Length == 0)
            throw new UsageException("--prompt-ids: no ids given.");
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (parts[i].Length == 0)
                throw new UsageException($"--prompt-ids: entry {i + 1} is empty (ids are separated by single commas, e.g. 1,2,3).");
            bool digits = parts[i].All(char.IsAsciiDigit);
            if (!digits)
                throw new UsageException($"--prompt-ids: '{parts[i]}' (entry {i + 1}) is not a non-negative integer.");
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]) || ids[i] >= vocabSize)
                throw new UsageException($"--prompt-ids: {parts[i]} (entry {i + 1}) is outside the model's vocabulary, 0..{vocabSize - 1} (vocab_size in config.json).");
        }
        return ids;
    }

    /// <summary>The model's config.json, read before anything else is (a wrong flag should not cost a checkpoint's loading time).</summary>
    public static ModelShape ShapeOf(string modelFolder) => ModelShapes.From(ModelConfig.Load(modelFolder));
}
