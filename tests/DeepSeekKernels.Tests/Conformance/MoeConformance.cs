using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// MoeRoute against a float64 transcription of its doc (score, bias for the choice only, group masking to 0, top-k by
/// choice with ties to the lower index, weights from the unbiased scores, normalised, scaled): DeepSeek-V3's sigmoid
/// NoAuxTc with a correction bias, DeepSeek-V2's softmax GroupLimitedGreedy, plain greedy, and a TopK larger than the kept
/// groups hold (masked experts picked at choice 0). Ids exact, weights within f32 tolerance, outputs inside guards.
/// </summary>
public abstract class MoeRouteConformance : ConformanceTest
{
    public static TheoryData<string> Cases() => ["v3", "v2", "greedy", "past-kept-groups"];

    static (MoeRouting Routing, int Tokens, bool Bias) Config(string name) => name switch
    {
        "v3" => (new MoeRouting
        {
            Experts = 16, TopK = 4, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 2,
            NormalizeTopK = true, RoutedScalingFactor = 2.5,
        }, 5, true),
        "v2" => (new MoeRouting
        {
            Experts = 12, TopK = 3, Scoring = MoeScoring.Softmax, Method = MoeTopKMethod.GroupLimitedGreedy, Groups = 4, TopKGroups = 2,
            RoutedScalingFactor = 16,
        }, 9, false),
        "greedy" => (new MoeRouting { Experts = 7, TopK = 2, Scoring = MoeScoring.Softmax, NormalizeTopK = true }, 3, false),
        "past-kept-groups" => (new MoeRouting
        {
            Experts = 8, TopK = 3, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 1,
            NormalizeTopK = true, RoutedScalingFactor = 2.5,
        }, 4, true),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void MoeRouteMatchesFloat64(string name)
    {
        var (routing, tokens, withBias) = Config(name);
        int experts = routing.Experts, topK = routing.TopK;
        var logits = RandomValues(tokens * experts, 61);
        var bias = RandomValues(experts, 62, 0.1f);
        using var dl = Upload(logits);
        using var db = Upload(bias);
        using var ids = PoisonedInts(tokens * topK + Guard);
        using var weights = Poisoned(tokens * topK + Guard);
        var biasView = withBias ? db.View : default;
        if (!Runs(new OpSignature("MoeRoute", ElementType.F32), ops => ops.MoeRoute(dl.View, biasView, ids.View, weights.View, routing), ids, weights))
            return;

        var expectedIds = new int[tokens * topK];
        var expectedWeights = new double[tokens * topK];
        for (int t = 0; t < tokens; t++)
        {
            var row = logits.AsSpan(t * experts, experts).ToArray().Select(v => (double)v).ToArray();
            double[] scores;
            if (routing.Scoring == MoeScoring.Sigmoid)
                scores = row.Select(l => 1 / (1 + Math.Exp(-l))).ToArray();
            else
            {
                double max = row.Max(), sum = row.Sum(l => Math.Exp(l - max));
                scores = row.Select(l => Math.Exp(l - max) / sum).ToArray();
            }
            var choice = scores.Select((s, e) => s + (withBias ? bias[e] : 0)).ToArray();
            if (routing.Method != MoeTopKMethod.Greedy)
            {
                int size = experts / routing.Groups;
                double GroupScore(int g)
                {
                    var members = choice.Skip(g * size).Take(size).OrderByDescending(c => c).ToArray();
                    return routing.Method == MoeTopKMethod.NoAuxTc ? members[0] + members[1] : members[0];
                }
                var kept = Enumerable.Range(0, routing.Groups).OrderByDescending(GroupScore).ThenBy(g => g).Take(routing.TopKGroups).ToHashSet();
                for (int e = 0; e < experts; e++)
                    if (!kept.Contains(e / size))
                        choice[e] = 0;
            }
            var picked = Enumerable.Range(0, experts).OrderByDescending(e => choice[e]).ThenBy(e => e).Take(topK).ToArray();
            double total = picked.Sum(e => scores[e]);
            for (int k = 0; k < topK; k++)
            {
                expectedIds[t * topK + k] = picked[k];
                double w = scores[picked[k]];
                if (routing.NormalizeTopK)
                    w /= total + 1e-20;
                expectedWeights[t * topK + k] = w * routing.RoutedScalingFactor;
            }
        }
        var actualIds = ids.ToArray();
        var actualWeights = weights.ToArray();
        Assert.Equal(expectedIds, actualIds.AsSpan(0, expectedIds.Length).ToArray());
        Assert.All(actualIds.AsSpan(expectedIds.Length).ToArray(), id => Assert.Equal(IntPoison, id));
        Close(expectedWeights, actualWeights.AsSpan(0, expectedWeights.Length), $"{name} weights", ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        AllNaN(actualWeights.AsSpan(expectedWeights.Length), "guard after the weights");
    }
}

/// <summary>
/// MoePermute: a stable counting sort by expert (empty experts included, topK given or inferred), exact; every output inside
/// a guard; bad expert ids reported through the error word.
/// </summary>
public abstract class MoePermuteConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(7, 2, 5, 33, true)]
    [InlineData(1, 1, 3, 1, false)]
    [InlineData(17, 3, 8, 65, false)]
    public void MoePermuteGroupsSlotsByExpertStably(int tokens, int topK, int experts, int hidden, bool passTopK)
    {
        int slots = tokens * topK;
        var random = new Random(tokens * 7 + experts);
        var expertIds = Enumerable.Range(0, slots).Select(_ => random.Next(experts - 1)).ToArray(); // the last expert gets no rows
        var x = RandomValues(tokens * hidden, 71);
        using var dx = Upload(x);
        using var dids = Upload(expertIds);
        using var permuted = Poisoned(slots * hidden + (passTopK ? Guard : 0)); // topK inferred: permuted exactly [slots, hidden]
        using var offsets = PoisonedInts(experts + 1 + Guard);
        using var slotRows = PoisonedInts(slots + Guard);
        int topKArgument = passTopK ? topK : 0;
        if (!Runs(new OpSignature("MoePermute", ElementType.F32),
                ops => ops.MoePermute(dx.View, dids.View, permuted.View, offsets.View, slotRows.View, experts, topKArgument), permuted, offsets, slotRows))
            return;

        var order = Enumerable.Range(0, slots).OrderBy(s => expertIds[s]).ThenBy(s => s).ToArray();
        var expectedOffsets = new int[experts + 1];
        for (int e = 0; e < experts; e++)
            expectedOffsets[e + 1] = expectedOffsets[e] + expertIds.Count(id => id == e);
        var actualOffsets = offsets.ToArray();
        var actualSlots = slotRows.ToArray();
        var actualRows = permuted.ToArray();
        Assert.Equal(expectedOffsets, actualOffsets.AsSpan(0, experts + 1).ToArray());
        var expectedSlotRows = new int[slots];
        for (int row = 0; row < slots; row++)
            expectedSlotRows[order[row]] = row;
        Assert.Equal(expectedSlotRows, actualSlots.AsSpan(0, slots).ToArray());
        for (int row = 0; row < slots; row++)
            Exact(x.AsSpan(order[row] / topK * hidden, hidden), actualRows.AsSpan(row * hidden, hidden), $"permuted row {row}");
        Assert.All(actualOffsets.AsSpan(experts + 1).ToArray(), v => Assert.Equal(IntPoison, v));
        Assert.All(actualSlots.AsSpan(slots).ToArray(), v => Assert.Equal(IntPoison, v));
        AllNaN(actualRows.AsSpan(slots * hidden), "guard after permuted");
    }

    [Fact]
    public void BadExpertIdsAreReportedAtTheNextSynchronisation()
    {
        using var dx = Upload(RandomValues(2 * 4, 72));
        using var dids = Upload(new[] { 1, 0, 5, 2 });
        using var negative = Upload(new[] { 1, -1, 0, 2 });
        using var permuted = Poisoned(16);
        using var offsets = PoisonedInts(6);
        using var slots = PoisonedInts(4);
        if (!Supported(new OpSignature("MoePermute", ElementType.F32),
                ops => ops.MoePermute(dx.View, dids.View, permuted.View, offsets.View, slots.View, 5, 2), permuted, offsets, slots))
            return;
        DeviceIndexError(Runtime, () => Ops.MoePermute(dx.View, dids.View, permuted.View, offsets.View, slots.View, 5, 2),
            "MoePermute", "expertIds", "expertIds[2] = 5 is outside [0, 5)");
        DeviceIndexError(Runtime, () => Ops.MoePermute(dx.View, negative.View, permuted.View, offsets.View, slots.View, 5, 2),
            "MoePermute", "expertIds", "expertIds[1] = -1");
    }
}

/// <summary>
/// GroupedLinear over every weight form: each expert's row range times its matrix against float64, an expert with no rows,
/// rows before the first offset and after the last left NaN; into a column block of a wider destination (strided rows);
/// bad offsets (out of range, decreasing) reported through the error word.
/// </summary>
public abstract class GroupedLinearConformance : ConformanceTest
{
    public static TheoryData<string, int, int, int, int[]> Cases()
    {
        var data = new TheoryData<string, int, int, int, int[]>();
        foreach (string form in new[] { "f32", "bf16", "fp8", "fp8/8x16", "int4" })
        {
            int inFeatures = form == "int4" ? 96 : 65;
            // M, out features, in features, offsets (Count + 1 of them)
            data.Add(form, 17, 33, inFeatures, [2, 5, 5, 11, 15]);
            data.Add(form, 1, 1, form == "int4" ? 32 : 1, [0, 1]);
        }
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void GroupedLinearMatchesFloat64(string form, int m, int outFeatures, int inFeatures, int[] offsets)
    {
        int experts = offsets.Length - 1;
        using var weight = Weight(form, experts, outFeatures, inFeatures, seed: 85 + inFeatures);
        var x = RandomValues(m * inFeatures, 86);
        using var dx = Upload(x);
        using var doffsets = Upload(offsets);
        using var dy = Poisoned(m * outFeatures + Guard);
        if (!Runs(Weighted("GroupedLinear", weight.Matrix), ops => ops.GroupedLinear(dx.View, doffsets.View, weight.Matrix, dy.View), dy))
            return;

        var actual = dy.ToArray();
        CheckRows(weight, x, offsets, actual, m, outFeatures, inFeatures, outFeatures, 0, $"GroupedLinear {form}", ConformanceTolerance.Weight(form));
        AllNaN(actual.AsSpan(m * outFeatures), "guard after the output");
    }

    [DeviceTheory]
    [InlineData("f32"), InlineData("bf16"), InlineData("fp8"), InlineData("int4")]
    public void GroupedLinearWritesAColumnBlockOfAWiderDestination(string form)
    {
        const int m = 9, outFeatures = 17, yColumns = outFeatures + 6, yStart = 4;
        int inFeatures = form == "int4" ? 64 : 33;
        int[] offsets = [0, 4, 4, 9];
        using var weight = Weight(form, 3, outFeatures, inFeatures, seed: 87);
        var x = RandomValues(m * inFeatures, 88);
        using var dx = Upload(x);
        using var doffsets = Upload(offsets);
        using var dy = Poisoned(m * yColumns);
        var y = dy.AsTensor(m, yColumns).Columns(yStart, outFeatures);
        if (!Runs(Weighted("GroupedLinear", weight.Matrix, stridedRows: true), ops => ops.GroupedLinear(dx.View, doffsets.View, weight.Matrix, y), dy))
            return;
        CheckRows(weight, x, offsets, dy.ToArray(), m, outFeatures, inFeatures, yColumns, yStart, $"strided GroupedLinear {form}",
            ConformanceTolerance.Weight(form));
    }

    /// <summary>
    /// Rows in expert e's range equal x[r] @ W[e]^T in the destination's columns [yStart, yStart + outFeatures); every other
    /// element of the [m, yColumns] destination is still NaN.
    /// </summary>
    static void CheckRows(OpTests.OpTestSupport.TestWeight weight, float[] x, int[] offsets, float[] actual, int m, int outFeatures,
        int inFeatures, int yColumns, int yStart, string what, double relative)
    {
        var expected = new double[m * outFeatures];
        var scale = new double[expected.Length];
        var written = new bool[m];
        for (int e = 0; e + 1 < offsets.Length; e++)
        {
            int rows = offsets[e + 1] - offsets[e];
            if (rows == 0)
                continue;
            var (part, partScale) = Float64Oracles.Linear(x.AsSpan(offsets[e] * inFeatures, rows * inFeatures).ToArray(),
                weight.Values.AsSpan(e * outFeatures * inFeatures, outFeatures * inFeatures), rows, inFeatures, outFeatures);
            part.CopyTo(expected, offsets[e] * outFeatures);
            partScale.CopyTo(scale, offsets[e] * outFeatures);
            for (int r = offsets[e]; r < offsets[e + 1]; r++)
                written[r] = true;
        }
        var rowsWritten = Enumerable.Range(0, m).Where(r => written[r]).ToArray();
        var block = ColumnBlock(actual, m, yColumns, yStart, outFeatures);
        Close(rowsWritten.SelectMany(r => expected.AsSpan(r * outFeatures, outFeatures).ToArray()).ToArray(),
            rowsWritten.SelectMany(r => scale.AsSpan(r * outFeatures, outFeatures).ToArray()).ToArray(),
            rowsWritten.SelectMany(r => block.AsSpan(r * outFeatures, outFeatures).ToArray()).ToArray(), what, relative, ConformanceTolerance.Absolute);
        for (int i = 0; i < m * yColumns; i++)
        {
            int r = i / yColumns, c = i % yColumns;
            if (!written[r] || c < yStart || c >= yStart + outFeatures)
                Assert.True(float.IsNaN(actual[i]), $"{what}: element [{r}, {c}] is outside every expert's rows and columns and was written ({actual[i]})");
        }
    }

    [Fact]
    public void BadOffsetsAreReportedAtTheNextSynchronisation()
    {
        const int m = 17;
        using var weight = Weight("f32", 4, 5, 8, seed: 89);
        using var dx = Upload(RandomValues(m * 8, 90));
        using var dy = Poisoned(m * 5);
        using var decreasing = Upload(new[] { 0, 5, 3, 11, 17 });
        using var past = Upload(new[] { 0, 5, 5, 11, m + 1 });
        if (!Supported(Weighted("GroupedLinear", weight.Matrix), ops => ops.GroupedLinear(dx.View, decreasing.View, weight.Matrix, dy.View), dy))
            return;
        Assert.True(DeviceIndexError(Runtime, () => Ops.GroupedLinear(dx.View, decreasing.View, weight.Matrix, dy.View), "GroupedLinear",
            "expertOffsets", "expertOffsets[2] = 3 is out of order").OutOfOrder);
        DeviceIndexError(Runtime, () => Ops.GroupedLinear(dx.View, past.View, weight.Matrix, dy.View), "GroupedLinear", "expertOffsets",
            $"expertOffsets[4] = {m + 1} is outside [0, {m + 1})");
    }
}

/// <summary>
/// MoeCombine against float64: slotRows a random permutation, overwriting and accumulating onto the destination, odd
/// hidden sizes, a guard after the destination; out-of-range rows reported through the error word.
/// </summary>
public abstract class MoeCombineConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(5, 3, 17, false), InlineData(5, 3, 17, true), InlineData(1, 1, 1, false), InlineData(9, 2, 65, true)]
    public void MoeCombineMatchesFloat64(int tokens, int topK, int hidden, bool accumulate)
    {
        int slots = tokens * topK;
        var random = new Random(slots + hidden);
        var slotRows = Enumerable.Range(0, slots).OrderBy(_ => random.Next()).ToArray(); // slot s went to row slotRows[s]
        var expertOutput = RandomValues(slots * hidden, 91);
        var weights = RandomValues(slots, 92, 0.3f);
        var initial = accumulate ? RandomValues(tokens * hidden, 93) : Nan(tokens * hidden);
        using var dout = Upload(expertOutput);
        using var dslot = Upload(slotRows);
        using var dw = Upload(weights);
        using var dy = Upload(initial.Concat(Nan(Guard)).ToArray());
        if (!Runs(new OpSignature("MoeCombine", ElementType.F32),
                ops => ops.MoeCombine(dout.View, dslot.View, dw.View, dy.View, topK, accumulate), dy))
            return;

        var rowOf = slotRows;
        var expected = new double[tokens * hidden];
        var scale = new double[expected.Length];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < hidden; i++)
            {
                double sum = accumulate ? initial[t * hidden + i] : 0, size = Math.Abs(sum);
                for (int k = 0; k < topK; k++)
                {
                    double term = (double)weights[t * topK + k] * expertOutput[rowOf[t * topK + k] * hidden + i];
                    sum += term;
                    size += Math.Abs(term);
                }
                expected[t * hidden + i] = sum;
                scale[t * hidden + i] = size;
            }
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"MoeCombine{(accumulate ? ", accumulating" : "")}",
            ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the destination");
    }

    [Fact]
    public void OutOfRangeRowsAreReportedAtTheNextSynchronisation()
    {
        const int hidden = 4, topK = 2;
        using var dout = Upload(RandomValues(6 * hidden, 94));
        using var dw = Upload(RandomValues(6, 95));
        using var dy = Poisoned(3 * hidden);
        using var outside = Upload(new[] { 3, 5, 0, 6, 2, -1 });
        using var negative = Upload(new[] { 3, 5, 0, 1, 2, -1 });
        if (!Supported(new OpSignature("MoeCombine", ElementType.F32), ops => ops.MoeCombine(dout.View, outside.View, dw.View, dy.View, topK, false), dy))
            return;
        DeviceIndexError(Runtime, () => Ops.MoeCombine(dout.View, outside.View, dw.View, dy.View, topK, false), "MoeCombine", "slotRows",
            "slotRows[3] = 6 is outside [0, 6)");
        DeviceIndexError(Runtime, () => Ops.MoeCombine(dout.View, negative.View, dw.View, dy.View, topK, false), "MoeCombine", "slotRows",
            "slotRows[5] = -1 is outside [0, 6)");
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class MoeRouteReferenceConformance : MoeRouteConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class MoeRouteIlgpuCpuConformance : MoeRouteConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class MoeRouteIlgpuCudaConformance : MoeRouteConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class MoeRouteNativeConformance : MoeRouteConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class MoePermuteReferenceConformance : MoePermuteConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class MoePermuteIlgpuCpuConformance : MoePermuteConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class MoePermuteIlgpuCudaConformance : MoePermuteConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class MoePermuteNativeConformance : MoePermuteConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class GroupedLinearReferenceConformance : GroupedLinearConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class GroupedLinearIlgpuCpuConformance : GroupedLinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class GroupedLinearIlgpuCudaConformance : GroupedLinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class GroupedLinearNativeConformance : GroupedLinearConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class MoeCombineReferenceConformance : MoeCombineConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class MoeCombineIlgpuCpuConformance : MoeCombineConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class MoeCombineIlgpuCudaConformance : MoeCombineConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class MoeCombineNativeConformance : MoeCombineConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
