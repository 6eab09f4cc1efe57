using DeepSeekKernels.Models;
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

    /// <summary>
    /// A bf16 KV cache (the GPU backends' default) on the float32 activations: within 3e-2 of the golden logits at every
    /// position but at most one, and within 1e-2 at the median. The prompt runs in chunks of 5, so later chunks read the
    /// keys earlier ones rounded to bf16. Measured 2026-11-30: 1.6e-3 to 3.5e-3 per position on every fixture, except one
    /// position of deepseek_v3 at 2.7e-1 (the f32 cache gives 1e-6 there); a discontinuity such as an expert choice that
    /// flips under the rounding would explain it (not verified), hence the one position allowed.
    /// </summary>
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void ABf16KvCacheStaysWithinTheBf16Tolerance(string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        using var model = ModelTestSupport.Load(folder, chunkTokens: 5);
        int vocab = model.Shape.Vocab;
        using var cache = model.CreateCache(ids.Length, DeepSeekKernels.Numerics.ElementType.BF16);
        var logits = new float[ids.Length * vocab];
        model.Forward(ids, cache, logits, allPositions: true);
        var errors = Enumerable.Range(0, ids.Length)
            .Select(p => ModelTestSupport.RelativeError(logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab))).Order().ToArray();
        Assert.True(errors[^2] < 3e-2, $"{name}: two or more positions beyond 3e-2: {string.Join(", ", errors.Select(e => e.ToString("E1")))}");
        Assert.True(errors[errors.Length / 2] < 1e-2, $"{name}: median relative error {errors[errors.Length / 2]:E2} (bar 1e-2)");
        Assert.True(errors[0] > 1e-5, $"{name}: a bf16 cache gave the f32 logits (error {errors[0]:E1}): was the cache really bf16?");
    }

    /// <summary>
    /// The bf16 path (`--dtype bfloat16`): bf16 activations with f32 accumulation and a bf16 KV cache, against the golden
    /// logits of transformers' float32 run. Measured 2026-11-30 (median / worst relative error per position):
    /// llama 8.5e-3 / 1.1e-2, qwen2 6.0e-3 / 8.0e-3, deepseek_v2_lite 7.7e-3 / 9.1e-3, dsv3-pydoc-tiny 3.1e-3 / 3.6e-3;
    /// deepseek_v3 1.0e-2 median with two positions at 1.3e-1 and 2.3e-1, deepseek_v3_fp8 9.4e-3 with one at 2.5e-1
    /// (the random-weight V3 fixtures' sigmoid router sits near ties; the f32 path gives 1e-6 at those positions). Bars:
    /// median below 1.5e-2, every position below 3e-2 except at most two on the V3 fixtures.
    /// </summary>
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void TheBf16PathStaysWithinTheBf16Tolerance(string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        using var model = ModelLoader.Load(folder, Ops.Create(TestDevices.Cpu, Backend.Reference), activations: DeepSeekKernels.Numerics.ElementType.BF16);
        Assert.Equal(DeepSeekKernels.Numerics.ElementType.BF16, model.Activations);
        int vocab = model.Shape.Vocab;
        using var cache = model.CreateCache(ids.Length, DeepSeekKernels.Numerics.ElementType.BF16);
        var logits = new float[ids.Length * vocab];
        model.Forward(ids, cache, logits, allPositions: true);
        var errors = Enumerable.Range(0, ids.Length)
            .Select(p => ModelTestSupport.RelativeError(logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab))).Order().ToArray();
        int allowed = name.StartsWith("deepseek_v3", StringComparison.Ordinal) ? 2 : 0;
        Assert.True(errors[errors.Length - 1 - allowed] < 3e-2, $"{name}: {string.Join(", ", errors.Select(e => e.ToString("E1")))}");
        Assert.True(errors[errors.Length / 2] < 1.5e-2, $"{name}: median relative error {errors[errors.Length / 2]:E2} (bar 1.5e-2)");
        Assert.True(errors[0] > 1e-4, $"{name}: the bf16 path gave the f32 logits (error {errors[0]:E1}): were the activations really bf16?");
    }
}
