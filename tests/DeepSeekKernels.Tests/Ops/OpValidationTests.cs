using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Bad arguments get an error naming the op and the parameter, before any backend runs, and a rejected call writes
/// nothing. Validation is the op API's, so it holds for every backend; a strict Ops over a stub backend that
/// supports nothing shows that the argument errors come before the backend's refusal.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class OpValidationTests
{
    static readonly DeepSeekKernels.Ops Strict = DeepSeekKernels.Ops.Over(CpuRuntime, new StubBackend(_ => false));

    [Fact]
    public void LinearChecksItsArguments()
    {
        using var w = new TestWeight("f32", 1, 4, 6, seed: 1);
        using var stack = new TestWeight("bf16", 2, 4, 6, seed: 2);
        using var buffer = Upload(RandomValues(64, 3));
        var before = buffer.ToArray();
        var x = buffer.Slice(0, 12);          // [2, 6]
        var y = buffer.Slice(40, 8);          // [2, 4]
        var bias = buffer.Slice(20, 4);

        Throws<ArgumentException>(() => Strict.Linear(default, w.Matrix, default, y), "x", "Linear: x is a default DeviceTensor");
        Throws<ArgumentNullException>(() => Strict.Linear(x, null!, default, y), "weight", "Linear: weight is null");
        Throws<ArgumentException>(() => Strict.Linear(x, stack.Matrix, default, y), "weight", "a stack of 2 matrices");
        Throws<ArgumentException>(() => Strict.Linear(buffer.Slice(0, 13), w.Matrix, default, y), "x", "not a whole number of rows of weight.Cols = 6");
        Throws<ArgumentException>(() => Strict.Linear(buffer.Slice(0, 0), w.Matrix, default, y), "x", "x is empty");
        Throws<ArgumentException>(() => Strict.Linear(x, w.Matrix, buffer.Slice(20, 5), y), "bias", "bias has 5 elements; it needs weight.Rows = 4");
        Throws<ArgumentException>(() => Strict.Linear(x, w.Matrix, bias, buffer.Slice(40, 7)), "destination", "too short: 7 elements for rows * weight.Rows = 2 * 4 = 8");
        Throws<ArgumentException>(() => Strict.Linear(x, w.Matrix, bias, buffer.Slice(8, 8)), "destination", "overlaps x");
        Throws<ArgumentException>(() => Strict.Linear(x, w.Matrix, bias, buffer.Slice(18, 8)), "destination", "overlaps bias");
        Assert.Equal(before, buffer.ToArray());

        using var other = DeviceRuntime.Create(DevicePreference.Cpu);
        using var foreign = other.Upload<float>(RandomValues(24, 4));
        Throws<ArgumentException>(() => Strict.Linear(x, WeightMatrix.Dense(foreign.View, 4, 6), default, y), "weight", "different DeviceRuntime");
        Throws<OpNotSupportedException>(() => Strict.Linear(x, w.Matrix, bias, y), "", "Linear(x=f32, w=f32 dense) is not supported by the Ilgpu backend");
    }

    [Fact]
    public void WeightMatrixFactoriesCheckTheirArguments()
    {
        using var f32 = Upload(new float[24]);
        using var half = CpuRuntime.Upload<Half>(new Half[24]);
        using var fp8 = Upload(new Float8E4M3[200 * 300]);
        using var scales = Upload(new float[6]);
        Throws<NotSupportedException>(() => WeightMatrix.Dense(half.View, 4, 6), "", "WeightMatrix.Dense: data has element type Half");
        Throws<ArgumentException>(() => WeightMatrix.Dense(f32.View, 4, 5), "data", "data has 24 elements; count * rows * cols = 1 * 4 * 5 = 20");
        Throws<ArgumentOutOfRangeException>(() => WeightMatrix.Dense(f32.View, 0, 6), "rows", "at least 1");
        Throws<ArgumentException>(() => WeightMatrix.Dense(default(DeviceView<float>), 4, 6), "data", "default DeviceView");
        Assert.Equal(2, WeightMatrix.Dense(f32.View, 3, 4, count: 2).Count);
        Assert.Equal(200 * 300 + 6 * 4, WeightMatrix.Fp8(fp8.View, scales.View, 200, 300).Bytes);
        Throws<ArgumentException>(() => WeightMatrix.Fp8(fp8.View, scales.Slice(0, 5), 200, 300), "scaleInv", "count * ceil(rows / blockRows) * ceil(cols / blockCols) = 1 * 2 * 3 = 6");
        Throws<ArgumentOutOfRangeException>(() => WeightMatrix.Fp8(fp8.View, scales.View, 200, 300, blockRows: 0), "blockRows", "at least 1");
        Throws<ArgumentOutOfRangeException>(() => WeightMatrix.Dense(f32.View, 3, 4, count: 2).Matrix(2), "index", "[0, 2)");
    }

    [Fact]
    public void MatrixOpsCheckTheirArguments()
    {
        using var dense = new TestWeight("f32", 3, 4, 5, seed: 1);
        using var fp8 = new TestWeight("fp8", 1, 4, 5, seed: 2, blockRows: 2, blockCols: 2);
        using var buffer = Upload(RandomValues(200, 3));
        using var ids = Upload(new[] { 1, 2 });
        var before = buffer.ToArray();
        Throws<NotSupportedException>(() => Strict.DequantizeFp8(dense.Matrix, buffer.Slice(0, 60)), "", "DequantizeFp8: fp8Weight is stored as f32");
        Throws<ArgumentException>(() => Strict.DequantizeFp8(fp8.Matrix, buffer.Slice(0, 19)), "destination", "too short: 19 elements for Count * Rows * Cols = 1 * 4 * 5 = 20");
        Throws<ArgumentException>(() => Strict.HeadwiseLinear(buffer.Slice(0, 16), dense.Matrix, buffer.Slice(100, 12)), "x",
            "not a whole number of rows of heads * weight.Cols = 3 * 5 = 15");
        Throws<ArgumentException>(() => Strict.HeadwiseLinear(buffer.Slice(0, 12), dense.Matrix, buffer.Slice(100, 12), transpose: true), "destination",
            "too short: 12 elements for tokens * heads * weight.Cols = 1 * 3 * 5 = 15");
        Throws<NotSupportedException>(() => Strict.Embedding(ids.View, fp8.Matrix, buffer.Slice(0, 10)), "", "Embedding: table is FP8");
        Throws<ArgumentException>(() => Strict.Embedding(ids.View, dense.Matrix, buffer.Slice(0, 10)), "table", "a stack of 3 matrices");
        Throws<ArgumentException>(() => Strict.Embedding(ids.Slice(0, 0), dense.Matrix.Matrix(0), buffer.Slice(0, 10)), "tokenIds", "tokenIds is empty");
        Throws<ArgumentException>(() => Strict.GroupedLinear(buffer.Slice(0, 10), ids.View, dense.Matrix, buffer.Slice(100, 8)), "expertOffsets",
            "too short: 2 elements for weight.Count + 1 = 3 + 1 = 4");
        Assert.Equal(before, buffer.ToArray());
    }

    [Fact]
    public void GroupedLinearRefusesOffsetsOutOfOrder()
    {
        using var w = new TestWeight("f32", 2, 3, 4, seed: 5);
        using var x = Upload(RandomValues(3 * 4, 6));
        using var y = Poisoned(3 * 3);
        using var decreasing = Upload(new[] { 0, 2, 1 });
        using var past = Upload(new[] { 0, 2, 4 });
        var e = DeviceIndexError(CpuRuntime, () => ReferenceOps.GroupedLinear(x.View, decreasing.View, w.Matrix, y.View), "GroupedLinear", "expertOffsets", "expertOffsets[2] = 1 is out of order");
        Assert.True(e.OutOfOrder);
        DeviceIndexError(CpuRuntime, () => ReferenceOps.GroupedLinear(x.View, past.View, w.Matrix, y.View), "GroupedLinear", "expertOffsets", "expertOffsets[2] = 4 is outside [0, 4)");
        AllNaN(y.ToArray(), "destination");
    }

    [Fact]
    public void RopeChecksItsArguments()
    {
        using var table = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 4, 8);
        using var x = Upload(RandomValues(2 * 3 * 6, 7)); // [2, 3, 6]
        using var positions = Upload(new[] { 0, 1 });
        Throws<ArgumentOutOfRangeException>(() => Strict.Rope(x.View, positions.View, table, 3, 6, 3, RopeLayout.HalfSplit), "ropeOffset",
            "[ropeOffset, ropeOffset + RotaryDim) = [3, 7) does not fit in a head of headStride = 6");
        Throws<ArgumentOutOfRangeException>(() => Strict.Rope(x.View, positions.View, table, 0, 6, 0, RopeLayout.HalfSplit), "heads", "at least 1");
        Throws<ArgumentException>(() => Strict.Rope(x.View, positions.Slice(0, 1), table, 3, 6, 0, RopeLayout.HalfSplit), "positions",
            "positions has 1 elements; it needs one per token = 2");
        Throws<ArgumentException>(() => Strict.Rope(x.Slice(0, 35), positions.View, table, 3, 6, 0, RopeLayout.HalfSplit), "x", "heads * headStride = 3 * 6");
        Throws<ArgumentOutOfRangeException>(() => Strict.Rope(x.View, positions.View, table, 3, 6, 0, (RopeLayout)7), "layout", "not a RopeLayout");
        using var other = DeviceRuntime.Create(DevicePreference.Cpu);
        using var foreignTable = RopeTable.Create(other, RopeScaling.Plain(10000), 4, 8);
        Throws<ArgumentException>(() => Strict.Rope(x.View, positions.View, foreignTable, 3, 6, 0, RopeLayout.HalfSplit), "table", "different DeviceRuntime");
        Throws<OpNotSupportedException>(() => Strict.Rope(x.View, positions.View, table, 3, 6, 0, RopeLayout.HalfSplit), "", "Rope(x=f32) is not supported by the Ilgpu backend");
    }

    [Fact]
    public void AttentionChecksItsArguments()
    {
        using var buffer = Upload(RandomValues(400, 8));
        var before = buffer.ToArray();
        var q = buffer.Slice(0, 2 * 4 * 8);       // [2 tokens, 4 heads, 8]
        var k = buffer.Slice(100, 5 * 2 * 8);     // [5, 2, 8]
        var v = buffer.Slice(200, 5 * 2 * 8);
        var y = buffer.Slice(300, 2 * 4 * 8);
        Throws<ArgumentOutOfRangeException>(() => Strict.Attention(q, k, v, y, 4, 3, 8, 8, 5, 0, 0.3f), "kvHeads", "qHeads = 4 is not a multiple of kvHeads = 3");
        Throws<ArgumentOutOfRangeException>(() => Strict.Attention(q, k, v, y, 4, 2, 8, 8, 5, 4, 0.3f), "queryStart", "queryStart + tokens = 4 + 2 is past kvLength = 5");
        Throws<ArgumentOutOfRangeException>(() => Strict.Attention(q, k, v, y, 4, 2, 8, 8, 5, 0, float.NaN), "scale", "finite");
        Throws<ArgumentException>(() => Strict.Attention(q, k, v, y, 4, 2, 8, 8, 6, 0, 0.3f), "k", "too short: 80 elements for kvLength * kvHeads * headDim = 6 * 2 * 8 = 96");
        Throws<ArgumentException>(() => Strict.Attention(q, k, v, buffer.Slice(60, 64), 4, 2, 8, 8, 5, 0, 0.3f), "destination", "overlaps q");
        Throws<ArgumentException>(() => Strict.Attention(q, k, v, buffer.Slice(250, 64), 4, 2, 8, 8, 5, 0, 0.3f), "destination", "overlaps v");
        Throws<ArgumentException>(() => Strict.MlaAttention(q, k, y, 2, 12, 4, 6, 0, 0.3f), "latentCache", "too short: 80 elements for kvLength * (latentDim + ropeDim) = 6 * 16 = 96");
        Throws<ArgumentOutOfRangeException>(() => Strict.MlaAttention(q, k, y, 2, 0, 4, 5, 0, 0.3f), "latentDim", "at least 1");
        Assert.Equal(before, buffer.ToArray());
        Throws<OpNotSupportedException>(() => Strict.Attention(q, k, v, y, 4, 2, 8, 8, 5, 0, 0.3f), "", "Attention(x=f32, head_dim=8) is not supported by the Ilgpu backend");
    }

    [Fact]
    public void ElementwiseOpsCheckTheirArguments()
    {
        using var buffer = Upload(RandomValues(100, 9));
        var before = buffer.ToArray();
        Throws<ArgumentOutOfRangeException>(() => Strict.CopyColumns(buffer.Slice(0, 20), 10, 6, buffer.Slice(50, 20), 10, 0, 5, 2), "sourceOffset",
            "[sourceOffset, sourceOffset + width) = [6, 11) are not inside sourceColumns = 10");
        Throws<ArgumentException>(() => Strict.CopyColumns(buffer.Slice(0, 20), 10, 0, buffer.Slice(10, 20), 10, 5, 5, 2), "destination", "overlaps source");
        Throws<ArgumentException>(() => Strict.CopyColumns(buffer.Slice(0, 19), 10, 0, buffer.Slice(50, 20), 10, 5, 5, 2), "source", "too short");
        Throws<ArgumentException>(() => Strict.SiluAndMul(buffer.Slice(0, 9), buffer.Slice(50, 10), 3), "x", "2 * intermediate = 2 * 3 = 6");
        Throws<ArgumentException>(() => Strict.SiluAndMul(buffer.Slice(0, 12), buffer.Slice(0, 6), 3), "destination", "overlaps x");
        Throws<ArgumentException>(() => Strict.Softmax(buffer.Slice(0, 12), buffer.Slice(4, 12), 4), "destination", "partially overlaps x");
        Throws<ArgumentException>(() => Strict.Add(buffer.Slice(0, 12), buffer.Slice(20, 11), buffer.Slice(40, 12)), "y", "y has 11 elements");
        Throws<ArgumentException>(() => Strict.Add(buffer.Slice(0, 12), buffer.Slice(20, 12), buffer.Slice(22, 12)), "destination", "partially overlaps y");
        Throws<ArgumentOutOfRangeException>(() => Strict.Scale(buffer.Slice(0, 12), float.PositiveInfinity, buffer.Slice(0, 12)), "factor", "finite");
        Assert.Equal(before, buffer.ToArray());
        // The same buffer passes the checks when the call is right (exactly in place), and the op runs (on the reference).
        Strict.WithReferenceFallback().Add(buffer.Slice(0, 12), buffer.Slice(20, 12), buffer.Slice(0, 12));
        Assert.Equal(before.AsSpan(0, 12).ToArray().Zip(before.AsSpan(20, 12).ToArray(), (a, b) => a + b), buffer.ToArray().Take(12));
    }

    [Fact]
    public void MoeOpsCheckTheirArguments()
    {
        using var logits = Upload(RandomValues(3 * 8, 10));
        using var weights = Poisoned(3 * 2);
        using var ids = Upload(new int[3 * 2]);
        var routing = new MoeRouting { Experts = 8, TopK = 2, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 2 };
        void Route(MoeRouting r) => Strict.MoeRoute(logits.View, default, ids.View, weights.View, r);
        Throws<ArgumentNullException>(() => Route(null!), "routing", "routing is null");
        Throws<ArgumentException>(() => Route(routing with { TopK = 9 }), "routing", "routing.TopK must be in [1, routing.Experts = 8] (got 9)");
        Throws<ArgumentException>(() => Route(routing with { Groups = 3 }), "routing", "routing.Experts = 8 is not a multiple of routing.Groups = 3");
        Throws<ArgumentException>(() => Route(routing with { TopKGroups = 5 }), "routing", "routing.TopKGroups must be in [1, routing.Groups = 4] (got 5)");
        Throws<ArgumentException>(() => Route(routing with { Groups = 8 }), "routing", "two best experts");
        Throws<ArgumentException>(() => Route(routing with { Experts = 0 }), "routing", "routing.Experts must be at least 1");
        Throws<ArgumentException>(() => Route(routing with { Experts = 5, Groups = 1, TopKGroups = 1 }), "routerLogits", "not a whole number of rows of routing.Experts = 5");
        Throws<ArgumentException>(() => Strict.MoeRoute(logits.View, logits.Slice(0, 7), ids.View, weights.View, routing), "correctionBias", "correctionBias has 7 elements");
        Throws<ArgumentException>(() => Strict.MoeRoute(logits.View, default, ids.Slice(0, 5), weights.View, routing), "expertIds", "too short");
        Throws<ArgumentException>(() => Strict.MoeRoute(logits.View, default, ids.View, logits.Slice(4, 6), routing), "expertWeights", "overlaps routerLogits");
        AllNaN(weights.ToArray(), "weights");

        using var x = Upload(RandomValues(3 * 4, 11));
        using var permuted = Poisoned(6 * 4);
        using var offsets = Upload(new int[9]);
        using var slots = Upload(new int[6]);
        Throws<ArgumentException>(() => Strict.MoePermute(x.View, ids.View, permuted.View, offsets.Slice(0, 8), slots.View, 8, 2), "expertOffsets",
            "too short: 8 elements for experts + 1 = 9");
        Throws<ArgumentException>(() => Strict.MoePermute(x.View, ids.View, permuted.View, offsets.View, slots.View, 8, 4), "expertIds", "not [tokens, topK] for topK = 4");
        Throws<ArgumentException>(() => Strict.MoePermute(x.View, ids.View, permuted.Slice(0, 23), offsets.View, slots.View, 8), "permuted", "or pass topK");
        Throws<ArgumentException>(() => Strict.MoePermute(x.View, ids.View, permuted.View, offsets.View, ids.View, 8, 2), "slotRows", "overlaps expertIds");
        Throws<ArgumentException>(() => Strict.MoeCombine(permuted.View, slots.Slice(0, 5), weights.View, x.View, 2, false), "slotRows", "not a whole number of rows of topK = 2");
        Throws<ArgumentException>(() => Strict.MoeCombine(permuted.Slice(0, 23), slots.View, weights.View, x.View, 2, false), "expertOutput", "not [tokens * topK, hidden]");
        Throws<ArgumentException>(() => Strict.MoeCombine(permuted.View, slots.View, weights.View, permuted.Slice(0, 12), 2, false), "destination", "overlaps expertOutput");
        Throws<OpNotSupportedException>(() => Route(routing), "", "MoeRoute(x=f32) is not supported by the Ilgpu backend");
    }
}
