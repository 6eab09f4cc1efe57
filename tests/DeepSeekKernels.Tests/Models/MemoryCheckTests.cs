using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
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
    }
}
