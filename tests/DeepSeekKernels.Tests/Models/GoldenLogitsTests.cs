using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// Every fixture checkpoint against the reference implementation's numbers (transformers 5.17, float32):
/// logits at every prompt position within relative error 1e-3, and the greedy continuation token for token.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class GoldenLogitsTests
{
    public static TheoryData<string> Folders => CheckpointFixtures.AllModelFolders();

    [Theory, MemberData(nameof(Folders))]
    public void LogitsAtEveryPromptPositionMatchTheGolden(string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        using var model = ModelTestSupport.Load(folder);
        int vocab = model.Shape.Vocab;
        Assert.Equal(ids.Length * vocab, golden.Length);
        using var cache = model.CreateCache(ids.Length);
        var logits = new float[ids.Length * vocab];
        Array.Fill(logits, float.NaN);
        model.Forward(ids, cache, logits, allPositions: true);
        for (int p = 0; p < ids.Length; p++)
        {
            double error = ModelTestSupport.RelativeError(logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab));
            Assert.True(error < 1e-3, $"{name}: position {p}: relative error {error:E2} (bar 1e-3)");
        }
    }

    [Theory]
    [InlineData("deepseek_v3"), InlineData("deepseek_v3_fp8"), InlineData("deepseek_v2_lite"), InlineData("llama"), InlineData("qwen2")]
    public void GreedyContinuationIsIdentical(string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, _, greedy) = ModelTestSupport.Golden(folder);
        using var model = ModelTestSupport.Load(folder);
        Assert.Equal(greedy, ModelTestSupport.Greedy(model, ids, greedy.Length));
    }

    [Theory]
    [InlineData("deepseek_v3"), InlineData("llama")]
    public void ChunkedPrefillGivesTheSameLogits(string name)
    {
        // A workspace of 5 positions runs the 24-token prompt in 5 chunks.
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        using var model = ModelTestSupport.Load(folder, chunkTokens: 5);
        int vocab = model.Shape.Vocab;
        using var cache = model.CreateCache(ids.Length);
        var logits = new float[ids.Length * vocab];
        model.Forward(ids, cache, logits, allPositions: true);
        for (int p = 0; p < ids.Length; p++)
            Assert.True(ModelTestSupport.RelativeError(logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab)) < 1e-3, $"position {p}");
    }
}
