using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// A model is loaded for a context (ModelLoader.Load's contextLength): its RoPE tables cover that many positions,
/// with the same values per position as the full tables, so the logits are bitwise those of a full load; a config
/// whose max_position_embeddings cannot be tabled is refused unless a context is given.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class ContextLimitTests
{
    public static TheoryData<string> Folders => CheckpointFixtures.AllModelFolders();


    static void AssertBitwiseEqual(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"logit {i}: {actual[i]:R}, full load {expected[i]:R}");
    }

    /// <summary>A copy of a model folder with max_position_embeddings set to <paramref name="maxPositions"/>.</summary>
    static TempFolder CopyWithMaxPositions(string name, int maxPositions)
    {
        var copy = new TempFolder();
        CheckpointCopy.Write(CheckpointFixtures.Folder(name), copy.Path, editConfig: c => c["max_position_embeddings"] = maxPositions);
        return copy;
    }

    [Theory, MemberData(nameof(Folders))]
    public void ASmallContextGivesTheLogitsOfTheFullLoad(string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, _, _) = ModelTestSupport.Golden(folder);
        float[] full;
        using (var model = ModelTestSupport.Load(folder))
        {
            Assert.Equal(model.Shape.MaxPositions, model.ContextLimit);
            full = ModelTestSupport.AllLogits(model, ids);
        }
        using var small = ModelTestSupport.Load(folder, contextLength: ids.Length);
        Assert.Equal(ids.Length, small.ContextLimit);
        AssertBitwiseEqual(full, ModelTestSupport.AllLogits(small, ids));
    }

    [Theory, MemberData(nameof(Folders))]
    public void MaxPositionsOfIntMaxValueLoadsForAGivenContext(string name)
    {
        // The RoPE values per position come from rope_theta and rope_scaling (every fixture that scales names its
        // factor and original_max_position_embeddings), not from the table's length: the logits do not change.
        string folder = CheckpointFixtures.Folder(name);
        var (ids, _, _) = ModelTestSupport.Golden(folder);
        float[] original;
        using (var model = ModelTestSupport.Load(folder))
            original = ModelTestSupport.AllLogits(model, ids);
        using var copy = CopyWithMaxPositions(name, int.MaxValue);
        using var huge = ModelTestSupport.Load(copy.Path, contextLength: 64);
        Assert.Equal(int.MaxValue, huge.Shape.MaxPositions);
        Assert.Equal(64, huge.ContextLimit);
        AssertBitwiseEqual(original, ModelTestSupport.AllLogits(huge, ids));
    }

    [Fact]
    public void MaxPositionsOfIntMaxValueIsRefusedWithoutAContext()
    {
        using var copy = CopyWithMaxPositions("deepseek_v3", int.MaxValue);
        string config = Path.Combine(copy.Path, "config.json");
        var e = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(copy.Path));
        Assert.Equal(
            $"{config}: max_position_embeddings (2,147,483,647) is too many positions for the RoPE tables: " +
            "2,147,483,647 x 8 frequencies is more than the 2,147,483,647 elements a table holds. " +
            "Load the model for a smaller context (contextLength).", e.Message);
        Assert.Equal(config, e.FilePath);
        using var checkpoint = Checkpoint.Open(copy.Path);
        Assert.Throws<CheckpointException>(() => ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens));
        Assert.Equal(64L * 16 * 4, ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, contextLength: 64).RopeTables);
    }

    [Theory]
    [InlineData(0), InlineData(-1), InlineData(1025), InlineData(int.MaxValue)]
    public void AContextOutside1ToMaxPositionsIsRefused(int contextLength)
    {
        string folder = CheckpointFixtures.HfTiny("deepseek_v3"); // max_position_embeddings 1024
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ModelTestSupport.Load(folder, contextLength: contextLength));
        Assert.Equal("contextLength", e.ParamName);
        Assert.Contains("between 1 and the model's max_position_embeddings (1,024, in ", e.Message);
        using var checkpoint = Checkpoint.Open(folder);
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, contextLength));
    }

    [Fact]
    public void ACacheBeyondTheContextLimitIsRefused()
    {
        using var model = ModelTestSupport.Load(CheckpointFixtures.HfTiny("llama"), contextLength: 16);
        using (model.CreateCache(16)) { }
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateCache(17));
        Assert.Equal("capacity", e.ParamName);
        Assert.Contains("between 1 and 16, the context the model was loaded for; load it with a larger contextLength " +
            "(up to max_position_embeddings, 2048) for more.", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateCache(0));
    }
}
