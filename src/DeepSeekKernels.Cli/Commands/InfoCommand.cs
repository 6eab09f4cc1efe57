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
        command.SetAction(parse => Run(parse.GetValue(model)));
        return command;
    }

    static int Run(string? argument)
    {
        var (config, weights) = ModelSource.Read(argument);
        var shape = ModelShapes.From(config);
        var inventory = ModelSource.Inventory(config, shape);

        // With weights, the config must describe them: a contradiction is refused here, as loading would refuse it,
        // rather than reporting parameters for tensors the files do not have.
        using var checkpoint = weights != null ? Checkpoint.Open(weights) : null;
        var conformance = checkpoint != null ? CheckpointConformance.Check(checkpoint) : null;

        var table = new Table().Border(TableBorder.Rounded).HideHeaders().AddColumns("", "");
        table.AddRow("model_type", $"{config.ModelType} ({shape.Architecture})");
        table.AddRow("source", Markup.Escape(config.Source));
        table.AddRow("layers / hidden / vocab", $"{shape.Layers:N0} / {shape.Hidden:N0} / {shape.Vocab:N0}");
        if (shape.IsMla)
            table.AddRow("attention", $"MLA: {shape.Heads} heads, q_lora_rank {(shape.QLoraRank?.ToString() ?? "none")}, kv_lora_rank {shape.KvLoraRank}, " +
                $"qk {shape.QkNopeHeadDim}+{shape.QkRopeHeadDim} (rope), v {shape.VHeadDim}");
        else
            table.AddRow("attention", $"GQA: {shape.Heads} query heads, {shape.KvHeads} kv heads, head_dim {shape.HeadDim}{(shape.QkvBias ? ", q/k/v biases" : "")}");
        table.AddRow("rope", $"theta {config.RopeTheta}, {config.RopeScaling.Type}" +
            (config.RopeScaling.Type != RopeKind.Default ? $" x{config.RopeScaling.Factor}" : "") + $", max positions {shape.MaxPositions:N0}");
        long dense = (long)shape.Layers - shape.MoeLayers;
        table.AddRow("mlp", shape.Experts > 0
            ? $"{ModelSource.Plural(dense, "dense layer", "dense layers")} (intermediate {shape.Intermediate}), {ModelSource.Plural(shape.MoeLayers, "MoE layer", "MoE layers")}: " +
              $"{shape.Experts} routed experts (top {shape.ExpertsPerToken}, {config.ScoringFunc}, {config.TopkMethod}, {ModelSource.Plural(config.NGroup, "group", "groups")} / top {config.TopkGroup}), " +
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
            table.AddRow("quantization", q.Describe());
        if (config.NumNextnPredictLayers > 0)
            table.AddRow("MTP layers", $"{config.NumNextnPredictLayers} (not loaded, not counted)");

        if (checkpoint != null)
        {
            table.AddRow("checkpoint", $"{ModelSource.Bytes(checkpoint.TotalBytes)} in {checkpoint.Tensors.Count():N0} tensors");
            foreach (var (dtype, bytes) in checkpoint.BytesByDType.OrderByDescending(kv => kv.Value))
                table.AddRow($"  {dtype}", ModelSource.Bytes(bytes));
            if (conformance!.MtpTensors.Count > 0)
                table.AddRow("  MTP tensors", $"{conformance.MtpTensors.Count:N0} (not read)");
            if (conformance.UnreadTensors.Count > 0)
                table.AddRow("[yellow]  not read[/]", Markup.Escape(NotRead(conformance, shape.Layers)));
        }
        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary>"64 tensors the config does not use: layers 2..3 are beyond num_hidden_layers (2); e.g. model.layers.2.mlp.gate_proj.weight".</summary>
    static string NotRead(CheckpointConformanceReport report, int layers)
    {
        var beyond = report.LayersBeyondConfig;
        string which = beyond.Count == 0 ? ""
            : $": {(beyond.Count == 1 ? $"layer {beyond[0]} is" : $"layers {beyond[0]}..{beyond[^1]} are")} beyond num_hidden_layers ({layers:N0})";
        return $"{report.UnreadTensors.Count:N0} {(report.UnreadTensors.Count == 1 ? "tensor" : "tensors")} the config does not use{which}; e.g. {report.UnreadTensors[0]}";
    }
}
