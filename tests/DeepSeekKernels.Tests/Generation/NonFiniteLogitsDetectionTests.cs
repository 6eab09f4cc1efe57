using DeepSeekKernels.Generation;

namespace DeepSeekKernels.Tests.Generation;

/// <summary>
/// The check <see cref="TextGenerator"/> runs on each step's logits: one bad value anywhere (first, middle,
/// last index; lengths on and off the vector width) is found and counted, and finite extremes pass.
/// </summary>
public class NonFiniteLogitsDetectionTests
{
    public static TheoryData<int> Lengths => [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1023, 2049];

    /// <summary>NaN with the default, negative and payload bit patterns, and both infinities.</summary>
    static readonly float[] BadValues =
    [
        float.NaN,
        BitConverter.UInt32BitsToSingle(0xFFC0_0000), // negative quiet NaN
        BitConverter.UInt32BitsToSingle(0x7F80_0001), // signalling NaN, smallest payload
        float.PositiveInfinity,
        float.NegativeInfinity,
    ];

    /// <summary>Finite values, extremes included, that are not zero (a test on zeros proves little).</summary>
    static float[] Finite(int length)
    {
        var random = new Random(length);
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = (float)(random.NextDouble() * 20 - 10);
        float[] extremes = [float.MaxValue, float.MinValue, float.Epsilon, -float.Epsilon, -0f, 1e-38f];
        for (int i = 0; i < Math.Min(length, extremes.Length); i++)
            values[(i * 7) % length] = extremes[i];
        return values;
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void FiniteValuesPass(int length) =>
        Assert.Null(NonFiniteLogitsException.Check(Finite(length), position: 0, generatedIndex: 0));

    [Fact]
    public void AnEmptyRowPasses() => Assert.Null(NonFiniteLogitsException.Check([], 0, 0));

    [Theory]
    [MemberData(nameof(Lengths))]
    public void OneBadValueIsFoundAtTheFirstMiddleAndLastIndex(int length)
    {
        foreach (float bad in BadValues)
            foreach (int index in new[] { 0, length / 2, length - 1 }.Distinct())
            {
                var values = Finite(length);
                values[index] = bad;
                var e = NonFiniteLogitsException.Check(values, position: 9, generatedIndex: 0);
                Assert.NotNull(e);
                Assert.Equal(float.IsNaN(bad) ? 1 : 0, e.NaNCount);
                Assert.Equal(float.IsInfinity(bad) ? 1 : 0, e.InfinityCount);
                Assert.Equal(length, e.VocabularySize);
                Assert.Equal(9, e.Position);
            }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void EveryBadValueIsCounted(int length)
    {
        var values = Finite(length);
        int nan = 0, infinity = 0;
        for (int i = 0; i < length; i += 3)
        {
            float bad = BadValues[i % BadValues.Length];
            values[i] = bad;
            if (float.IsNaN(bad)) nan++;
            else infinity++;
        }
        var e = NonFiniteLogitsException.Check(values, 0, 0);
        Assert.NotNull(e);
        Assert.Equal((nan, infinity), (e.NaNCount, e.InfinityCount));
    }

    [Fact]
    public void ThePrefillMessageNamesThePositionAndPointsAtTheWeights()
    {
        var values = new float[2048];
        Array.Fill(values, float.NaN);
        var e = NonFiniteLogitsException.Check(values, position: 9, generatedIndex: 0);
        Assert.NotNull(e);
        Assert.Equal("The logits at position 9 (the last prompt token) hold 2048 NaN values of 2048: the model's weights or scales " +
            "probably hold NaN or Inf (a damaged checkpoint or FP8 weight_scale_inv?); nothing was sampled from them.", e.Message);
    }

    [Fact]
    public void ADecodeMessageNamesTheGeneratedTokenAndBothCounts()
    {
        float[] values = [1, float.NaN, 2, float.PositiveInfinity, float.NaN, 3, float.NaN, 4, 5, 6];
        var e = NonFiniteLogitsException.Check(values, position: 14, generatedIndex: 3);
        Assert.NotNull(e);
        Assert.StartsWith("The logits at position 14 (generated token 3) hold 3 NaN values and 1 Inf value of 10: ", e.Message);
        Assert.Equal(3, e.GeneratedIndex);
    }

    [Fact]
    public void TheMessageIsOneLine() =>
        Assert.DoesNotContain('\n', NonFiniteLogitsException.Check([float.NegativeInfinity], 0, 1)!.Message);
}
