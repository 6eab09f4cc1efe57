using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>A model that does not fit is refused before anything is allocated, with the parts of the bill.</summary>
[Collection(nameof(DeviceCollection))]
public class MemoryCheckTests
{
    public static TheoryData<string, int?> FoldersAndContexts()
    {
        var data = new TheoryData<string, int?>();
        foreach (var name in CheckpointFixtures.AllModelFolders())
        {
            data.Add(name.Data, null);
            data.Add(name.Data, 37);
        }
        return data;
    }

    [Theory, MemberData(nameof(FoldersAndContexts))]
    public void TheEstimateIsWhatLoadingAllocates(string name, int? contextLength)
    {
        string folder = CheckpointFixtures.Folder(name);
        ModelLoader.MemoryNeeds estimate;
        using (var checkpoint = Checkpoint.Open(folder))
            estimate = ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, contextLength);
        using var model = ModelTestSupport.Load(folder, contextLength: contextLength);
        Assert.Equal(contextLength ?? model.Shape.MaxPositions, model.ContextLimit);
        Assert.Equal(model.WeightBytes, estimate.Weights);
        Assert.Equal(model.RopeTableBytes, estimate.RopeTables);
        Assert.Equal(model.WorkspaceBytes, estimate.Workspace);
    }

    [Fact]
    public void AModelOverTheBudgetIsRefusedWithItsParts()
    {
        string folder = CheckpointFixtures.HfTiny("deepseek_v3");
        var ops = Ops.Create(TestDevices.Cpu, Backend.Reference);
        var e = Assert.Throws<ModelDoesNotFitException>(() => ModelLoader.Load(folder, ops, memoryBudgetBytes: 1 << 20));
        Assert.Contains("weights", e.Message);
        Assert.Contains("activations", e.Message);
        Assert.Contains("nothing was loaded", e.Message);
        Assert.True(e.Needed.Total > 1 << 20);
        // with enough, it loads
        using var model = ModelLoader.Load(folder, ops, memoryBudgetBytes: e.Needed.Total);
        Assert.Contains("before any KV cache", e.Message); // none was announced
    }

    /// <summary>
    /// A KV cache announced to the loader is counted in its fit check with the bytes the cache then allocates (the
    /// attention workspace included where the backend takes one): one byte short is refused before anything loads.
    /// </summary>
    [Theory]
    [InlineData("deepseek_v3", "reference", 4)] // MLA latent pages, no kernel workspace
    [InlineData("llama", "ilgpu", 3)]           // GQA key and value pages, and the attention ops' split workspace
    public void AnAnnouncedKvCacheIsCountedAsItWillBeAllocated(string name, string backend, int sequences)
    {
        string folder = CheckpointFixtures.HfTiny(name);
        var ops = backend == "ilgpu" ? Ops.Create(TestDevices.Cpu, Backend.Ilgpu) : Ops.Create(TestDevices.Cpu, Backend.Reference);
        var request = new KvCacheRequest(sequences, ElementType.BF16);
        const int context = 300;
        ModelLoader.MemoryNeeds modelAlone;
        using (var checkpoint = Checkpoint.Open(folder))
            modelAlone = ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, context);

        var e = Assert.Throws<ModelDoesNotFitException>(() => ModelLoader.Load(folder, ops, contextLength: context,
            memoryBudgetBytes: modelAlone.Total, kvCache: request));
        Assert.Equal(modelAlone.Total, e.Needed.Total - e.Needed.KvCache);
        Assert.True(e.Needed.KvCache > 0);
        Assert.Contains($"+ KV cache ", e.Message);
        Assert.Contains($" for {sequences} sequences of 300 positions in bf16) but ", e.Message);
        Assert.Contains("nothing was loaded", e.Message);
        Assert.Throws<ModelDoesNotFitException>(() => ModelLoader.Load(folder, ops, contextLength: context,
            memoryBudgetBytes: e.Needed.Total - 1, kvCache: request));

        using var model = ModelLoader.Load(folder, ops, contextLength: context, memoryBudgetBytes: e.Needed.Total, kvCache: request);
        var layout = model.CacheLayout(context, sequences, ElementType.BF16);
        Assert.Equal(layout, e.Needed.KvCacheLayout);
        Assert.Equal(backend == "ilgpu", layout.AttentionWorkspaceBytes > 0);
        using var cache = model.CreatePagedCache(layout);
        Assert.Equal(cache.Bytes, e.Needed.KvCache);
    }
}
