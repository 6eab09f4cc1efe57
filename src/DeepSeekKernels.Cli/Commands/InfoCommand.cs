using System.CommandLine;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;
using Spectre.Console;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>`dsk info`: architecture, parameter counts (total and active per token) and the checkpoint's bytes per dtype.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model("A model folder or a config.json. Default: the embedded dsv3-pydoc-tiny.");
        var command = new Command("info", "Show a model's architecture, parameter counts and checkpoint contents.") { model };
        command.SetAction(parse => CliErrors.Run("info", () => Run(parse.GetValue(model))));
        return command;
    }

    static int Run(string? argument)
    {
        var (config, weights) = ModelSource.Read(argument);
        var shape = ModelShapes.From(config);
        var inventory = ParameterInventory.Of(shape);

        var table = new Table().Border(TableBorder.Rounded).AddColumns("", "");
        table.AddRow("model_type", $"{config.ModelType} ({shape.Architecture})");
        table.AddRow("source", Markup.Escape(config.Source));
        table.AddRow("layers / hidden / vocab", $"{shape.Layers} / {shape.Hidden} / {shape.Vocab}");
        if (shape.IsMla)
            table.AddRow("attention", $"MLA: {shape.Heads} heads, q_lora_rank {(shape.QLoraRank?.ToString() ?? "none")}, kv_lora_rank {shape.KvLoraRank}, " +
                $"qk {shape.QkNopeHeadDim}+{shape.QkRopeHeadDim} (rope), v {shape.VHeadDim}");
        else
            table.AddRow("attention", $"GQA: {shape.Heads} query heads, {shape.KvHeads} kv heads, head_dim {shape.HeadDim}{(shape.QkvBias ? ", q/k/v biases" : "")}");
        table.AddRow("rope", $"theta {config.RopeTheta}, {config.RopeScaling.Type}" +
            (config.RopeScaling.Type != RopeKind.Default ? $" x{config.RopeScaling.Factor}" : "") + $", max positions {shape.MaxPositions}");
        table.AddRow("mlp", shape.Experts > 0
            ? $"{shape.FirstDenseLayers} dense layers (intermediate {shape.Intermediate}), {shape.MoeLayers} MoE layers: {shape.Experts} routed experts " +
              $"(top {shape.ExpertsPerToken}, {config.ScoringFunc}, {config.TopkMethod}, {config.NGroup} groups / top {config.TopkGroup}), " +
              $"{shape.SharedExperts} shared, expert intermediate {shape.MoeIntermediate}"
            : $"dense SwiGLU, intermediate {shape.Intermediate}");
        table.AddRow("parameters", $"{ModelSource.Count(inventory.Total)} total ({inventory.Total:N0})");
        table.AddRow("active per token", $"{ModelSource.Count(inventory.ActivePerToken)} ({inventory.ActivePerToken:N0}; all but the routed experts a token is not sent to)");
        foreach (var role in Enum.GetValues<WeightRole>())
        {
            long n = inventory.Groups.Where(g => g.Role == role).Sum(g => g.Parameters);
            if (n > 0)
                table.AddRow($"  {role}", $"{ModelSource.Count(n)} ({n:N0})");
        }
        if (config.Quantization is { } q)
            table.AddRow("quantization", $"{q.QuantMethod} {q.Format}, {q.WeightBlockRows}x{q.WeightBlockCols} blocks, activations {q.ActivationScheme}");
        if (config.NumNextnPredictLayers > 0)
            table.AddRow("MTP layers", $"{config.NumNextnPredictLayers} (not loaded, not counted)");

        if (weights != null)
        {
            using var checkpoint = Checkpoint.Open(weights);
            table.AddRow("checkpoint", $"{ModelSource.Bytes(checkpoint.TotalBytes)} in {checkpoint.Tensors.Count()} tensors");
            foreach (var (dtype, bytes) in checkpoint.BytesByDType.OrderByDescending(kv => kv.Value))
                table.AddRow($"  {dtype}", ModelSource.Bytes(bytes));
        }
        AnsiConsole.Write(table);
        return 0;
    }
}
