using System.CommandLine;
using DeepSeekKernels.Models;
using DeepSeekKernels.Quantization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// --quant none|int4|fp8, shared by generate, chat and plan: how the runner stores the linear weights a checkpoint
/// holds in bf16, f16 or f32 (<see cref="WeightQuantization"/>). Kept out of <see cref="CommonOptions"/> so the
/// commands take it with one line each.
/// </summary>
internal static class QuantOption
{
    static readonly string[] Values = [.. Enum.GetValues<WeightQuantization>().Select(q => q.Name())];

    /// <summary>--quant for generate and chat: none (the default), int4 or fp8.</summary>
    public static Option<string> ForLoading() => new Option<string>("--quant")
    {
        Description = "Store the checkpoint's bf16/f16/f32 linear weights as none (as stored), int4 (group 128) or fp8 (128x128 blocks), "
            + "quantised at load; embeddings, norms, the router and MLA's kv_b_proj stay dense, FP8 weights stay FP8.",
        DefaultValueFactory = _ => "none",
    }.AcceptOnlyFromAmong(Values);

    /// <summary>--quant for plan: one plan for none, int4 or fp8; all three side by side when not given.</summary>
    public static Option<string?> ForPlanning() => new Option<string?>("--quant")
    {
        Description = "Plan for one weight storage, none (bf16), int4 or fp8, as --quant loads it (default: all three side by side).",
    }.AcceptOnlyFromAmong(Values);

    /// <summary>The value of a --quant word the parser has accepted.</summary>
    public static WeightQuantization Parse(string value) => Enum.GetValues<WeightQuantization>().Single(q => q.Name() == value);

    /// <summary>
    /// After loading with --quant int4|fp8: what was quantised, as a status line on stderr, and a warning when nothing
    /// could be (the model then runs as stored).
    /// </summary>
    public static void Report(string command, CausalLanguageModel model)
    {
        var report = model.Quantization;
        if (report.Requested == WeightQuantization.None)
            return;
        if (report.Quantized == 0)
            CliErrors.Warning(command, $"--quant {report.Describe()}: the model runs as stored.");
        else
            CliErrors.Status($"--quant {report.Describe()}");
    }
}
