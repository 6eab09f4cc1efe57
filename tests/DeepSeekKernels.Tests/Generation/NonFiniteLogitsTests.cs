using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Models;
using DeepSeekKernels.Tests.Support;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Generation;

/// <summary>
/// A checkpoint whose weights or FP8 scales hold NaN or Inf: generation stops with a
/// <see cref="NonFiniteLogitsException"/> at the first step whose logits are not finite, naming the position,
/// and nothing is sampled or streamed from those logits.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class NonFiniteLogitsTests
{
    static readonly int[] Prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];

    static GenerationOptions Greedy(int maxNewTokens) => new() { MaxNewTokens = maxNewTokens, StopAtEos = false };

    /// <summary>Generates from <paramref name="prompt"/> expecting the error; returns it and what was streamed.</summary>
    static (NonFiniteLogitsException Error, List<GeneratedToken> Streamed) Fail(TextGenerator generator, int[] prompt, int maxNewTokens = 8)
    {
        var streamed = new List<GeneratedToken>();
        var e = Assert.Throws<NonFiniteLogitsException>(() =>
            generator.Generate(prompt, Greedy(maxNewTokens), streamed.Add, TestContext.Current.CancellationToken));
        return (e, streamed);
    }

    static void AssertPrefillFailure(NonFiniteLogitsException e, List<GeneratedToken> streamed, int promptLength, int vocab)
    {
        Assert.Empty(streamed);
        Assert.Equal(promptLength - 1, e.Position);
        Assert.Equal(0, e.GeneratedIndex);
        Assert.Equal(vocab, e.VocabularySize);
        Assert.InRange(e.NaNCount + e.InfinityCount, 1, vocab);
        Assert.StartsWith($"The logits at position {promptLength - 1} (the last prompt token) hold ", e.Message);
    }

    /// <summary><paramref name="tensor"/> with row <paramref name="row"/> of a [rows, cols] matrix set to NaN.</summary>
    static TensorToWrite NaNRow(TensorToWrite tensor, int row)
    {
        long cols = tensor.Shape[1];
        return CheckpointCopy.Fill(tensor, float.NaN, Enumerable.Range(0, (int)cols).Select(c => row * cols + c));
    }

    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void ANaNWeightFailsAtThePrefillBeforeAnythingIsStreamed(string name)
    {
        using var folder = new TempFolder();
        CheckpointCopy.Write(CheckpointFixtures.Folder(name), folder.Path,
            t => t.Name == "model.layers.0.post_attention_layernorm.weight" ? CheckpointCopy.Fill(t, float.NaN) : t);
        using var model = ModelTestSupport.Load(folder.Path);
        using var generator = new TextGenerator(model, null, 64);
        var (e, streamed) = Fail(generator, Prompt);
        AssertPrefillFailure(e, streamed, Prompt.Length, model.Shape.Vocab);
        Assert.Equal(model.Shape.Vocab, e.NaNCount); // a NaN norm weight reaches every logit
    }

    /// <summary>
    /// One +Inf block scale: the dequantised block holds ±Inf (and NaN where the fp8 value is 0), so the first
    /// layer that uses it is not finite, and every later position of the sequence with it. Weights on the
    /// device (q_a_proj, the dense MLP, a shared expert) and dequantised on the host while loading (kv_b_proj).
    /// </summary>
    [Theory]
    [InlineData("model.layers.0.self_attn.q_a_proj.weight_scale_inv")]
    [InlineData("model.layers.0.self_attn.kv_b_proj.weight_scale_inv")]
    [InlineData("model.layers.0.mlp.down_proj.weight_scale_inv")]
    [InlineData("model.layers.2.mlp.shared_experts.up_proj.weight_scale_inv")]
    public void AnInfiniteFp8ScaleFailsAtThePrefill(string scale)
    {
        using var folder = new TempFolder();
        CheckpointCopy.Write(CheckpointFixtures.HfTiny("deepseek_v3_fp8"), folder.Path,
            t => t.Name == scale ? CheckpointCopy.Fill(t, float.PositiveInfinity, [0]) : t);
        using var model = ModelTestSupport.Load(folder.Path);
        using var generator = new TextGenerator(model, null, 64);
        var (e, streamed) = Fail(generator, Prompt);
        AssertPrefillFailure(e, streamed, Prompt.Length, model.Shape.Vocab);
    }

    /// <summary>
    /// A routed expert's +Inf scale reaches the logits only through the tokens routed to that expert: with an
    /// expert no token of the run is sent to, the logits stay finite and the tokens are the undamaged model's
    /// (the weight is never used); otherwise the run fails. Never a silently different answer.
    /// </summary>
    [Fact]
    public void AnInfiniteRoutedExpertScaleFailsOrIsNeverUsed()
    {
        string source = CheckpointFixtures.HfTiny("deepseek_v3_fp8");
        int[] clean;
        using (var model = ModelTestSupport.Load(source))
            clean = ModelTestSupport.Greedy(model, Prompt, 8);
        int failed = 0, unused = 0;
        for (int expert = 0; expert < 16; expert++)
        {
            string scale = $"model.layers.1.mlp.experts.{expert}.gate_proj.weight_scale_inv";
            using var folder = new TempFolder();
            CheckpointCopy.Write(source, folder.Path, t => t.Name == scale ? CheckpointCopy.Fill(t, float.PositiveInfinity, [0]) : t);
            using var model = ModelTestSupport.Load(folder.Path);
            using var generator = new TextGenerator(model, null, 64);
            try
            {
                var result = generator.Generate(Prompt, Greedy(8), cancellationToken: TestContext.Current.CancellationToken);
                Assert.Equal(clean, result.GeneratedIds);
                unused++;
            }
            catch (NonFiniteLogitsException)
            {
                failed++;
            }
        }
        Assert.True(failed > 0 && unused > 0, $"{failed} experts failed, {unused} were never used: the test wants both cases");
    }

    [Fact]
    public void ANaNEmbeddingRowFailsOnlyWhenItsTokenIsInThePrompt()
    {
        string source = CheckpointFixtures.HfTiny("llama");
        int[] clean;
        using (var model = ModelTestSupport.Load(source))
            clean = ModelTestSupport.Greedy(model, Prompt, 8);
        int bad = Enumerable.Range(0, 512).First(id => !Prompt.Contains(id) && !clean.Contains(id));

        using var folder = new TempFolder();
        CheckpointCopy.Write(source, folder.Path, t => t.Name == "model.embed_tokens.weight" ? NaNRow(t, bad) : t);
        using var damaged = ModelTestSupport.Load(folder.Path);
        using var generator = new TextGenerator(damaged, null, 64);

        int[] last = [.. Prompt, bad];
        var (e, streamed) = Fail(generator, last);
        AssertPrefillFailure(e, streamed, last.Length, damaged.Shape.Vocab);
        Assert.Equal(damaged.Shape.Vocab, e.NaNCount);

        // In the middle of the prompt: its keys and values are NaN, so every later position's attention is.
        int[] middle = [.. Prompt[..4], bad, .. Prompt[4..]];
        (e, streamed) = Fail(generator, middle);
        AssertPrefillFailure(e, streamed, middle.Length, damaged.Shape.Vocab);

        // Without it, the same generator (its cache left as the failures left it) gives the undamaged model's tokens.
        var result = generator.Generate(Prompt, Greedy(8), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(clean, result.GeneratedIds);
    }

    [Fact]
    public void ADecodeFailureNamesAPositionAfterThePromptAndKeepsWhatWasStreamed()
    {
        string source = CheckpointFixtures.PydocTiny;
        var tokenizer = HfTokenizer.FromFolder(source);
        int[] prompt = tokenizer.Encode("The list type");
        int[] clean;
        using (var model = ModelTestSupport.Load(source))
            clean = ModelTestSupport.Greedy(model, prompt, 12);
        // The first generated token (after the first) that is new to the sequence: its embedding row is made NaN,
        // so its own forward step is the first whose logits are not finite.
        int k = Enumerable.Range(2, clean.Length - 1).First(i => !prompt.Contains(clean[i - 1]) && !clean[..(i - 1)].Contains(clean[i - 1]));
        int bad = clean[k - 1];

        using var folder = new TempFolder();
        CheckpointCopy.Write(source, folder.Path, t => t.Name == "model.embed_tokens.weight" ? NaNRow(t, bad) : t);
        using var damaged = ModelTestSupport.Load(folder.Path);
        using var generator = new TextGenerator(damaged, tokenizer, 64);
        var (e, streamed) = Fail(generator, prompt, maxNewTokens: 12);

        Assert.Equal(prompt.Length + k - 1, e.Position);
        Assert.Equal(k, e.GeneratedIndex);
        Assert.Equal(clean[..k], streamed.Select(t => t.Id));
        Assert.StartsWith($"The logits at position {prompt.Length + k - 1} (generated token {k}) hold {damaged.Shape.Vocab} NaN values of {damaged.Shape.Vocab}: ", e.Message);
    }
}
