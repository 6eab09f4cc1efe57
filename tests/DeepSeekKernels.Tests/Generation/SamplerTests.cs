using DeepSeekKernels.Generation;

namespace DeepSeekKernels.Tests.Generation;

/// <summary>The sampler applies Hugging Face's processors in HF's order, and draws repeatably from a seed.</summary>
public class SamplerTests
{
    static readonly float[] Logits = [1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1f];

    static Dictionary<int, int> Histogram(SamplingOptions options, int draws, float[]? logits = null, int[]? seen = null)
    {
        var sampler = new Sampler(options);
        var counts = new Dictionary<int, int>();
        for (int i = 0; i < draws; i++)
        {
            int id = sampler.Sample(logits ?? Logits, seen ?? []);
            counts[id] = counts.GetValueOrDefault(id) + 1;
        }
        return counts;
    }

    [Fact]
    public void GreedyIsTheArgmaxWithTiesToTheLowestId()
    {
        var sampler = new Sampler(SamplingOptions.Greedy);
        Assert.Equal(1, sampler.Sample(Logits, []));
        Assert.Equal(2, sampler.Sample([0f, 1f, 5f, 5f], []));
        Assert.Equal(1, Sampler.ArgMax([float.NaN, 1f, 0f]));
    }

    [Fact]
    public void TopKKeepsOnlyTheKMostLikely()
    {
        var counts = Histogram(new SamplingOptions { Temperature = 1, TopK = 2, TopP = 1, Seed = 1 }, 2000);
        Assert.Equal(new[] { 1, 4 }, counts.Keys.Order());
        // softmax over {3.0, 2.9}: p(1) = 1 / (1 + e^-0.1) = 0.525
        Assert.InRange(counts[1] / 2000.0, 0.49, 0.56);
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        // probabilities (descending): id1 .399, id4 .361, id2 .147, id0 .054 ...; top-p 0.6 keeps ids 1 and 4 only
        var counts = Histogram(new SamplingOptions { Temperature = 1, TopP = 0.6f, Seed = 2 }, 2000);
        Assert.Equal(new[] { 1, 4 }, counts.Keys.Order());
        // top-p 0.8 also needs id 2 (.399 + .361 = .760 < .8)
        counts = Histogram(new SamplingOptions { Temperature = 1, TopP = 0.8f, Seed = 2 }, 4000);
        Assert.Equal(new[] { 1, 2, 4 }, counts.Keys.Order());
    }

    [Fact]
    public void LowTemperatureSharpensHighTemperatureFlattens()
    {
        var cold = Histogram(new SamplingOptions { Temperature = 0.05f, TopP = 1, Seed = 3 }, 1000);
        Assert.True(cold[1] > 850, $"cold: {cold[1]} of 1000 draws were the argmax");
        var hot = Histogram(new SamplingOptions { Temperature = 100f, TopP = 1, Seed = 3 }, 6000);
        Assert.Equal(6, hot.Count);
        Assert.All(hot.Values, c => Assert.InRange(c, 800, 1200));
    }

    [Fact]
    public void TheSameSeedDrawsTheSameSequence()
    {
        var options = new SamplingOptions { Temperature = 1, TopP = 0.95f, Seed = 42 };
        var a = new Sampler(options);
        var b = new Sampler(options);
        var first = Enumerable.Range(0, 50).Select(_ => a.Sample(Logits, [])).ToArray();
        var second = Enumerable.Range(0, 50).Select(_ => b.Sample(Logits, [])).ToArray();
        Assert.Equal(first, second);
        Assert.True(first.Distinct().Count() > 1);
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokens()
    {
        // id 1 (3.0) seen, penalty 2 -> 1.5, so greedy picks id 4 (2.9); id 5 (-1) seen -> -2
        var sampler = new Sampler(SamplingOptions.Greedy with { RepetitionPenalty = 2f });
        Assert.Equal(4, sampler.Sample(Logits, [1, 1, 5]));
        // a negative logit becomes more negative: with everything else seen and halved, id 5 still loses
        Assert.Equal(2, new Sampler(SamplingOptions.Greedy with { RepetitionPenalty = 2f }).Sample(Logits, [1, 4]));
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f, 1f)]
    [InlineData(float.NaN, 0, 1f, 1f)]
    [InlineData(1f, -1, 1f, 1f)]
    [InlineData(1f, 0, 0f, 1f)]
    [InlineData(1f, 0, 1.5f, 1f)]
    [InlineData(1f, 0, 1f, 0f)]
    public void BadOptionsAreRefused(float temperature, int topK, float topP, float penalty)
    {
        var options = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(options));
    }
}
