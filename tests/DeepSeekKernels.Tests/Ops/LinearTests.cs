using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Linear, DequantizeFp8, HeadwiseLinear and Embedding on the reference backend, against float64 loops written
/// here, for every stored weight form, at odd sizes; outputs start as NaN and sit before a NaN guard that must
/// survive.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class LinearTests
{
    const int Guard = 5;

    public static TheoryData<string, int, int, int> LinearCases()
    {
        var data = new TheoryData<string, int, int, int>();
        (int Rows, int Out, int In)[] shapes = [(1, 1, 1), (1, 7, 33), (7, 33, 7), (3, 130, 257), (33, 17, 65)];
        foreach (string form in new[] { "f32", "bf16", "fp8" })
            foreach (var (rows, outF, inF) in shapes)
                data.Add(form, rows, outF, inF);
        return data;
    }

    [Theory, MemberData(nameof(LinearCases))]
    public void LinearMatchesFloat64(string form, int rows, int outFeatures, int inFeatures)
    {
        using var weight = new TestWeight(form, 1, outFeatures, inFeatures, seed: outFeatures * 31 + inFeatures, blockRows: 16, blockCols: 32);
        var x = RandomValues(rows * inFeatures, 1);
        var bias = RandomValues(outFeatures, 2);
        using var dx = Upload(x);
        using var db = Upload(bias);
        using var dy = Poisoned((long)rows * outFeatures + Guard);

        ReferenceOps.Linear(dx.View, weight.Matrix, db.View, dy.View);

        var (expected, scale) = Float64Linear(x, weight.Values, bias, rows, inFeatures, outFeatures);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"linear {form}");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void LinearWithoutBiasIsThePlainProduct()
    {
        using var weight = new TestWeight("bf16", 1, 9, 13, seed: 3);
        var x = RandomValues(2 * 13, 4);
        using var dx = Upload(x);
        using var dy = Poisoned(2 * 9);
        ReferenceOps.Linear(dx.View, weight.Matrix, default, dy.View);
        var expected = new double[18];
        var scale = new double[18];
        for (int r = 0; r < 2; r++)
            for (int o = 0; o < 9; o++)
                for (int c = 0; c < 13; c++)
                {
                    double term = (double)x[r * 13 + c] * weight.Values[o * 13 + c];
                    expected[r * 9 + o] += term;
                    scale[r * 9 + o] += Math.Abs(term);
                }
        Close(expected, scale, dy.ToArray(), "y");
    }

    public static TheoryData<int, int, int, int, int> RaggedFp8Shapes() => new()
    {
        // rows, cols, blockRows, blockCols, count
        { 200, 300, 128, 128, 1 },
        { 33, 20, 7, 5, 1 },
        { 5, 130, 128, 128, 3 },
        { 1, 1, 128, 128, 1 },
        { 17, 9, 4, 3, 2 },
    };

    /// <summary>x = identity rows, so each output is exactly one dequantised weight: bit-exact against bf16(fp8 * scale).</summary>
    [Theory, MemberData(nameof(RaggedFp8Shapes))]
    public void Fp8LinearIsBitExactOnOneHotRows(int rows, int cols, int blockRows, int blockCols, int count)
    {
        using var weight = new TestWeight("fp8", count, rows, cols, seed: rows + cols, blockRows, blockCols);
        var x = new float[cols * cols];
        for (int c = 0; c < cols; c++)
            x[c * cols + c] = 1f;
        using var dx = Upload(x);
        using var dy = Poisoned((long)cols * rows);
        for (int m = 0; m < count; m++)
        {
            ReferenceOps.Linear(dx.View, weight.Matrix.Matrix(m), default, dy.View);
            var actual = dy.ToArray();
            // y[c, r] = W[m, r, c]
            var expected = new float[actual.Length];
            for (int c = 0; c < cols; c++)
                for (int r = 0; r < rows; r++)
                    expected[c * rows + r] = weight.Values[((long)m * rows + r) * cols + c];
            // a -0 weight dotted with a one-hot row sums to +0 or -0 depending on order: compare zeros by value
            Exact(expected.Select(v => v + 0f).ToArray(), actual.Select(v => v + 0f).ToArray(), $"fp8 linear, matrix {m}");
        }
    }

    [Theory, MemberData(nameof(RaggedFp8Shapes))]
    public void DequantizeFp8IsBitExact(int rows, int cols, int blockRows, int blockCols, int count)
    {
        using var weight = new TestWeight("fp8", count, rows, cols, seed: 7 * rows + cols, blockRows, blockCols);
        using var dy = Poisoned(weight.Values.Length + Guard);
        ReferenceOps.DequantizeFp8(weight.Matrix, dy.View);
        var actual = dy.ToArray();
        Exact(weight.Values, actual.AsSpan(0, weight.Values.Length), "dequantised");
        AllNaN(actual.AsSpan(weight.Values.Length), "guard");
    }

    [Fact]
    public void Fp8ScaleBlocksAreFloorDivisions()
    {
        // a hand-made 3 x 4 weight in 2 x 3 blocks: rows {0,1} {2}, columns {0,1,2} {3}
        var bits = new[] { 1f, 2f, 3f, 4f, -1f, -2f, -3f, -4f, 0.5f, 1.5f, 448f, -448f }.Select(Float8E4M3.FromSingle).ToArray();
        var scales = new[] { 0.5f, 2f, 0.25f, 8f }; // [2, 2]
        using var data = Upload(bits);
        using var scaleBuffer = Upload(scales);
        using var dy = Poisoned(12);
        ReferenceOps.DequantizeFp8(WeightMatrix.Fp8(data.View, scaleBuffer.View, 3, 4, 2, 3), dy.View);
        Exact([0.5f, 1f, 1.5f, 8f, -0.5f, -1f, -1.5f, -8f, 0.125f, 0.375f, 112f, -3584f], dy.ToArray(), "dequantised");
    }

    [Theory]
    [InlineData("f32", false), InlineData("bf16", false), InlineData("fp8", false)]
    [InlineData("f32", true), InlineData("bf16", true), InlineData("fp8", true)]
    public void HeadwiseLinearAppliesEachHeadsMatrix(string form, bool transpose)
    {
        const int tokens = 3, heads = 5, rows = 7, cols = 11;
        using var weight = new TestWeight(form, heads, rows, cols, seed: 11, blockRows: 4, blockCols: 8);
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        var x = RandomValues(tokens * heads * inDim, 12);
        using var dx = Upload(x);
        using var dy = Poisoned(tokens * heads * outDim + Guard);

        ReferenceOps.HeadwiseLinear(dx.View, weight.Matrix, dy.View, transpose);

        var (expected, scale) = Float64Headwise(weight.Values, x, tokens, heads, rows, cols, transpose);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"headwise {form}{(transpose ? " transposed" : "")}");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Theory]
    [InlineData("f32"), InlineData("bf16")]
    public void EmbeddingCopiesTheRowsExactly(string form)
    {
        const int vocab = 37, hidden = 9;
        using var table = new TestWeight(form, 1, vocab, hidden, seed: 21);
        int[] ids = [0, 36, 5, 5, 17, 1, 36];
        using var dids = Upload(ids);
        using var dy = Poisoned(ids.Length * hidden + Guard);
        ReferenceOps.Embedding(dids.View, table.Matrix, dy.View);
        var expected = ids.SelectMany(id => table.Values.AsSpan(id * hidden, hidden).ToArray()).ToArray();
        var actual = dy.ToArray();
        Exact(expected, actual.AsSpan(0, expected.Length), "embedding");
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [Fact]
    public void EmbeddingNamesTheFirstBadIdAndWritesNothing()
    {
        using var table = new TestWeight("f32", 1, 10, 4, seed: 22);
        using var dids = Upload(new[] { 3, 9, 10, -1 });
        using var dy = Poisoned(16);
        var e = DeviceIndexError(CpuRuntime, () => ReferenceOps.Embedding(dids.View, table.Matrix, dy.View), "Embedding", "ids", "ids[2] = 10");
        Assert.Contains("[0, 10)", e.Message);
        AllNaN(dy.ToArray(), "destination");
        using var negative = Upload(new[] { -1 });
        DeviceIndexError(CpuRuntime, () => ReferenceOps.Embedding(negative.View, table.Matrix, dy.View), "Embedding", "ids", "ids[0] = -1");
    }

    [Fact]
    public void WeightMatrixReportsItsShapeAndBytes()
    {
        using var f32 = new TestWeight("f32", 2, 3, 5, seed: 1);
        using var bf16 = new TestWeight("bf16", 1, 3, 5, seed: 1);
        using var fp8 = new TestWeight("fp8", 2, 200, 300, seed: 1);
        Assert.Equal((ElementType.F32, 3, 5, 2, 2L * 3 * 5 * 4), (f32.Matrix.ElementType, f32.Matrix.Rows, f32.Matrix.Cols, f32.Matrix.Count, f32.Matrix.Bytes));
        Assert.Equal(3L * 5 * 2, bf16.Matrix.Bytes);
        Assert.Equal((2, 3), (fp8.Matrix.ScaleRows, fp8.Matrix.ScaleCols));
        Assert.Equal(2L * 200 * 300 + 2 * 2 * 3 * 4, fp8.Matrix.Bytes);
        var second = fp8.Matrix.Matrix(1);
        Assert.Equal((1, 200, 300, 128, 128), (second.Count, second.Rows, second.Cols, second.BlockRows, second.BlockCols));
    }
}
