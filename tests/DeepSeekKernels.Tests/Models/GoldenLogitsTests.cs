using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
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
    /// position where each MoE layer chose the experts the exact path chose, and within 1e-2 at the median. The prompt runs
    /// in chunks of 5, so later chunks read the keys earlier ones rounded to bf16. Measured 2026-12-01: 2.2e-3 to 3.5e-3 per
    /// position on every fixture, except deepseek_v3's position 2 (2.7e-1), where a MoE layer's routing flipped
    /// (<see cref="Bf16Bars"/>).
    /// </summary>
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void ABf16KvCacheStaysWithinTheBf16Tolerance(string name) =>
        Bf16Bars(name, ElementType.F32, ElementType.BF16, medianBar: 1e-2, leastError: 1e-5, chunkTokens: 5);

    /// <summary>
    /// The bf16 path (`--dtype bfloat16`): bf16 activations with f32 accumulation and a bf16 KV cache, against the golden
    /// logits of transformers' float32 run: within 3e-2 at every position where each MoE layer chose the experts the exact
    /// path chose, median below 1.5e-2. Measured 2026-12-01 (median / worst of the positions with the exact path's routing):
    /// 7e-3 to 1.1e-2 / at most 1.2e-2 on every fixture.
    /// </summary>
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void TheBf16PathStaysWithinTheBf16Tolerance(string name) =>
        Bf16Bars(name, ElementType.BF16, ElementType.BF16, medianBar: 1.5e-2, leastError: 1e-4);

    /// <summary>
    /// The bf16 bars, with the one exception they allow named and checked: a position where rounding to bf16 made a MoE
    /// router choose other experts than the exact path (a near-tie of the random-weight V3 fixtures' sigmoid router, whose
    /// group-limited top-k can swap a whole group) computes another function there, so its logits are not held to 3e-2.
    /// Measured 2026-12-01 on the bf16 path: deepseek_v3 flips at position 17 in its second MoE layer ([1,3,5,7] ->
    /// [1,3,6,7]; error 1.5e-1 there), deepseek_v3_fp8 at position 11 ([1,3,12,15] -> [1,3,9,11]; 2.5e-1); every other
    /// position of every fixture is below 1.2e-2. At most 2 flipped positions per fixture are tolerated, so a bf16 bug that
    /// corrupts routing broadly still fails; every position whose routing matched must meet the bar.
    /// </summary>
    static void Bf16Bars(string name, ElementType activations, ElementType kvCache, double medianBar, double leastError,
        int chunkTokens = ModelLoader.DefaultChunkTokens)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        var exact = ModelTestSupport.LogitsAndRoutes(folder, ids, ElementType.F32, ElementType.F32, chunkTokens);
        var run = ModelTestSupport.LogitsAndRoutes(folder, ids, activations, kvCache, chunkTokens);
        int vocab = golden.Length / ids.Length;
        var flips = ModelTestSupport.RoutingFlips(exact.Routes, run.Routes, ids.Length);
        var errors = Enumerable.Range(0, ids.Length)
            .Select(p => ModelTestSupport.RelativeError(run.Logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab))).ToArray();
        string all = string.Join(", ", errors.Select((e, p) => $"{p}{(flips.Contains(p) ? "*" : "")}: {e:E1}"));

        Assert.True(flips.Count <= 2, $"{name}: routing flipped at {flips.Count} positions (* below): {all}");
        for (int p = 0; p < ids.Length; p++)
            Assert.True(flips.Contains(p) || errors[p] < 3e-2, $"{name}: position {p} beyond 3e-2 with the exact path's routing: {all}");
        var sorted = errors.Order().ToArray();
        Assert.True(sorted[sorted.Length / 2] < medianBar, $"{name}: median relative error {sorted[sorted.Length / 2]:E2} (bar {medianBar:E1}): {all}");
        Assert.True(sorted[0] > leastError, $"{name}: error {sorted[0]:E1} at best: was the run really in bf16? {all}");
    }
}
