using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Models;

/// <summary>A model was refused before loading because its weights, tables, workspace and announced KV cache exceed the memory available.</summary>
public sealed class ModelDoesNotFitException(string folder, string device, ModelLoader.MemoryNeeds needed, long available)
    : Exception($"{folder} needs {Gib(needed.Total)} on {device} (weights {Gib(needed.Weights)} + RoPE tables {Gib(needed.RopeTables)} " +
        $"+ activations {Gib(needed.Workspace)}{KvPart(needed)}) but {Gib(available)} is available; nothing was loaded. " +
        "`dsk plan` shows what fits, per weight format.")
{
    /// <summary>What the model would take.</summary>
    public ModelLoader.MemoryNeeds Needed { get; } = needed;

    /// <summary>The memory it was checked against.</summary>
    public long Available { get; } = available;

    static string Gib(long bytes) => $"{bytes / (double)(1L << 30):F2} GiB";

    static string KvPart(ModelLoader.MemoryNeeds needed) => needed.KvCacheLayout is { } kv
        ? $" + KV cache {Gib(needed.KvCache)} for {kv.Pages / kv.TableWidth:N0} sequence{(kv.Pages / kv.TableWidth == 1 ? "" : "s")} of " +
          $"{kv.MaxSequenceLength:N0} positions in {kv.ElementType.Name()}"
        : ", before any KV cache";
}
