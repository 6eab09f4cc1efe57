using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Models;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Generation;

/// <summary>
/// Batched forward passes and continuous batching: a sequence's logits do not depend on which other sequences share
/// its steps, bitwise (few engines promise this; SGLang added a deterministic mode for it), on every architecture,
/// on the reference (f32 and the bf16 path) and on ILGPU (its kernels, the reference for the ops it lacks); and the scheduler generates for
/// each request exactly what the request generates alone.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class BatchInvarianceTests
{
    static readonly int[][] Prompts = [[5, 9, 13, 2, 7, 11, 3], [4, 8], [12, 1, 6, 10, 14]];

    /// <summary>
    /// The logits of each prompt, and of 4 greedy continuation steps, run alone vs. in one batch with the others. In the
    /// batch the sequences are at different stages: prompt 1 decodes while prompt 0's prefill is chunked.
    /// </summary>
    [Theory]
    [MemberData(nameof(Architectures))]
    public void ASequencesLogitsDoNotDependOnItsBatch(string name, string backend)
    {
        var ops = backend.StartsWith("reference", StringComparison.Ordinal)
            ? Ops.Create(TestDevices.Cpu, Backend.Reference)
            : Ops.Create(TestDevices.Cpu, Backend.Ilgpu).WithReferenceFallback();
        var type = backend.EndsWith("bf16", StringComparison.Ordinal) ? DeepSeekKernels.Numerics.ElementType.BF16 : DeepSeekKernels.Numerics.ElementType.F32;
        using var model = ModelLoader.Load(CheckpointFixtures.Folder(name), ops, chunkTokens: 8, contextLength: 32, activations: type);
        int vocab = model.Shape.Vocab;

        // alone: each prompt in its own cache, prefill in chunks of 3 then 4 decode steps
        var alone = new List<float[]>[Prompts.Length];
        for (int p = 0; p < Prompts.Length; p++)
        {
            alone[p] = [];
            using var cache = model.CreatePagedCache(model.CacheLayout(32, 1, type));
            int s = cache.AddSequence();
            var logits = new float[vocab];
            for (int done = 0; done < Prompts[p].Length; done += 3)
            {
                var chunk = Prompts[p].AsSpan(done, Math.Min(3, Prompts[p].Length - done));
                model.Step(cache, [new StepSequence(s, chunk.Length)], chunk, logits);
            }
            alone[p].Add((float[])logits.Clone());
            for (int i = 0; i < 4; i++)
            {
                model.Step(cache, [new StepSequence(s, 1)], [Argmax(logits)], logits);
                alone[p].Add((float[])logits.Clone());
            }
        }

        // together: prompt 1 first (prefilled alone, then decoding), prompts 0 and 2 join with chunks of their prompts
        using var shared = model.CreatePagedCache(model.CacheLayout(32, 3, type));
        int[] seq = [shared.AddSequence(), shared.AddSequence(), shared.AddSequence()];
        var batched = new List<float[]>[] { [], [], [] };
        var row = new float[vocab];
        model.Step(shared, [new StepSequence(seq[1], 2)], Prompts[1], row);
        batched[1].Add((float[])row.Clone());
        int[] fed = [0, 2, 0];
        int[] next = [-1, Argmax(row), -1];
        while (batched.Any(b => b.Count < 5))
        {
            var step = new List<StepSequence>();
            var tokens = new List<int>();
            var who = new List<int>();
            for (int p = 0; p < 3; p++)
            {
                if (batched[p].Count == 5)
                    continue;
                if (fed[p] < Prompts[p].Length)
                {
                    int count = Math.Min(3, Prompts[p].Length - fed[p]);
                    step.Add(new StepSequence(seq[p], count));
                    tokens.AddRange(Prompts[p].AsSpan(fed[p], count));
                    fed[p] += count;
                }
                else
                {
                    step.Add(new StepSequence(seq[p], 1));
                    tokens.Add(next[p]);
                }
                who.Add(p);
            }
            var logits = new float[step.Count * vocab];
            model.Step(shared, step.ToArray(), tokens.ToArray(), logits);
            for (int b = 0; b < who.Count; b++)
            {
                int p = who[b];
                if (fed[p] < Prompts[p].Length)
                    continue; // a chunk that is not the prompt's last: its logits are not the prompt's
                var mine = logits.AsSpan(b * vocab, vocab).ToArray();
                batched[p].Add(mine);
                next[p] = Argmax(mine);
            }
        }
        Assert.False(alone[0][0].AsSpan().SequenceEqual(alone[1][0]), "different prompts gave the same logits: the comparison would prove nothing");
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < 5; i++)
                Assert.True(alone[p][i].AsSpan().SequenceEqual(batched[p][i]),
                    $"{name} on {backend}: prompt {p}, step {i}: batched logits differ from the sequence run alone (max |diff| {MaxDiff(alone[p][i], batched[p][i])})");
    }

    public static TheoryData<string, string> Architectures()
    {
        var data = new TheoryData<string, string>();
        foreach (var name in CheckpointFixtures.Names)
            data.Add(name, "reference");
        data.Add("deepseek_v3", "reference-bf16");
        data.Add("llama", "reference-bf16");
        data.Add("deepseek_v3", "ilgpu");
        data.Add("llama", "ilgpu");
        return data;
    }

    [Fact]
    public void TheSchedulerGeneratesForEachRequestWhatItGeneratesAlone()
    {
        using var model = ModelTestSupport.Load(CheckpointFixtures.PydocTiny, chunkTokens: 6, contextLength: 40);
        var tokenizer = DeepSeekKernels.Tokenization.HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
        var requests = new (int[] Prompt, GenerationOptions Options)[]
        {
            (tokenizer.Encode("def add(a, b):"), new GenerationOptions { MaxNewTokens = 12, Sampling = SamplingOptions.Greedy }),
            (tokenizer.Encode("The list type"), new GenerationOptions { MaxNewTokens = 20, Sampling = new SamplingOptions { Temperature = 0.8f, Seed = 3 } }),
            ([1, 2, 3], new GenerationOptions { MaxNewTokens = 7, Sampling = SamplingOptions.Greedy, StopStrings = ["\n"] }),
            (tokenizer.Encode("Return the"), new GenerationOptions { MaxNewTokens = 3, Sampling = new SamplingOptions { Temperature = 1.2f, TopK = 5, Seed = 11 } }),
        };
        GenerationResult Alone(int i)
        {
            using var generator = new TextGenerator(model, tokenizer, 40);
            return generator.Generate(requests[i].Prompt, requests[i].Options);
        }
        var expected = Enumerable.Range(0, requests.Length).Select(Alone).ToArray();

        // a pool for two full contexts: the third and fourth requests wait for pages, then join mid-way
        using var cache = model.CreatePagedCache(model.CacheLayout(40, 2));
        var scheduler = new BatchScheduler(model, tokenizer, cache);
        var results = new GenerationResult?[requests.Length];
        var streamed = new System.Text.StringBuilder[requests.Length];
        for (int i = 0; i < requests.Length; i++)
        {
            int k = i;
            streamed[k] = new System.Text.StringBuilder();
            scheduler.Add(requests[k].Prompt, requests[k].Options, t => streamed[k].Append(t.Text), r => results[k] = r);
        }
        int mostRunning = 0;
        while (scheduler.HasWork)
        {
            scheduler.Step();
            mostRunning = Math.Max(mostRunning, scheduler.Running);
        }
        Assert.Equal(2, mostRunning);
        for (int i = 0; i < requests.Length; i++)
        {
            var r = Assert.IsType<GenerationResult>(results[i]);
            Assert.Equal(expected[i].GeneratedIds, r.GeneratedIds);
            Assert.Equal(expected[i].Text, r.Text);
            Assert.Equal(expected[i].FinishReason, r.FinishReason);
            Assert.Equal(r.Text, streamed[i].ToString());
        }
        Assert.Equal(cache.Layout.Pages, cache.Blocks.FreePages); // every page went back
    }

    /// <summary>
    /// Cancel stops a running request between steps (what it generated so far, its pages back in the pool) and a waiting
    /// one before it runs; the request beside it generates exactly what it generates alone; an unknown or finished id is false.
    /// </summary>
    [Fact]
    public void CancelStopsOneRequestAndLeavesTheOthersAsTheyWouldBe()
    {
        using var model = ModelTestSupport.Load(CheckpointFixtures.PydocTiny, chunkTokens: 6, contextLength: 40);
        var tokenizer = DeepSeekKernels.Tokenization.HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
        var options = new GenerationOptions { MaxNewTokens = 16, Sampling = SamplingOptions.Greedy, StopAtEos = false };
        int[] keep = tokenizer.Encode("The list type"), stop = tokenizer.Encode("def add(a, b):");
        GenerationResult expected;
        using (var generator = new TextGenerator(model, tokenizer, 40))
            expected = generator.Generate(keep, options, cancellationToken: TestContext.Current.CancellationToken);

        using var cache = model.CreatePagedCache(model.CacheLayout(40, 2));
        var scheduler = new BatchScheduler(model, tokenizer, cache);
        var results = new GenerationResult?[3];
        var streamed = new System.Text.StringBuilder();
        int kept = scheduler.Add(keep, options, onFinished: r => results[0] = r);
        int cancelled = scheduler.Add(stop, options, t => streamed.Append(t.Text), r => results[1] = r);
        int waiting = scheduler.Add(stop, options, onFinished: r => results[2] = r); // the pool holds two: it waits
        for (int i = 0; i < 6; i++)
            scheduler.Step();
        Assert.True(scheduler.Cancel(cancelled));
        Assert.True(scheduler.Cancel(waiting));
        Assert.False(scheduler.Cancel(cancelled));
        Assert.False(scheduler.Cancel(12345));
        var stopped = Assert.IsType<GenerationResult>(results[1]);
        Assert.Equal(FinishReason.Cancelled, stopped.FinishReason);
        Assert.InRange(stopped.GeneratedIds.Count, 1, options.MaxNewTokens - 1);
        Assert.Equal(stopped.Text, streamed.ToString());
        var never = Assert.IsType<GenerationResult>(results[2]);
        Assert.Equal(FinishReason.Cancelled, never.FinishReason);
        Assert.Empty(never.GeneratedIds);
        Assert.Equal(1, scheduler.Running);

        scheduler.RunToCompletion(TestContext.Current.CancellationToken);
        var r0 = Assert.IsType<GenerationResult>(results[0]);
        Assert.Equal(expected.GeneratedIds, r0.GeneratedIds);
        Assert.False(scheduler.Cancel(kept));
        Assert.Equal(cache.Layout.Pages, cache.Blocks.FreePages);
    }

    [Fact]
    public void ARequestThatCanNeverFitIsRefusedAndAPromptBeyondTheContextToo()
    {
        using var model = ModelTestSupport.Load(CheckpointFixtures.PydocTiny, chunkTokens: 6, contextLength: 40);
        using var cache = model.CreatePagedCache(model.CacheLayout(40, 1) with { Pages = 1 }); // 64 positions in one page
        var scheduler = new BatchScheduler(model, null, cache);
        var e = Assert.Throws<ArgumentException>(() => scheduler.Add(Enumerable.Range(1, 40).ToArray(), new GenerationOptions()));
        Assert.Contains("the context holds 40", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.Add([1, 1_000_000], new GenerationOptions()));
        Assert.Throws<ArgumentException>(() => scheduler.Add([1, 2], new GenerationOptions { StopStrings = ["x"] }));
        Assert.False(scheduler.HasWork);
    }

    static int Argmax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }

    static float MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
}
