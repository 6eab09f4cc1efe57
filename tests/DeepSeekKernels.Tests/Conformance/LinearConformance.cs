using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// Linear over every weight form (f32, bf16, FP8 with 128 x 128, 16 x 32 and 16 x 24 scale blocks, INT4 with groups of 32, 64 and
/// 128) at odd shapes (in features 1, 7, 33, 129, 1031; INT4's a multiple of its group, 96, 160 and 1056 not of 128), with and
/// without a bias; decode-shaped requests (in features whole 16-byte weight chunks but not multiples of 128, rows 1, 3, 16, 64)
/// and 257 rows; out features not multiples of 4 or 128; bf16 activations (x, y or both); and into a column block of a wider
/// buffer from a column block of a wider input (strided rows, f32 and bf16). Outputs poisoned with NaN, a NaN guard after them.
/// </summary>
public abstract class LinearConformance : ConformanceTest
{
    public static TheoryData<string, int, int, int, bool> Cases()
    {
        var data = new TheoryData<string, int, int, int, bool>();
        // rows, out features, in features, bias
        foreach (string form in new[] { "f32", "bf16", "fp8" })
        {
            data.Add(form, 1, 1, 1, true);
            data.Add(form, 1, 17, 33, false);
            data.Add(form, 3, 65, 129, true);
            data.Add(form, 17, 33, 7, true);
            data.Add(form, 2, 67, 1031, true); // a long dot product: accumulation order within the f32 tolerance
        }
        data.Add("fp8/16x32", 5, 33, 65, true);
        data.Add("int4", 1, 17, 32, false);
        data.Add("int4", 3, 65, 96, true);
        data.Add("int4", 17, 33, 160, true);
        data.Add("int4/g128", 2, 9, 256, true);
        data.Add("int4", 2, 67, 1056, true);
        // in features whole 16-byte weight chunks (a GPU's decode path) but not multiples of 128 (nor of 32 for bf16/FP8),
        // out features not multiples of the 4 a gemv group holds, rows 16 and 64 (the most the decode path takes) and 257
        data.Add("f32", 16, 67, 100, true);
        data.Add("bf16", 64, 33, 200, false);
        data.Add("fp8", 3, 130, 272, true);       // ragged last scale block in both directions (130 = 128 + 2, 272 = 2 * 128 + 16)
        data.Add("fp8/16x32", 16, 33, 96, true);
        data.Add("fp8/16x24", 3, 33, 96, true);   // scale blocks not a whole number of 16-byte chunks wide
        data.Add("int4/g64", 64, 67, 192, true);
        data.Add("f32", 257, 33, 96, true);
        data.Add("bf16", 257, 19, 40, true);
        data.Add("fp8", 257, 17, 160, false);
        data.Add("int4", 257, 17, 64, true);
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void LinearMatchesFloat64(string form, int rows, int outFeatures, int inFeatures, bool withBias)
    {
        using var weight = Weight(form, 1, outFeatures, inFeatures, seed: 31 * outFeatures + inFeatures);
        var x = RandomValues(rows * inFeatures, 1);
        var bias = withBias ? RandomValues(outFeatures, 2) : new float[outFeatures];
        using var dx = Upload(x);
        using var db = Upload(bias);
        using var dy = Poisoned(rows * outFeatures + Guard);
        var biasView = withBias ? db.View : default;
        if (!Runs(Weighted("Linear", weight.Matrix), ops => ops.Linear(dx.View, weight.Matrix, biasView, dy.View), dy))
            return;

        var (expected, scale) = Float64Linear(x, weight.Values, bias, rows, inFeatures, outFeatures);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"Linear {form}", ConformanceTolerance.Weight(form), ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    [DeviceTheory]
    [InlineData("f32", 33), InlineData("bf16", 33), InlineData("fp8", 33), InlineData("int4", 64)]
    [InlineData("f32", 64), InlineData("bf16", 64), InlineData("fp8", 64)]
    public void LinearReadsAndWritesColumnBlocksOfWiderBuffers(string form, int inFeatures)
    {
        const int rows = 5, outFeatures = 17, yColumns = outFeatures + 7, yStart = 3, xPad = 5, xStart = 2;
        int xColumns = inFeatures + xPad;
        using var weight = Weight(form, 1, outFeatures, inFeatures, seed: 41);
        var wide = RandomValues(rows * xColumns, 3);
        var bias = RandomValues(outFeatures, 4);
        using var dx = Upload(wide);
        using var db = Upload(bias);
        using var dy = Poisoned(rows * yColumns);
        var x = dx.AsTensor(rows, xColumns).Columns(xStart, inFeatures);   // [rows, in], rows strided by xColumns
        var y = dy.AsTensor(rows, yColumns).Columns(yStart, outFeatures);  // [rows, out], rows strided by yColumns
        if (!Runs(Weighted("Linear", weight.Matrix, stridedRows: true), ops => ops.Linear(x, weight.Matrix, db.View, y), dy))
            return;

        var (expected, scale) = Float64Linear(ColumnBlock(wide, rows, xColumns, xStart, inFeatures), weight.Values, bias, rows, inFeatures, outFeatures);
        BlockMatches(expected, scale, dy.ToArray(), rows, yColumns, yStart, outFeatures, $"strided Linear {form}", ConformanceTolerance.Weight(form));
    }

    public static TheoryData<string, int, int, int, bool, bool> Bf16Cases() => new()
    {
        // form, rows, out features, in features, x bf16, y bf16
        { "bf16", 1, 67, 200, true, true },
        { "int4", 16, 33, 96, true, true },
        { "fp8", 64, 17, 160, true, true },
        { "f32", 3, 33, 33, true, true },
        { "fp8/16x32", 257, 17, 96, true, true },
        { "fp8", 3, 17, 96, false, true },
        { "bf16", 5, 19, 40, true, false },
    };

    /// <summary>
    /// bf16 activations: x and y bf16 (or one of them), fp32 accumulation, y rounded once; compared with the float64 product
    /// of the bf16 inputs within the bf16 tolerance, every output written, the NaN guard after it untouched.
    /// </summary>
    [DeviceTheory, MemberData(nameof(Bf16Cases))]
    public void LinearWithBf16ActivationsMatchesFloat64(string form, int rows, int outFeatures, int inFeatures, bool xBf16, bool yBf16)
    {
        using var weight = Weight(form, 1, outFeatures, inFeatures, seed: 7 * outFeatures + inFeatures);
        var x = RandomValues(rows * inFeatures, 5);
        var xb = x.Select(v => BFloat16.FromSingle(v)).ToArray();
        if (xBf16)
            x = xb.Select(v => v.ToSingle()).ToArray();
        var bias = RandomValues(outFeatures, 6);
        using var dxf = Upload(x);
        using var dxb = Upload(xb);
        using var db = Upload(bias);
        using var dyf = Poisoned(rows * outFeatures + Guard);
        using var dyb = PoisonedBf16(rows * outFeatures + Guard);
        DeviceTensor xt = xBf16 ? dxb.View : dxf.View, yt = yBf16 ? dyb.View : dyf.View;
        var signature = Weighted("Linear", weight.Matrix) with { X = ElementType.BF16 };
        if (!Runs(signature, ops => ops.Linear(xt, weight.Matrix, db.View, yt), dyf, dyb))
            return;

        var (expected, scale) = Float64Linear(x, weight.Values, bias, rows, inFeatures, outFeatures);
        var actual = yBf16 ? dyb.ToArray().Select(v => v.ToSingle()).ToArray() : dyf.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"Linear {form} bf16", Math.Max(ConformanceTolerance.Bf16, ConformanceTolerance.Weight(form)),
            ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
        AllNaN((yBf16 ? dyf.ToArray() : dyb.ToArray().Select(v => v.ToSingle()).ToArray()), "the output of the other dtype");
    }

    /// <summary>bf16 activations read from and written into column blocks of wider bf16 rows.</summary>
    [DeviceTheory]
    [InlineData("bf16", 64), InlineData("fp8", 33), InlineData("int4", 96)]
    public void LinearWithBf16ActivationsReadsAndWritesColumnBlocks(string form, int inFeatures)
    {
        const int rows = 4, outFeatures = 13, yColumns = outFeatures + 5, yStart = 1, xPad = 3, xStart = 3;
        int xColumns = inFeatures + xPad;
        using var weight = Weight(form, 1, outFeatures, inFeatures, seed: 43);
        var wide = RandomValues(rows * xColumns, 7).Select(v => BFloat16.FromSingle(v)).ToArray();
        var bias = RandomValues(outFeatures, 8);
        using var dx = Upload(wide);
        using var db = Upload(bias);
        using var dy = PoisonedBf16(rows * yColumns);
        var x = dx.AsTensor(rows, xColumns).Columns(xStart, inFeatures);
        var y = dy.AsTensor(rows, yColumns).Columns(yStart, outFeatures);
        var signature = Weighted("Linear", weight.Matrix, stridedRows: true) with { X = ElementType.BF16 };
        if (!Runs(signature, ops => ops.Linear(x, weight.Matrix, db.View, y), dy))
            return;

        var xValues = ColumnBlock(wide.Select(v => v.ToSingle()).ToArray(), rows, xColumns, xStart, inFeatures);
        var (expected, scale) = Float64Linear(xValues, weight.Values, bias, rows, inFeatures, outFeatures);
        BlockMatches(expected, scale, dy.ToArray().Select(v => v.ToSingle()).ToArray(), rows, yColumns, yStart, outFeatures,
            $"strided bf16 Linear {form}", Math.Max(ConformanceTolerance.Bf16, ConformanceTolerance.Weight(form)));
    }
}

/// <summary>
/// DequantizeFp8: ragged blocks (rows and columns not multiples of the block), stacks, one-element weights; bit-exact
/// against <c>bf16(fp8 * scale)</c>; and a weight that is not FP8 is refused by validation on every backend.
/// </summary>
public abstract class DequantizeFp8Conformance : ConformanceTest
{
    public static TheoryData<int, int, int, int, int> Cases() => new()
    {
        // rows, cols, blockRows, blockCols, count
        { 1, 1, 128, 128, 1 },
        { 33, 20, 7, 5, 1 },
        { 17, 130, 128, 128, 2 },
        { 65, 3, 16, 2, 1 },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void DequantizeFp8IsBitExact(int rows, int cols, int blockRows, int blockCols, int count)
    {
        using var weight = Weight($"fp8/{blockRows}x{blockCols}", count, rows, cols, seed: 7 * rows + cols);
        using var dy = Poisoned(weight.Values.Length + Guard);
        if (!Runs(Weighted("DequantizeFp8", weight.Matrix), ops => ops.DequantizeFp8(weight.Matrix, dy.View), dy))
            return;
        var actual = dy.ToArray();
        Exact(weight.Values, actual.AsSpan(0, weight.Values.Length), "dequantised");
        AllNaN(actual.AsSpan(weight.Values.Length), "guard after the output");
    }

    [Fact]
    public void AWeightThatIsNotFp8IsRefusedByValidationNotByTheBackend()
    {
        using var weight = Weight("bf16", 1, 4, 8, seed: 1);
        using var dy = Poisoned(32);
        var e = Assert.Throws<NotSupportedException>(() => Ops.DequantizeFp8(weight.Matrix, dy.View));
        Assert.IsNotType<OpNotSupportedException>(e);
        Assert.Contains("takes an FP8 weight", e.Message);
        AllNaN(dy.ToArray(), "destination");
    }
}

/// <summary>
/// HeadwiseLinear over every weight form, both directions (W[h] and W[h]^T), at odd sizes; and reading x as a column block
/// of each head of a wider row (q_nope inside [q_nope | q_pe]) while writing into a column block of each head of a wider
/// destination (the absorbed q inside [latent | rope]).
/// </summary>
public abstract class HeadwiseLinearConformance : ConformanceTest
{
    public static TheoryData<string, bool, int, int, int, int> Cases()
    {
        var data = new TheoryData<string, bool, int, int, int, int>();
        foreach (string form in new[] { "f32", "bf16", "fp8/4x8", "int4" })
            foreach (bool transpose in new[] { false, true })
            {
                // tokens, heads, weight rows, weight cols (INT4: cols a multiple of 32)
                data.Add(form, transpose, 3, 5, 7, form == "int4" ? 32 : 11);
                data.Add(form, transpose, 1, 2, 17, form == "int4" ? 64 : 33);
                data.Add(form, transpose, 16, 3, 9, 64); // whole 16-byte weight chunks per row (the decode path, untransposed)
            }
        data.Add("fp8/4x16", false, 3, 2, 9, 48);
        data.Add("f32", false, 257, 2, 5, 32);
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void HeadwiseLinearMatchesFloat64(string form, bool transpose, int tokens, int heads, int rows, int cols)
    {
        using var weight = Weight(form, heads, rows, cols, seed: 11 + rows);
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        var x = RandomValues(tokens * heads * inDim, 12);
        using var dx = Upload(x);
        using var dy = Poisoned(tokens * heads * outDim + Guard);
        if (!Runs(Weighted("HeadwiseLinear", weight.Matrix), ops => ops.HeadwiseLinear(dx.View, weight.Matrix, dy.View, transpose), dy))
            return;

        var (expected, scale) = Oracle(weight.Values, x, tokens, heads, rows, cols, transpose, inDim);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"HeadwiseLinear {form}{(transpose ? " transposed" : "")}",
            ConformanceTolerance.Weight(form), ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    [DeviceTheory]
    [InlineData("f32", false), InlineData("bf16", true), InlineData("fp8/4x8", false), InlineData("int4", true)]
    public void HeadwiseLinearReadsAndWritesColumnBlocksOfEachHead(string form, bool transpose)
    {
        const int tokens = 3, heads = 4, rows = 9, xExtra = 5, yExtra = 6, yStart = 2;
        int cols = form == "int4" ? 32 : 13;
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        int xHead = inDim + xExtra, yHead = outDim + yExtra;
        using var weight = Weight(form, heads, rows, cols, seed: 17);
        var wide = RandomValues(tokens * heads * xHead, 13);
        using var dx = Upload(wide);
        using var dy = Poisoned(tokens * heads * yHead);
        // x[t, h, :] = the first inDim elements of head h's xHead; destination[t, h, :] = elements yStart .. yStart + outDim of head h's yHead
        var x = DeviceTensor.Strided(dx.View, [tokens, heads, inDim], [heads * xHead, xHead, 1]);
        var y = DeviceTensor.Strided(dy.Slice(yStart, dy.Length - yStart), [tokens, heads, outDim], [heads * yHead, yHead, 1]);
        if (!Runs(Weighted("HeadwiseLinear", weight.Matrix, stridedRows: true), ops => ops.HeadwiseLinear(x, weight.Matrix, y, transpose), dy))
            return;

        var (expected, scale) = Oracle(weight.Values, ColumnBlock(wide, tokens * heads, xHead, 0, inDim), tokens, heads, rows, cols, transpose, inDim);
        BlockMatches(expected, scale, dy.ToArray(), tokens * heads, yHead, yStart, outDim, $"strided HeadwiseLinear {form}",
            ConformanceTolerance.Weight(form));
    }

    /// <summary>bf16 activations (x and destination bf16), both directions.</summary>
    [DeviceTheory]
    [InlineData("bf16", false, 3, 32), InlineData("int4", true, 2, 32), InlineData("fp8/4x8", false, 5, 11), InlineData("f32", true, 1, 13)]
    public void HeadwiseLinearWithBf16ActivationsMatchesFloat64(string form, bool transpose, int tokens, int cols)
    {
        const int heads = 3, rows = 9;
        using var weight = Weight(form, heads, rows, cols, seed: 19);
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        var xb = RandomValues(tokens * heads * inDim, 14).Select(v => BFloat16.FromSingle(v)).ToArray();
        using var dx = Upload(xb);
        using var dy = PoisonedBf16(tokens * heads * outDim + Guard);
        var signature = Weighted("HeadwiseLinear", weight.Matrix) with { X = ElementType.BF16 };
        if (!Runs(signature, ops => ops.HeadwiseLinear(dx.View, weight.Matrix, dy.View, transpose), dy))
            return;

        var (expected, scale) = Oracle(weight.Values, xb.Select(v => v.ToSingle()).ToArray(), tokens, heads, rows, cols, transpose, inDim);
        var actual = dy.ToArray().Select(v => v.ToSingle()).ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"bf16 HeadwiseLinear {form}{(transpose ? " transposed" : "")}",
            Math.Max(ConformanceTolerance.Bf16, ConformanceTolerance.Weight(form)), ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    /// <summary>destination[t, h, o] = sum_i W[h][o, i] x[t, h, i], or sum_i W[h][i, o] x[t, h, i] transposed, in float64.</summary>
    static (double[] Expected, double[] Scale) Oracle(float[] w, float[] x, int tokens, int heads, int rows, int cols, bool transpose, int inDim)
    {
        int outDim = transpose ? cols : rows;
        var expected = new double[tokens * heads * outDim];
        var scale = new double[expected.Length];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
                for (int o = 0; o < outDim; o++)
                {
                    int at = (t * heads + h) * outDim + o;
                    for (int i = 0; i < inDim; i++)
                    {
                        double wv = transpose ? w[(h * rows + i) * cols + o] : w[(h * rows + o) * cols + i];
                        double term = wv * x[(t * heads + h) * inDim + i];
                        expected[at] += term;
                        scale[at] += Math.Abs(term);
                    }
                }
        return (expected, scale);
    }
}

/// <summary>
/// Embedding over f32, bf16 and INT4 tables: rows copied exactly (INT4 dequantised to bf16, then widened), ids repeated and at
/// both ends of the vocabulary; FP8 tables refused by validation; bad ids reported through the error word.
/// </summary>
public abstract class EmbeddingConformance : ConformanceTest
{
    const int Vocab = 37;

    public static TheoryData<string, int, int[]> Cases() => new()
    {
        // form, hidden, ids
        { "f32", 9, [0, 36, 5, 5, 17, 1, 36] },
        { "f32", 1, [36] },
        { "bf16", 33, [0, 36, 5, 5, 17, 1, 36] },
        { "int4", 32, [0, 36, 5, 5, 17, 1, 36] },
        { "int4/g64", 192, [2, 0] },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void EmbeddingCopiesTheRowsExactly(string form, int hidden, int[] ids)
    {
        using var table = Weight(form, 1, Vocab, hidden, seed: 21 + hidden);
        using var dids = Upload(ids);
        using var dy = Poisoned(ids.Length * hidden + Guard);
        if (!Runs(Weighted("Embedding", table.Matrix), ops => ops.Embedding(dids.View, table.Matrix, dy.View), dy))
            return;
        var expected = ids.SelectMany(id => table.Values.AsSpan(id * hidden, hidden).ToArray()).ToArray();
        var actual = dy.ToArray();
        Exact(expected, actual.AsSpan(0, expected.Length), $"Embedding {form}");
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    /// <summary>bf16 destinations: each element the table's value rounded once to bf16 (exact for bf16 and INT4 tables).</summary>
    [DeviceTheory]
    [InlineData("f32", 9), InlineData("bf16", 33), InlineData("int4", 64)]
    public void EmbeddingWritesBf16Rows(string form, int hidden)
    {
        int[] ids = [3, 36, 0, 3];
        using var table = Weight(form, 1, Vocab, hidden, seed: 23 + hidden);
        using var dids = Upload(ids);
        using var dy = PoisonedBf16(ids.Length * hidden + Guard);
        if (!Runs(Weighted("Embedding", table.Matrix) with { X = ElementType.BF16 }, ops => ops.Embedding(dids.View, table.Matrix, dy.View), dy))
            return;
        var expected = ids.SelectMany(id => table.Values.AsSpan(id * hidden, hidden).ToArray()).Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray();
        var actual = dy.ToArray().Select(v => v.ToSingle()).ToArray();
        Exact(expected, actual.AsSpan(0, expected.Length), $"bf16 Embedding {form}");
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    [Fact]
    public void Fp8TablesAreRefusedByValidationNotByTheBackend()
    {
        using var table = Weight("fp8", 1, Vocab, 8, seed: 2);
        using var dids = Upload(new[] { 1 });
        using var dy = Poisoned(8);
        var e = Assert.Throws<NotSupportedException>(() => Ops.Embedding(dids.View, table.Matrix, dy.View));
        Assert.IsNotType<OpNotSupportedException>(e);
        Assert.Contains("table is FP8", e.Message);
        AllNaN(dy.ToArray(), "destination");
    }

    [Fact]
    public void BadIdsAreReportedAtTheNextSynchronisation()
    {
        const int hidden = 4;
        using var table = Weight("f32", 1, Vocab, hidden, seed: 22);
        using var bad = Upload(new[] { 3, 9, Vocab, -1 });
        using var negative = Upload(new[] { -1 });
        using var dy = Poisoned(4 * hidden);
        if (!Supported(Weighted("Embedding", table.Matrix), ops => ops.Embedding(bad.View, table.Matrix, dy.View), dy))
            return;
        DeviceIndexError(Runtime, () => Ops.Embedding(bad.View, table.Matrix, dy.View), "Embedding", "ids", $"ids[2] = {Vocab} is outside [0, {Vocab})");
        DeviceIndexError(Runtime, () => Ops.Embedding(negative.View, table.Matrix, dy.View), "Embedding", "ids", "ids[0] = -1");
    }
}

/// <summary>Which ILGPU Linear kernel a request takes, and the split-K rule (so the conformance cases above reach each path).</summary>
public class LinearIlgpuPathTests
{
    [Fact]
    public void TheSplitDependsOnOutFeaturesAndBatchOnly()
    {
        Assert.Equal(4, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(67, 1, 132));
        Assert.Equal(4, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(526, 1, 132));
        Assert.Equal(2, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(600, 1, 132));
        Assert.Equal(1, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(1100, 1, 132));
        Assert.Equal(2, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(128, 5, 132)); // 5 heads of 128: 320 groups at S = 2
        // the CPU accelerator's rule (8 "SMs"): the cases above with 17 (and fewer), 33 and 65 or more out features take S = 4, 2, 1
        Assert.Equal(8, DeepSeekKernels.Ilgpu.LinearIlgpu.CpuSmCount);
        Assert.Equal(4, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(17, 1, 8));
        Assert.Equal(4, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(30, 1, 8));
        Assert.Equal(2, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(33, 1, 8));
        Assert.Equal(1, DeepSeekKernels.Ilgpu.LinearIlgpu.SplitK(65, 1, 8));
    }

    /// <summary>
    /// The gemv reads x in 16-byte units where x is aligned (fresh buffers on ILGPU's CPU accelerator are, so the dense cases
    /// above take that form and the column-block cases the scalar one).
    /// </summary>
    [Fact]
    public void GemvReadsXIn16ByteUnitsWhereAligned()
    {
        using var f32 = new TestWeight("f32", 1, 9, 64, seed: 1);
        using var bf16 = new TestWeight("bf16", 1, 9, 64, seed: 2);
        using var xf = Upload(RandomValues(5 * 72, 3));
        using var xb = Upload(RandomValues(5 * 72, 4).Select(BFloat16.FromSingle).ToArray());
        Assert.Equal(0, xf.View.Pointer % 16);
        Assert.Equal(0, xb.View.Pointer % 16);
        static DeepSeekKernels.Ilgpu.LinearIlgpu.Shape Rows(long stride) => new() { XRowStride = stride };
        Assert.True(DeepSeekKernels.Ilgpu.LinearIlgpu.XVectorLoads(xf.View.Slice(0, 5 * 64).AsTensor(5, 64), Rows(64), f32.Matrix));
        Assert.True(DeepSeekKernels.Ilgpu.LinearIlgpu.XVectorLoads(xb.View.Slice(0, 5 * 64).AsTensor(5, 64), Rows(64), bf16.Matrix));
        Assert.True(DeepSeekKernels.Ilgpu.LinearIlgpu.XVectorLoads(xf.AsTensor(5, 72).Columns(4, 64), Rows(72), f32.Matrix));
        Assert.False(DeepSeekKernels.Ilgpu.LinearIlgpu.XVectorLoads(xf.AsTensor(5, 72).Columns(2, 64), Rows(72), f32.Matrix));  // misaligned start
        Assert.False(DeepSeekKernels.Ilgpu.LinearIlgpu.XVectorLoads(xb.View.Slice(0, 5 * 68).AsTensor(5, 68).Columns(0, 64), Rows(68), bf16.Matrix)); // stride not whole units
        Assert.False(DeepSeekKernels.Ilgpu.LinearIlgpu.XVectorLoads(xb.View.Slice(0, 5 * 64).AsTensor(5, 64), Rows(64), f32.Matrix)); // 4 bf16 = 8 bytes
    }

    [Theory]
    [InlineData("f32", 100, 16, false, true), InlineData("f32", 33, 1, false, false), InlineData("bf16", 200, 64, false, true)]
    [InlineData("bf16", 200, 65, false, false), InlineData("fp8", 272, 3, false, true), InlineData("fp8/16x24", 96, 3, false, false)]
    [InlineData("fp8", 33, 1, false, false), InlineData("int4", 32, 1, false, true), InlineData("int4", 32, 1, true, false)]
    public void GemvTakesDecodeShapedRequestsOfWholeChunks(string form, int inFeatures, int rows, bool transpose, bool gemv)
    {
        string[] parts = form.Split('/');
        var block = parts.Length == 2 ? parts[1].Split('x').Select(int.Parse).ToArray() : [128, 128];
        using var weight = new TestWeight(parts[0], 1, 9, inFeatures, seed: 1, block[0], block[1], groupSize: 32);
        Assert.Equal(gemv, DeepSeekKernels.Ilgpu.LinearIlgpu.UsesGemv(weight.Matrix, rows, transpose));
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class LinearReferenceConformance : LinearConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class LinearIlgpuCpuConformance : LinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class LinearCpuConformance : LinearConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class LinearIlgpuCudaConformance : LinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class LinearNativeConformance : LinearConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class DequantizeFp8ReferenceConformance : DequantizeFp8Conformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class DequantizeFp8IlgpuCpuConformance : DequantizeFp8Conformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class DequantizeFp8CpuConformance : DequantizeFp8Conformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class DequantizeFp8IlgpuCudaConformance : DequantizeFp8Conformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class DequantizeFp8NativeConformance : DequantizeFp8Conformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class HeadwiseLinearReferenceConformance : HeadwiseLinearConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class HeadwiseLinearIlgpuCpuConformance : HeadwiseLinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class HeadwiseLinearCpuConformance : HeadwiseLinearConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class HeadwiseLinearIlgpuCudaConformance : HeadwiseLinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class HeadwiseLinearNativeConformance : HeadwiseLinearConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class EmbeddingReferenceConformance : EmbeddingConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class EmbeddingIlgpuCpuConformance : EmbeddingConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class EmbeddingCpuConformance : EmbeddingConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class EmbeddingIlgpuCudaConformance : EmbeddingConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class EmbeddingNativeConformance : EmbeddingConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>
/// The ILGPU weight-reading kernels compiled for a GPU on a machine without one (<see cref="PtxCompile"/>): every
/// specialisation the backend can load.
/// </summary>
public class IlgpuWeightKernelsCompileForCudaTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string, string> Kernels()
    {
        var data = new TheoryData<string, string, string, string>();
        foreach (string kernel in (string[])["GemvKernel", "TiledKernel"])
            foreach (string act in (string[])["f32", "bf16"])
                foreach (string weight in (string[])["f32", "bf16", "fp8", "int4"])
                    data.Add("Linear", kernel, act, weight);
        foreach (string act in (string[])["f32", "bf16"])
            foreach (string weight in (string[])["f32", "bf16", "int4"])
                data.Add("Embedding", "Kernel", act, weight);
        data.Add("DequantizeFp8", "Kernel", "f32", "fp8");
        return data;
    }

    [Theory, MemberData(nameof(Kernels))]
    public void TheKernelCompilesToPtxAndAssembles(string op, string kernel, string activations, string weight)
    {
        var owner = op switch
        {
            "Linear" => typeof(DeepSeekKernels.Ilgpu.LinearIlgpu),
            "Embedding" => typeof(DeepSeekKernels.Ilgpu.EmbeddingIlgpu),
            _ => typeof(DeepSeekKernels.Ilgpu.DequantizeFp8Ilgpu),
        };
        var method = owner.GetMethod(kernel, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        Type act = activations == "f32" ? typeof(float) : typeof(BFloat16);
        Type actCodec = activations == "f32" ? typeof(DeepSeekKernels.Ilgpu.F32Codec) : typeof(DeepSeekKernels.Ilgpu.BF16Codec);
        var (element, decoder) = weight switch
        {
            "f32" => (typeof(float), typeof(DeepSeekKernels.Ilgpu.F32Weights)),
            "bf16" => (typeof(BFloat16), typeof(DeepSeekKernels.Ilgpu.Bf16Weights)),
            "fp8" => (typeof(Float8E4M3), typeof(DeepSeekKernels.Ilgpu.Fp8Weights)),
            _ => (typeof(Int4x2), typeof(DeepSeekKernels.Ilgpu.Int4Weights)),
        };
        Type actVector = activations == "f32" ? typeof(DeepSeekKernels.Ilgpu.F32Vector) : typeof(DeepSeekKernels.Ilgpu.BF16Vector);
        if (op == "Linear")
            method = method.MakeGenericMethod(act, actCodec, actVector, act, actCodec, element, decoder);
        else if (op == "Embedding")
            method = method.MakeGenericMethod(act, actCodec, element, decoder);

        string ptx = PtxCompile.CompileAndAssemble(method, $"{op}-{kernel}-{activations}-{weight}", output.WriteLine);
        if (kernel == "GemvKernel")
            Assert.Matches(@"ld\.global(\.nc)?\.v4\.(u32|b32)", ptx); // the weight chunk in one 16-byte load
    }
}
