using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// Linear over every weight form (f32, bf16, FP8 with 128 x 128 and 16 x 32 scale blocks, INT4 with groups of 32 and 128)
/// at odd shapes (in features 1, 7, 33, 129, 1031; INT4's a multiple of its group, 96, 160 and 1056 not of 128), with and without a
/// bias; and into a column block of a wider buffer from a column block of a wider input (strided rows).
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
    [InlineData("f32"), InlineData("bf16"), InlineData("fp8"), InlineData("int4")]
    public void LinearReadsAndWritesColumnBlocksOfWiderBuffers(string form)
    {
        const int rows = 5, outFeatures = 17, yColumns = outFeatures + 7, yStart = 3, xPad = 5, xStart = 2;
        int inFeatures = form == "int4" ? 64 : 33, xColumns = inFeatures + xPad;
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
            }
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
