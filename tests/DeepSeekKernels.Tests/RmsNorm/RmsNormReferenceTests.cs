using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.RmsNorm;

/// <summary>The reference (the spec) against RMSNorm computed in float64.</summary>
public class RmsNormReferenceTests
{
    const float Eps = 1e-6f;

    public static TheoryData<int, int> Shapes => new() { { 1, 3 }, { 7, 5 }, { 64, 9 }, { 4099, 3 }, { 7168, 4 }, { 300, 400 } };

    [Theory, MemberData(nameof(Shapes))]
    public void F32MatchesFloat64(int cols, int rows)
    {
        var x = TestData.Activations(rows * cols, cols);
        var w = TestData.Weights(cols, cols + 1);
        var y = TestData.Poison<float>(x.Length);
        Ops.Reference.RmsNorm<float, float>(x, w, y, cols, Eps);
        var oracle = Float64RmsNorm.Compute(x, w, cols, Eps);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - oracle[i]) <= 1e-5 * Math.Abs(oracle[i]) + 1e-7, $"y[{i}] = {y[i]}, float64 says {oracle[i]}");
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Bf16WithBf16WeightMatchesFloat64(int cols, int rows)
    {
        var x = TestData.As<BFloat16>(TestData.Activations(rows * cols, cols));
        var w = TestData.As<BFloat16>(TestData.Weights(cols, cols + 1));
        var y = TestData.Poison<BFloat16>(x.Length);
        Ops.Reference.RmsNorm<BFloat16, BFloat16>(x, w, y, cols, Eps);
        var oracle = Float64RmsNorm.Compute(TestData.ToFloat<BFloat16>(x), TestData.ToFloat<BFloat16>(w), cols, Eps);
        // One rounding to bf16: at most half a unit in the last place (2^-8 relative), plus fp32 noise.
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i].ToSingle() - oracle[i]) <= Math.Abs(oracle[i]) * (1.0 / 256) * 1.001, $"y[{i}] = {y[i]}, float64 says {oracle[i]}");
    }

    [Theory, MemberData(nameof(Shapes))]
    public void FusedAddNormsTheRoundedSum(int cols, int rows)
    {
        var x = TestData.As<BFloat16>(TestData.Activations(rows * cols, cols));
        var residual = TestData.As<BFloat16>(TestData.Activations(rows * cols, cols + 7));
        var w = TestData.Weights(cols, cols + 1);
        var r = TestData.Poison<BFloat16>(x.Length);
        var y = TestData.Poison<BFloat16>(x.Length);
        Ops.Reference.AddRmsNorm<BFloat16, float>(x, residual, w, r, y, cols, Eps);

        var sum = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            sum[i] = BFloat16.FromSingle(x[i].ToSingle() + residual[i].ToSingle()).ToSingle();
            Assert.Equal(sum[i], r[i].ToSingle());
        }
        var oracle = Float64RmsNorm.Compute(sum, w, cols, Eps);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i].ToSingle() - oracle[i]) <= Math.Abs(oracle[i]) * (1.0 / 256) * 1.001, $"y[{i}] = {y[i]}, float64 says {oracle[i]}");
    }

    [Fact]
    public void LargeTensorRunsRowsInParallelWithTheSameResult()
    {
        const int cols = 512, rows = 600; // above the parallel threshold
        var x = TestData.Activations(rows * cols, 3);
        var w = TestData.Weights(cols, 4);
        var all = new float[x.Length];
        Ops.Reference.RmsNorm<float, float>(x, w, all, cols, Eps);
        for (int row = 0; row < rows; row += 97)
        {
            var one = new float[cols];
            Ops.Reference.RmsNorm<float, float>(x.AsSpan(row * cols, cols), w, one, cols, Eps);
            Assert.Equal(one, all.AsSpan(row * cols, cols).ToArray());
        }
    }

    [Fact]
    public void NaNPoisonsItsRowAndInfinityGivesNaNAndZeros()
    {
        const int cols = 8;
        var x = TestData.Activations(3 * cols, 5);
        x[3] = float.NaN;                       // row 0
        x[cols + 2] = float.PositiveInfinity;   // row 1
        var w = TestData.Weights(cols, 6);
        var y = new float[x.Length];
        Ops.Reference.RmsNorm<float, float>(x, w, y, cols, Eps);

        Assert.All(y[..cols], v => Assert.True(float.IsNaN(v)));
        for (int c = 0; c < cols; c++)
        {
            float v = y[cols + c];
            if (c == 2) Assert.True(float.IsNaN(v), "Inf * 0 is NaN");
            else Assert.Equal(0f, MathF.Abs(v));
        }
        Assert.All(y[(2 * cols)..], v => Assert.True(float.IsFinite(v) && v != 0));
    }
}
