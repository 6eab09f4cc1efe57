using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>A --model argument that may name a checkpoint folder or just a config.json.</summary>
internal static class ModelSource
{
    /// <summary>The parsed config, and the folder if the argument named one that has weights.</summary>
    public static (ModelConfig Config, string? WeightsFolder) Read(string? argument)
    {
        string path = argument ?? CommonOptions.EmbeddedModel;
        if (File.Exists(path))
            return (ModelConfig.Load(path), null);
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException($"'{path}' is neither a model folder nor a config.json file.");
        var config = ModelConfig.Load(path);
        bool hasWeights = File.Exists(Path.Combine(path, "model.safetensors")) || File.Exists(Path.Combine(path, "model.safetensors.index.json"));
        return (config, hasWeights ? path : null);
    }

    /// <summary>Bytes in binary units with one decimal: "1.5 GiB".</summary>
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };

    /// <summary>A parameter count in billions or millions: "671.03 B".</summary>
    public static string Count(long n) => n >= 1_000_000_000 ? $"{n / 1e9:F2} B" : $"{n / 1e6:F2} M";
}
