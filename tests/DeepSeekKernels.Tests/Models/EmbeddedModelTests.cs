using System.Text.Json;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// The embedded dsv3-pydoc-tiny model, from text through our own tokenizer: it reproduces samples.json (four
/// prompts, 48 greedy tokens each, ids and text) exactly, as `dsk generate` runs it.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class EmbeddedModelTests
{
    sealed record Sample(string Prompt, int[] GreedyIds, string Text);

    static IReadOnlyList<Sample> Samples()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(CheckpointFixtures.PydocTiny, "samples.json")));
        return [.. json.RootElement.EnumerateArray().Select(s => new Sample(
            s.GetProperty("prompt").GetString()!,
            [.. s.GetProperty("greedy_ids").EnumerateArray().Select(i => i.GetInt32())],
            s.GetProperty("text").GetString()!))];
    }

    [Fact]
    public void GreedyGenerationReproducesEverySample()
    {
        var tokenizer = HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
        using var model = ModelTestSupport.Load(CheckpointFixtures.PydocTiny);
        var samples = Samples();
        Assert.Equal(4, samples.Count);
        foreach (var sample in samples)
        {
            var prompt = tokenizer.Encode(sample.Prompt);
            Assert.Equal(tokenizer.BosId, prompt[0]);
            using var generator = new TextGenerator(model, tokenizer, prompt.Length + sample.GreedyIds.Length);
            var streamed = new System.Text.StringBuilder();
            var result = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = sample.GreedyIds.Length, StopAtEos = false },
                token => streamed.Append(token.Text), TestContext.Current.CancellationToken);
            Assert.Equal(sample.GreedyIds, result.GeneratedIds);
            Assert.Equal(sample.Text, result.Text);
            Assert.Equal(sample.Text, streamed.ToString());
            Assert.Equal(FinishReason.Length, result.FinishReason);
        }
    }

    [Fact]
    public void TheGeneratorReusesItsCacheForACommonPrefix()
    {
        var tokenizer = HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
        using var model = ModelTestSupport.Load(CheckpointFixtures.PydocTiny);
        var sample = Samples()[1];
        var prompt = tokenizer.Encode(sample.Prompt);
        using var generator = new TextGenerator(model, tokenizer, 256);
        var options = new GenerationOptions { MaxNewTokens = 8, StopAtEos = false };
        var first = generator.Generate(prompt, options, cancellationToken: TestContext.Current.CancellationToken);
        // The prompt plus what was generated, extended: only the new part runs, and the result is as from scratch.
        int[] longer = [.. prompt, .. first.GeneratedIds, .. sample.GreedyIds.Skip(8).Take(4)];
        var second = generator.Generate(longer, options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(sample.GreedyIds.Skip(12).Take(8), second.GeneratedIds);
    }
}
