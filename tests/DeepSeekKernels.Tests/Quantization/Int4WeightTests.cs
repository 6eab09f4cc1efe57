using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Quantization;

/// <summary>
/// INT4 group-wise weights (<see cref="WeightMatrix.Int4"/>) through the reference backend's matrix ops: Linear against a
/// float64 oracle over the dequantised weight at 1, 3 and 16 rows with poisoned outputs and a NaN guard (batch
/// invariance: LinearDecodePathTests, with the other weight forms), HeadwiseLinear, GroupedLinear and Embedding, the factory's checks and the layout it promises.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class Int4WeightTests
{
    const int Guard = 5;

    public static TheoryData<int, int, int, int> LinearCases()
    {
        var data = new TheoryData<int, int, int, int>();
        // rows of x; out features (odd, a partial group of 4, more than one task); in features and group
        foreach (int rows in new[] { 1, 3, 16 })
        {
            data.Add(rows, 7, 32, 32);
            data.Add(rows, 33, 256, 128);
            data.Add(rows, 130, 192, 64);
            data.Add(rows, 5, 96, 96);
        }
        return data;
    }

    [Theory, MemberData(nameof(LinearCases))]
    public void LinearMatchesFloat64OverTheDequantisedWeight(int rows, int outFeatures, int inFeatures, int groupSize)
    {
        using var weight = new TestWeight("int4", 1, outFeatures, inFeatures, seed: outFeatures * 31 + inFeatures, groupSize: groupSize);
        var x = RandomValues(rows * inFeatures, 1);
        var bias = RandomValues(outFeatures, 2);
        using var dx = Upload(x);
        using var db = Upload(bias);
        using var dy = Poisoned((long)rows * outFeatures + Guard);

        ReferenceOps.Linear(dx.View, weight.Matrix, db.View, dy.View);

        var (expected, scale) = Float64Linear(x, weight.Values, bias, rows, inFeatures, outFeatures);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"int4 linear [{rows}] x [{outFeatures}, {inFeatures}] g{groupSize}");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void LinearOfAQuantisedWeightMatchesTheHostDequantisation()
    {
        // the quantiser's output through WeightMatrix.Int4, against Int4GroupQuantizer.Dequantize of the same bytes
        const int rows = 3, outFeatures = 24, inFeatures = 256;
        var w = Int4GroupQuantizerTests.Gaussian(outFeatures * inFeatures, 4);
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, outFeatures, inFeatures, 128);
        using var dp = Upload(packed);
        using var ds = Upload(scales);
        using var dz = Upload(zeros);
        var weight = WeightMatrix.Int4(dp.View, ds.View, dz.View, outFeatures, inFeatures);
        var x = RandomValues(rows * inFeatures, 5);
        using var dx = Upload(x);
        using var dy = Poisoned(rows * outFeatures);

        ReferenceOps.Linear(dx.View, weight, default, dy.View);

        var deq = Int4GroupQuantizer.Dequantize(packed, scales, zeros, outFeatures, inFeatures, 128);
        var (expected, scale) = Float64Linear(x, deq, new float[outFeatures], rows, inFeatures, outFeatures);
        Close(expected, scale, dy.ToArray(), "quantised int4 linear");
    }

    /// <summary>x = identity rows, so each output is exactly one dequantised weight: bit-exact against the host definition.</summary>
    [Theory]
    [InlineData(9, 64, 32, 1)]
    [InlineData(4, 128, 128, 3)]
    public void LinearIsBitExactOnOneHotRows(int rows, int cols, int groupSize, int count)
    {
        using var weight = new TestWeight("int4", count, rows, cols, seed: rows + cols, groupSize: groupSize);
        var x = new float[cols * cols];
        for (int c = 0; c < cols; c++)
            x[c * cols + c] = 1f;
        using var dx = Upload(x);
        using var dy = Poisoned((long)cols * rows);
        for (int m = 0; m < count; m++)
        {
            ReferenceOps.Linear(dx.View, weight.Matrix.Matrix(m), default, dy.View);
            var actual = dy.ToArray();
            var expected = new float[actual.Length];
            for (int c = 0; c < cols; c++)
                for (int r = 0; r < rows; r++)
                    expected[c * rows + r] = weight.Values[((long)m * rows + r) * cols + c] + 0f;
            Exact(expected, actual.Select(v => v + 0f).ToArray(), $"int4 linear, matrix {m}");
        }
    }

    [Theory]
    [InlineData(false), InlineData(true)]
    public void HeadwiseLinearAppliesEachHeadsInt4Matrix(bool transpose)
    {
        const int tokens = 3, heads = 5, rows = 7, cols = 64;
        using var weight = new TestWeight("int4", heads, rows, cols, seed: 11, groupSize: 32);
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        var x = RandomValues(tokens * heads * inDim, 12);
        using var dx = Upload(x);
        using var dy = Poisoned(tokens * heads * outDim + Guard);

        ReferenceOps.HeadwiseLinear(dx.View, weight.Matrix, dy.View, transpose);

        var (expected, scale) = Float64Headwise(weight.Values, x, tokens, heads, rows, cols, transpose);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"int4 headwise{(transpose ? " transposed" : "")}");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void GroupedLinearUsesEachExpertsInt4Matrix()
    {
        // 4 experts, rows grouped by expert: 2, 0, 3 and 1 rows
        const int experts = 4, rows = 9, cols = 128;
        int[] offsets = [0, 2, 2, 5, 6];
        const int m = 6;
        using var weight = new TestWeight("int4", experts, rows, cols, seed: 13, groupSize: 64);
        var x = RandomValues(m * cols, 14);
        using var dx = Upload(x);
        using var doffsets = Upload(offsets);
        using var dy = Poisoned(m * rows + Guard);

        ReferenceOps.GroupedLinear(dx.View, doffsets.View, weight.Matrix, dy.View);

        var expected = new double[m * rows];
        var scale = new double[expected.Length];
        for (int e = 0; e < experts; e++)
            for (int r = offsets[e]; r < offsets[e + 1]; r++)
                for (int o = 0; o < rows; o++)
                    for (int c = 0; c < cols; c++)
                    {
                        double term = (double)x[r * cols + c] * weight.Values[((long)e * rows + o) * cols + c];
                        expected[r * rows + o] += term;
                        scale[r * rows + o] += Math.Abs(term);
                    }
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), "int4 grouped");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void EmbeddingDequantisesTheRowsExactly()
    {
        const int vocab = 37, hidden = 96;
        using var table = new TestWeight("int4", 1, vocab, hidden, seed: 21, groupSize: 32);
        int[] ids = [0, 36, 5, 5, 17, 1, 36];
        using var dids = Upload(ids);
        using var dy = Poisoned(ids.Length * hidden + Guard);
        ReferenceOps.Embedding(dids.View, table.Matrix, dy.View);
        var expected = ids.SelectMany(id => table.Values.AsSpan(id * hidden, hidden).ToArray()).ToArray();
        var actual = dy.ToArray();
        Exact(expected, actual.AsSpan(0, expected.Length), "int4 embedding");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void ReferenceDecodingEqualsTheHostDequantiserForEveryCode()
    {
        // every code against zero points 0, 8, 15, 16, -3 and 2.5, and scales that tie, overflow or are subnormal
        float[] scaleValues = [0.0123f, 1f + 1f / 128, 3e38f, 1e-39f, -0.5f, 0f];
        float[] zeroValues = [0f, 8f, 15f, 16f, -3f, 2.5f];
        int groups = scaleValues.Length * zeroValues.Length;
        const int cols = 32;
        var packed = new Int4x2[groups * cols / 2];
        for (int i = 0; i < packed.Length; i++)
            packed[i] = Int4x2.PackUnsigned(2 * i % 16, (2 * i + 1) % 16);
        var scales = new BFloat16[groups];
        var zeros = new BFloat16[groups];
        for (int s = 0; s < scaleValues.Length; s++)
            for (int z = 0; z < zeroValues.Length; z++)
            {
                scales[s * zeroValues.Length + z] = BFloat16.FromSingle(scaleValues[s]);
                zeros[s * zeroValues.Length + z] = BFloat16.FromSingle(zeroValues[z]);
            }
        using var dp = Upload(packed);
        using var ds = Upload(scales);
        using var dz = Upload(zeros);
        var table = WeightMatrix.Int4(dp.View, ds.View, dz.View, groups, cols, groupSize: 32);
        using var dids = Upload(Enumerable.Range(0, groups).ToArray());
        using var dy = Poisoned(groups * cols);

        ReferenceOps.Embedding(dids.View, table, dy.View);

        Exact(Int4GroupQuantizer.Dequantize(packed, scales, zeros, groups, cols, 32), dy.ToArray(), "decoded");
    }

    [Fact]
    public void Int4WeightReportsItsSchemeShapeAndBytes()
    {
        using var weight = new TestWeight("int4", 3, 10, 256, seed: 1, groupSize: 128);
        var w = weight.Matrix;
        Assert.Equal((WeightScheme.Int4Group, ElementType.Int4, 10, 256, 3, 128, 2), (w.Scheme, w.ElementType, w.Rows, w.Cols, w.Count, w.GroupSize, w.GroupsPerRow));
        Assert.Equal((0, 0, 0, 0), (w.BlockRows, w.BlockCols, w.ScaleRows, w.ScaleCols));
        Assert.Equal(3L * 10 * 128 + 2 * (3 * 10 * 2 * 2), w.Bytes);
        Assert.Equal("int4 g128 [3, 10, 256]", w.ToString());
        var second = w.Matrix(1);
        Assert.Equal((WeightScheme.Int4Group, 1, 10, 256, 128), (second.Scheme, second.Count, second.Rows, second.Cols, second.GroupSize));
        Assert.Equal("int4 g128 [10, 256]", second.ToString());
        Assert.Equal(10L * 128 + 2 * (10 * 2 * 2), second.Bytes);
        using var dense = new TestWeight("bf16", 1, 2, 3, seed: 1);
        using var fp8 = new TestWeight("fp8", 1, 2, 3, seed: 1);
        Assert.Equal((WeightScheme.Dense, WeightScheme.Fp8Block), (dense.Matrix.Scheme, fp8.Matrix.Scheme));
        Assert.Equal((0, 0), (dense.Matrix.GroupSize, fp8.Matrix.GroupsPerRow));
    }

    [Fact]
    public void EveryRowAndEveryMatrixOfAStackStartsOn16Bytes()
    {
        // cols is a multiple of the group, itself of 32: a row is a whole number of 16-byte units, 32 codes each
        using var weight = new TestWeight("int4", 3, 5, 96, seed: 2, groupSize: 32);
        for (int m = 0; m < 3; m++)
        {
            var one = weight.Matrix.Matrix(m);
            Assert.Equal(0, one.Int4Data.Start % 16);
            Assert.Equal(5 * 96 / 2, one.Int4Data.Length);
            Assert.Equal(0, one.Int4Data.Length / one.Rows % 16);
            Assert.Equal((5L * 3, 5L * 3), (one.Int4Scales.Length, one.Int4Zeros.Length));
            Assert.Equal(m * 5L * 3, one.Int4Scales.Start);
        }
    }

    [Fact]
    public void Int4FactoryChecksItsArgumentsNamingTheParameter()
    {
        using var packed = Upload(new Int4x2[2 * 4 * 128 / 2]); // [2, 4, 128] codes
        using var groups = Upload(new BFloat16[2 * 4 * 1]);    // group 128: one per row
        using var groups32 = Upload(new BFloat16[2 * 4 * 4]);  // group 32: four per row
        var ok = WeightMatrix.Int4(packed.View, groups.View, groups.View, 4, 128, 128, count: 2);
        Assert.Equal(2, ok.Count);
        Assert.Equal(2, WeightMatrix.Int4(packed.View, groups32.View, groups32.View, 4, 128, 32, count: 2).Count);

        var e = Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, groups.View, groups.View, 4, 96, 64), "cols", "cols = 96 is not a multiple of groupSize = 64");
        Throws<ArgumentOutOfRangeException>(() => WeightMatrix.Int4(packed.View, groups.View, groups.View, 4, 128, 48, count: 2), "groupSize", "positive multiple of 32 (got 48)");
        Throws<ArgumentOutOfRangeException>(() => WeightMatrix.Int4(packed.View, groups.View, groups.View, 4, 128, 0, count: 2), "groupSize", "(got 0)");
        Throws<ArgumentOutOfRangeException>(() => WeightMatrix.Int4(packed.View, groups.View, groups.View, 0, 128, 128), "rows", "at least 1");
        Throws<ArgumentException>(() => WeightMatrix.Int4(default, groups.View, groups.View, 4, 128), "packed", "default DeviceView");
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, default, groups.View, 4, 128), "scales", "default DeviceView");
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, groups.View, default, 4, 128), "zeros", "default DeviceView");
        // count mismatch: data for a stack of 2, told 1
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, groups.View, groups.View, 4, 128), "packed",
            "packed has 512 bytes; count * rows * cols / 2 = 1 * 4 * 128 / 2 = 256");
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, groups.Slice(0, 7), groups.View, 4, 128, count: 2), "scales",
            "scales has 7 elements; count * rows * (cols / groupSize) = 2 * 4 * (128 / 128) = 8");
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, groups.View, groups32.View, 4, 128, count: 2), "zeros",
            "zeros has 32 elements; count * rows * (cols / groupSize) = 2 * 4 * (128 / 128) = 8");
        Throws<ArgumentOutOfRangeException>(() => ok.Matrix(2), "index", "[0, 2)");

        using var other = DeviceRuntime.Create(DevicePreference.Cpu);
        using var foreign = other.Upload<BFloat16>(new BFloat16[8]);
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, foreign.View, groups.View, 4, 128, count: 2), "scales", "different DeviceRuntime");
        Throws<ArgumentException>(() => WeightMatrix.Int4(packed.View, groups.View, foreign.View, 4, 128, count: 2), "zeros", "different DeviceRuntime");
        Assert.Contains("96", e.Message);
    }

    [Fact]
    public void OpsThatCannotTakeInt4SayWhy()
    {
        using var weight = new TestWeight("int4", 1, 4, 64, seed: 3, groupSize: 32);
        using var dy = Poisoned(4 * 64);
        Throws<NotSupportedException>(() => ReferenceOps.DequantizeFp8(weight.Matrix, dy.View), "", "DequantizeFp8: fp8Weight is stored as int4x2");
        AllNaN(dy.ToArray(), "destination");
    }
}
