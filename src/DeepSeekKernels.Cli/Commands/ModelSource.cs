using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>A --model argument that may name a checkpoint folder or just a config.json.</summary>
internal static class ModelSource
{
    /// <summary>The parsed config, and the folder if the argument named one that has weights.</summary>
    public static (ModelConfig Config, string? WeightsFolder) Read(string? argument)
    {
        string path = argument ?? CommonOptions.ModelFolder(null);
        if (path.Length == 0)
            throw new UsageException("--model \"\": give a model folder or a config.json.");
        if (File.Exists(path))
            return (ModelConfig.Load(path), null);
        if (!Directory.Exists(path))
            throw new UsageException($"--model {path}: no such file or folder (give a model folder or a config.json).");
        var config = ModelConfig.Load(path);
        bool hasWeights = File.Exists(Path.Combine(path, Checkpoint.SingleFileName)) || File.Exists(Path.Combine(path, Checkpoint.IndexFileName));
        return (config, hasWeights ? path : null);
    }

    /// <summary>
    /// The parameters of <paramref name="config"/>'s model; sizes too large to count in 64 bits are refused naming
    /// the config file.
    /// </summary>
    public static ParameterInventory Inventory(ModelConfig config, ModelShape shape)
    {
        try
        {
            return ParameterInventory.Of(shape); // counts its totals in checked arithmetic as it is made
        }
        catch (OverflowException e)
        {
            throw new UsageException($"{config.Source}: the sizes it gives cannot be counted in 64 bits ({CliErrors.OneLine(e)}); " +
                $"is the config damaged? (hidden_size {shape.Hidden}, num_hidden_layers {shape.Layers}, vocab_size {shape.Vocab})", e);
        }
    }

    /// <summary>Bytes in binary units with one decimal: "1.5 GiB".</summary>
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 40 => $"{bytes / (double)(1L << 40):F2} TiB",
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };

    /// <summary>A parameter count in trillions, billions or millions: "671.03 B".</summary>
    public static string Count(long n) => n switch
    {
        >= 1_000_000_000_000 => $"{n / 1e12:F2} T",
        >= 1_000_000_000 => $"{n / 1e9:F2} B",
        _ => $"{n / 1e6:F2} M",
    };

    /// <summary>"1 dense layer", "3 dense layers".</summary>
    public static string Plural(long n, string singular, string plural) => $"{n:N0} {(n == 1 ? singular : plural)}";
}
