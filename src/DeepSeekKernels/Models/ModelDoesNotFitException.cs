namespace DeepSeekKernels.Models;

/// <summary>A model was refused before loading because its weights, tables and workspace exceed the memory available.</summary>
public sealed class ModelDoesNotFitException(string folder, string device, ModelLoader.MemoryNeeds needed, long available)
    : Exception($"{folder} needs {Gib(needed.Total)} on {device} (weights {Gib(needed.Weights)} + RoPE tables {Gib(needed.RopeTables)} " +
        $"+ activations {Gib(needed.Workspace)}, before any KV cache) but {Gib(available)} is available; nothing was loaded. " +
        "`dsk plan` shows what fits, per weight format.")
{
    /// <summary>What the model would take.</summary>
    public ModelLoader.MemoryNeeds Needed { get; } = needed;

    /// <summary>The memory it was checked against.</summary>
    public long Available { get; } = available;

    static string Gib(long bytes) => $"{bytes / (double)(1L << 30):F2} GiB";
}
