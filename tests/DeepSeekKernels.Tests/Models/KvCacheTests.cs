using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>Decoding with the cache gives the logits that recomputing the whole sequence gives.</summary>
[Collection(nameof(DeviceCollection))]
public class KvCacheTests
{
    [Theory]
    [InlineData("deepseek_v3"), InlineData("deepseek_v2_lite"), InlineData("llama"), InlineData("qwen2"), InlineData("deepseek_v3_fp8")]
    public void DecodingWithTheCacheEqualsRecomputing(string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, _, _) = ModelTestSupport.Golden(folder);
        using var model = ModelTestSupport.Load(folder);
        int vocab = model.Shape.Vocab;

        // all positions at once
        using var full = model.CreateCache(ids.Length);
        var all = new float[ids.Length * vocab];
        model.Forward(ids, full, all, allPositions: true);

        // a prefix, then one token at a time
        using var step = model.CreateCache(ids.Length);
        var logits = new float[vocab];
        model.Forward(ids.AsSpan(0, 4), step, logits);
        Assert.True(ModelTestSupport.RelativeError(logits, all.AsSpan(3 * vocab, vocab)) < 1e-5, "after the prefix");
        for (int p = 4; p < ids.Length; p++)
        {
            model.Forward(ids.AsSpan(p, 1), step, logits);
            double error = ModelTestSupport.RelativeError(logits, all.AsSpan(p * vocab, vocab));
            Assert.True(error < 1e-5, $"{name}: position {p}: cached decode differs from recompute by {error:E2}");
        }
        Assert.Equal(ids.Length, step.Length);
    }

    [Fact]
    public void AFullCacheIsRefusedWithAClearError()
    {
        using var model = ModelTestSupport.Load(CheckpointFixtures.Folder("llama"));
        using var cache = model.CreateCache(4);
        var logits = new float[model.Shape.Vocab];
        model.Forward([1, 2, 3], cache, logits);
        var e = Assert.Throws<ArgumentException>(() => model.Forward([4, 5], cache, logits));
        Assert.Contains("3 cached + 2 new tokens exceed the context of 4 positions", e.Message);
        Assert.Equal(3, cache.Length); // nothing was run
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([model.Shape.Vocab], cache, logits));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateCache(model.Shape.MaxPositions + 1));
    }
}
