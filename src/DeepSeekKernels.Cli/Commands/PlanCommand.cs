using System.CommandLine;
using System.Globalization;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Quantization;
using Spectre.Console;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk plan`: the GPU memory a model needs at a context and batch, for its linear weights as --quant none (bf16),
/// fp8 and int4 store them (all three, or the one --quant names), line by line with each line's formula, against a
/// GPU's memory.
/// </summary>
internal static class PlanCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model("A model folder or a config.json. Default: the embedded dsv3-pydoc-tiny.");
        var context = new Option<int?>("--context", "-c") { Description = $"Tokens of context per sequence (default: {DefaultContext:N0}, or the model's max_position_embeddings where that is less)." };
        var batch = new Option<int>("--batch", "-b") { Description = "Sequences decoded together.", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device")
        {
            Description = "Plan for the runner on a GPU (gpu, the default; cuda means the same) or on the CPU (cpu: host memory, " +
                "float32 KV cache by default, no attention workspace, the process's own allowance instead of a CUDA context's).",
            DefaultValueFactory = _ => "gpu",
        }.AcceptOnlyFromAmong("gpu", "cuda", "cpu");
        var gpu = new Option<string?>("--gpu-memory", "--memory")
        {
            Description = "Memory to plan against, e.g. 80GiB, 80GB (10^9 bytes), 24 (GiB) (default: the first GPU's, from NVML, else 80 GiB; " +
                "with --device cpu the host's available memory, MemAvailable capped by a cgroup limit).",
        };
        var chunk = new Option<int>("--prefill-chunk") { Description = "Tokens per forward pass when reading the prompt.", DefaultValueFactory = _ => ModelLoader.DefaultChunkTokens };
        var kvDtype = CommonOptions.KvDtype("bfloat16, as the GPU backends run it; with --device cpu float32, as dsk generate runs on the CPU");
        var quant = QuantOption.ForPlanning();
        var fp8 = CommonOptions.Fp8Activations("Here: count the workspace's FP8 inputs and scales, as dsk generate --fp8-activations allocates them.");
        var command = new Command("plan", "Compute the GPU memory (or with --device cpu the host memory) a model needs (weights + KV cache + activations + overhead) per --quant weight storage.")
        {
            model, context, batch, device, gpu, chunk, quant, kvDtype, fp8,
        };
        command.SetAction(parse => Run(parse.GetValue(model), parse.GetValue(context), parse.GetValue(batch),
            parse.GetValue(gpu), parse.GetValue(chunk), parse.GetValue(quant) is { } q ? QuantOption.Parse(q) : null, parse.GetValue(kvDtype),
            parse.GetValue(fp8), parse.GetValue(device) == "cpu"));
        return command;
    }

    /// <summary>The plans shown without --quant, in this order.</summary>
    static readonly WeightQuantization[] All = [WeightQuantization.None, WeightQuantization.Fp8, WeightQuantization.Int4];

    /// <summary>A plan's column: the --quant word, with what "none" stores.</summary>
    static string Column(WeightQuantization q) => q == WeightQuantization.None ? "bf16 (none)" : q.Name();

    /// <summary>The context planned for when --context is not given (where the model allows it).</summary>
    const int DefaultContext = 8192;

    static int Run(string? argument, int? contextOption, int batch, string? gpuMemory, int chunk, WeightQuantization? quantization, string? kvDtype,
        bool fp8Activations, bool onCpu)
    {
        // The flags first, then the config: a mistake in either is named before anything is computed.
        if (batch < 1)
            throw new UsageException($"--batch {batch}: must be at least 1.");
        if (chunk < 1)
            throw new UsageException($"--prefill-chunk {chunk}: must be at least 1 (tokens per forward pass).");
        var (memory, memorySource) = onCpu ? HostMemoryToPlan(gpuMemory) : GpuMemory(gpuMemory);
        var (config, _) = ModelSource.Read(argument);
        var shape = ModelShapes.From(config);
        var inventory = ModelSource.Inventory(config, shape);
        int context = contextOption ?? Math.Min(DefaultContext, shape.MaxPositions);
        CommonOptions.CheckContext(context, shape.MaxPositions);
        var request = new PlanRequest(context, batch, memory, chunk,
            CommonOptions.KvType(kvDtype, onCpu ? Numerics.ElementType.F32 : Numerics.ElementType.BF16), Fp8Activations: fp8Activations, OnCpu: onCpu);
        MemoryPlan[] plans;
        try
        {
            plans = [.. (quantization is { } q ? [q] : All).Select(q => MemoryPlan.Compute(inventory, q, request))]; // checked sizes and total
        }
        catch (OverflowException e)
        {
            throw new UsageException($"--context {context:N0} x --batch {batch:N0}: {CliErrors.OneLine(e)}; plan for fewer tokens.", e);
        }

        AnsiConsole.MarkupLineInterpolated($"[bold]{config.ModelType}[/], {ModelSource.Count(inventory.Total)} parameters; KV cache [bold]{ModelSource.Bytes(plans[0].KvBytesPerToken)} per token[/]; context {context:N0} x batch {batch:N0}; {(onCpu ? "host" : "GPU")} memory {ModelSource.Bytes(memory)} ({memorySource})");
        if (shape.Fp8Block is var (blockRows, blockCols))
            AnsiConsole.MarkupLineInterpolated($"config.json: this checkpoint's linear weights are FP8 ({blockRows}x{blockCols} blocks); and the runner keeps them so whatever --quant says: the fp8 plan is what it loads (--quant none and int4 change only how lm_head is stored)");
        if (shape.Int4Checkpoint is { } int4)
            AnsiConsole.MarkupLineInterpolated($"config.json: this checkpoint's linear weights are {config.Quantization!.QuantMethod} {int4}; the runner keeps them so whatever --quant says: the int4 plan (in the checkpoint's groups) is what it loads, counting lm_head in INT4 as --quant int4 stores it (the checkpoint itself usually keeps lm_head dense)");
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumns("item", plans.Length > 1 ? $"formula ({string.Join(" / ", plans.Select(p => p.Quantization == WeightQuantization.None ? "bf16" : p.Quantization.Name()))} where they differ)" : "formula")
            .AddColumns(plans.Select(p => new TableColumn(Column(p.Quantization)).RightAligned()).ToArray());
        // Every plan's lines, each plan's in its order (an INT4 plan's "kept dense" line goes under its scales).
        var items = new List<string>();
        foreach (var plan in plans)
        {
            int next = 0;
            foreach (var line in plan.Lines)
            {
                int at = items.IndexOf(line.Item);
                if (at < 0)
                    items.Insert(at = next, line.Item);
                next = at + 1;
            }
        }
        foreach (string item in items)
        {
            var lines = plans.Select(p => p.Lines.FirstOrDefault(l => l.Item == item)).ToArray();
            var formulas = lines.Where(l => l != null).Select(l => l!.Formula).Distinct().ToArray();
            table.AddRow([Markup.Escape(item), Markup.Escape(string.Join(" / ", formulas)),
                .. lines.Select(l => l is null ? "-" : ModelSource.Bytes(l.Bytes))]);
        }
        table.AddRow(["[bold]total[/]", "sum of the lines above", .. plans.Select(p => $"[bold]{ModelSource.Bytes(p.Total)}[/]")]);
        table.AddRow(["fits?", $"total <= {ModelSource.Bytes(memory)}", .. plans.Select(p => p.Fits ? "[green]yes[/]" : "[red]no[/]")]);
        table.AddRow(["max context", $"at batch {batch}, the rest as planned; at most max_position_embeddings ({shape.MaxPositions:N0})", .. plans.Select(p => p.MaxContext.ToString("N0", CultureInfo.InvariantCulture))]);
        AnsiConsole.Write(table);
        return 0;
    }

    static (long Bytes, string Source) GpuMemory(string? text)
    {
        if (text != null)
            return (ParseBytes(text), "given");
        try
        {
            var gpus = Nvml.ReadAll();
            if (gpus.Count > 0)
                return (gpus[0].MemoryTotal, $"{gpus[0].Name}, from NVML");
        }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException or EntryPointNotFoundException)
        {
        }
        return (80L << 30, "no GPU found: assumed 80 GiB, an H100 80GB; --device cpu plans for this host");
    }

    /// <summary>--memory as given, else the host's available memory (what the CPU runner's loader checks against).</summary>
    static (long Bytes, string Source) HostMemoryToPlan(string? text)
    {
        if (text != null)
            return (ParseBytes(text), "given");
        if (Runtime.HostMemory.AvailableBytes() is long available)
            return (available, "available on this host: MemAvailable, capped by a cgroup limit");
        throw new UsageException("--device cpu: this host does not say how much memory is available (no /proc/meminfo); give --memory.");
    }

    /// <summary>The most --gpu-memory may say: 1 PiB, far beyond any GPU, and far from overflowing a plan's sums.</summary>
    const long MaxGpuMemory = 1L << 50;

    /// <summary>"80GB" (10^9), "79.6GiB" (2^30), "512MiB", or a bare number of GiB.</summary>
    internal static long ParseBytes(string text)
    {
        string t = text.Trim();
        (string Suffix, double Scale)[] units = [("GIB", 1L << 30), ("GB", 1e9), ("MIB", 1L << 20), ("MB", 1e6), ("TIB", 1L << 40), ("TB", 1e12), ("", 1L << 30)];
        foreach (var (suffix, scale) in units)
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(t[..^suffix.Length].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
            {
                double bytes = v * scale;
                if (!double.IsFinite(bytes) || bytes < 1 || bytes > MaxGpuMemory)
                    throw new UsageException($"--gpu-memory '{text}' is outside 1 B..{ModelSource.Bytes(MaxGpuMemory)}.");
                return (long)bytes;
            }
        throw new UsageException($"--gpu-memory '{text}' is not a size such as 80GB, 79.6GiB or 24.");
    }
}
