using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// MoeRoute against a float64 transcription of its doc (score, bias for the choice only, group masking to 0, top-k by
/// choice with ties to the lower index, weights from the unbiased scores, normalised, scaled), swept over the router
/// shapes of the issue: DeepSeek-V3's sigmoid NoAuxTc with a correction bias at 256 experts / 8 groups / keep 4 / top 8 (1 to
/// 512 tokens) and smaller, DeepSeek-V2's softmax GroupLimitedGreedy (160 experts), V2-Lite's greedy (64), experts 8/16/64/256,
/// n_group 1/4/8, k 1..8, 4096 tokens, logits with many exact ties, -infinity logits, a negative bias that lets masked
/// experts (choice 0) win, and bf16 logits. Ids exact, weights within f32 tolerance, outputs inside guards; bad
/// configurations refused before anything runs.
/// </summary>
public abstract class MoeRouteConformance : ConformanceTest
{
    static MoeRouting NoAuxTc(int experts, int topK, int groups, int keep) => new()
    {
        Experts = experts, TopK = topK, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = groups, TopKGroups = keep,
        NormalizeTopK = true, RoutedScalingFactor = 2.5,
    };

    static MoeRouting Softmax(int experts, int topK, int groups = 1, int keep = 1, bool grouped = false) => new()
    {
        Experts = experts, TopK = topK, Scoring = MoeScoring.Softmax, Method = grouped ? MoeTopKMethod.GroupLimitedGreedy : MoeTopKMethod.Greedy,
        Groups = groups, TopKGroups = keep, RoutedScalingFactor = grouped ? 16 : 1, NormalizeTopK = !grouped,
    };

    /// <summary>The cases: routing, tokens, bias ("none", "random", "negative"), logits ("random", "ties", "-inf", "bf16").</summary>
    static readonly Dictionary<string, (MoeRouting Routing, int Tokens, string Bias, string Logits)> Configs = new()
    {
        ["v3 256/8/4 k8, 1 token"] = (NoAuxTc(256, 8, 8, 4), 1, "random", "random"),
        ["v3 256/8/4 k8, 67 tokens"] = (NoAuxTc(256, 8, 8, 4), 67, "random", "random"),
        ["v3 256/8/4 k8, 512 tokens"] = (NoAuxTc(256, 8, 8, 4), 512, "random", "random"),
        ["v3 256/8/4 k8, ties"] = (NoAuxTc(256, 8, 8, 4), 9, "random", "ties"),
        ["v3 64/8/3 k6"] = (NoAuxTc(64, 6, 8, 3), 13, "random", "random"),
        ["v3 16/4/2 k4, 4096 tokens"] = (NoAuxTc(16, 4, 4, 2), 4096, "random", "random"),
        ["v3 16/4/2 k4, no bias"] = (NoAuxTc(16, 4, 4, 2), 5, "none", "random"),
        ["v3 8/1/1 k1"] = (NoAuxTc(8, 1, 1, 1), 6, "random", "random"),
        ["v3 16/4/1 k3, masked experts beat a negative choice"] = (NoAuxTc(16, 3, 4, 1), 7, "negative", "random"),
        ["v3 64/8/4 k8, bf16 logits"] = (NoAuxTc(64, 8, 8, 4), 11, "random", "bf16"),
        ["v2 160/8/3 k6"] = (Softmax(160, 6, 8, 3, grouped: true), 33, "none", "random"),
        ["v2 12/4/2 k3, ties"] = (Softmax(12, 3, 4, 2, grouped: true), 9, "none", "ties"),
        ["v2-lite greedy 64 k6"] = (Softmax(64, 6), 17, "none", "random"),
        ["greedy 8 k8"] = (Softmax(8, 8), 3, "none", "random"),
        ["greedy 16 k5, ties"] = (Softmax(16, 5), 8, "none", "ties"),
        ["greedy 7 k2, -inf logits"] = (Softmax(7, 2), 4, "none", "-inf"),
        ["sigmoid greedy 8 k2, -inf logits"] = (NoAuxTc(8, 2, 1, 1) with { Method = MoeTopKMethod.Greedy }, 4, "none", "-inf"),
    };

    public static TheoryData<string> Cases() => [.. Configs.Keys];

    [DeviceTheory, MemberData(nameof(Cases))]
    public void MoeRouteMatchesFloat64(string name)
    {
        var (routing, tokens, biasKind, logitsKind) = Configs[name];
        if (tokens >= 512)
            SkipLongCaseAtGpuWarps($"routing {tokens} tokens");
        int experts = routing.Experts, topK = routing.TopK;
        var random = new Random(experts * 31 + tokens);
        var logits = logitsKind switch
        {
            // values from a small set: exact ties inside and across groups (no pair symmetric about 0, so no two
            // different multisets of sigmoid scores sum to exactly the same value)
            "ties" => Enumerable.Range(0, tokens * experts).Select(_ => (float)(new[] { -1.25, -0.5, 0.25, 1.0, 1.75 })[random.Next(5)]).ToArray(),
            "-inf" => Enumerable.Range(0, tokens * experts).Select(i => i % 3 == 1 ? float.NegativeInfinity : (float)(random.NextDouble() * 4 - 2)).ToArray(),
            _ => RandomValues(tokens * experts, 61 + experts),
        };
        if (logitsKind == "bf16")
            logits = logits.Select(v => (float)(BFloat16)v).ToArray(); // the values a bf16 router writes, exactly
        var bias = biasKind switch
        {
            "negative" => Enumerable.Range(0, experts).Select(e => e % 4 >= 2 ? -1.5f : 0.05f * e / experts).ToArray(), // two per group of 4 below 0
            _ => logitsKind == "ties" ? Enumerable.Range(0, experts).Select(e => e % 2 == 0 ? 0f : 0.125f).ToArray() : RandomValues(experts, 62, 0.1f),
        };
        bool withBias = biasKind != "none";
        using var dl = Upload(logits);
        using var dlBf16 = Upload(logits.Select(v => (BFloat16)v).ToArray());
        using var db = Upload(bias);
        using var ids = PoisonedInts(tokens * topK + Guard);
        using var weights = Poisoned(tokens * topK + Guard);
        var biasView = withBias ? db.View : default;
        DeviceTensor input = logitsKind == "bf16" ? dlBf16.View : dl.View;
        if (!Runs(new OpSignature("MoeRoute", input.ElementType), ops => ops.MoeRoute(input, biasView, ids.View, weights.View, routing), ids, weights))
            return;

        var (expectedIds, expectedWeights) = MoeRouteOracle.Float64(logits, withBias ? bias : null, tokens, routing);
        var actualIds = ids.ToArray();
        var actualWeights = weights.ToArray();
        for (int i = 0; i < expectedIds.Length; i++)
            Assert.True(expectedIds[i] == actualIds[i], $"{name}: token {i / topK}'s expert {i % topK} is {actualIds[i]}, expected {expectedIds[i]}");
        Assert.All(actualIds.AsSpan(expectedIds.Length).ToArray(), id => Assert.Equal(IntPoison, id));
        Close(expectedWeights, actualWeights.AsSpan(0, expectedWeights.Length), $"{name} weights", ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        AllNaN(actualWeights.AsSpan(expectedWeights.Length), "guard after the weights");
    }

    [Fact]
    public void BadRoutingConfigurationsAreRefusedBeforeAnythingRuns()
    {
        const int tokens = 2, experts = 16;
        using var dl = Upload(RandomValues(tokens * experts, 63));
        using var db = Upload(RandomValues(experts, 64, 0.1f));
        using var shortBias = Upload(RandomValues(experts - 1, 64, 0.1f));
        using var ids = PoisonedInts(tokens * 8);
        using var weights = Poisoned(tokens * 8);
        void Refused(MoeRouting routing, DeviceView<float> bias, string parameter, string fragment)
        {
            var before = ids.ToArray();
            var e = Assert.ThrowsAny<ArgumentException>(() => Ops.MoeRoute(dl.View, bias, ids.View, weights.View, routing));
            Assert.Equal(parameter, e.ParamName);
            Assert.Contains(fragment, e.Message);
            Assert.Equal(before, ids.ToArray());
            AllNaN(weights.ToArray(), "weights after a refused call");
        }
        Refused(NoAuxTc(experts, 5, 4, 1), db.View, "routing", "routing.TopK = 5 is more than the 4 experts of the routing.TopKGroups = 1 kept groups of 4");
        Refused(NoAuxTc(experts, 2, 3, 1), db.View, "routing", "routing.Experts = 16 is not a multiple of routing.Groups = 3");
        Refused(NoAuxTc(experts, 2, 4, 2), shortBias.View, "correctionBias", "correctionBias has 15 elements; it needs routing.Experts = 16");
        Refused(NoAuxTc(experts, 17, 4, 4), db.View, "routing", "routing.TopK must be in [1, routing.Experts = 16] (got 17)");
        Refused(NoAuxTc(experts, 2, 4, 5), db.View, "routing", "routing.TopKGroups must be in [1, routing.Groups = 4] (got 5)");
        Refused(NoAuxTc(experts, 1, 16, 1), db.View, "routing", "NoAuxTc scores a group by its two best experts");
    }
}

/// <summary>
/// MoePermute: a stable counting sort by expert (empty experts included, topK given or inferred), exact; every output inside
/// a guard; bad expert ids reported through the error word.
/// </summary>
public abstract class MoePermuteConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(7, 2, 5, 33, true, "random", false)]
    [InlineData(1, 1, 3, 1, false, "random", false)]
    [InlineData(17, 3, 8, 65, false, "random", false)]
    [InlineData(1, 8, 256, 24, true, "random", false)]
    [InlineData(5, 8, 256, 8, true, "random", true)]
    [InlineData(300, 8, 64, 8, true, "random", false)]
    [InlineData(300, 6, 16, 5, true, "one expert", false)]
    [InlineData(257, 4, 8, 9, false, "skewed", true)]
    [InlineData(4096, 8, 256, 2, true, "random", false)]
    public void MoePermuteGroupsSlotsByExpertStably(int tokens, int topK, int experts, int hidden, bool passTopK, string distribution, bool bf16)
    {
        int slots = tokens * topK;
        var random = new Random(tokens * 7 + experts);
        var expertIds = distribution switch
        {
            "one expert" => Enumerable.Repeat(experts / 2, slots).ToArray(),
            "skewed" => Enumerable.Range(0, slots).Select(_ => random.Next(4) == 0 ? random.Next(experts) : 0).ToArray(),
            _ => Enumerable.Range(0, slots).Select(_ => random.Next(experts - 1)).ToArray(), // the last expert gets no rows
        };
        var x = RandomValues(tokens * hidden, 71);
        if (bf16)
            x = x.Select(v => (float)(BFloat16)v).ToArray(); // exactly representable: rows copy bit for bit
        int permutedLength = slots * hidden + (passTopK ? Guard : 0); // topK inferred: permuted exactly [slots, hidden]
        using var dx = Upload(x);
        using var dxBf16 = Upload(x.Select(v => (BFloat16)v).ToArray());
        using var dids = Upload(expertIds);
        using var permuted = Poisoned(permutedLength);
        using var permutedBf16 = PoisonedBf16(permutedLength);
        using var offsets = PoisonedInts(experts + 1 + Guard);
        using var slotRows = PoisonedInts(slots + Guard);
        int topKArgument = passTopK ? topK : 0;
        DeviceTensor input = bf16 ? dxBf16.View : dx.View, output = bf16 ? permutedBf16.View : permuted.View;
        if (!Runs(new OpSignature("MoePermute", bf16 ? ElementType.BF16 : ElementType.F32),
                ops => ops.MoePermute(input, dids.View, output, offsets.View, slotRows.View, experts, topKArgument),
                bf16 ? permutedBf16 : permuted, offsets, slotRows))
            return;

        var order = Enumerable.Range(0, slots).OrderBy(s => expertIds[s]).ThenBy(s => s).ToArray();
        var expectedOffsets = new int[experts + 1];
        var counts = new int[experts];
        foreach (int e in expertIds)
            counts[e]++;
        for (int e = 0; e < experts; e++)
            expectedOffsets[e + 1] = expectedOffsets[e] + counts[e];
        var actualOffsets = offsets.ToArray();
        var actualSlots = slotRows.ToArray();
        var actualRows = bf16 ? permutedBf16.ToArray().Select(v => (float)v).ToArray() : permuted.ToArray();
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
        using var negative = Upload(new[] { 1, -1, 0, -7 });
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
        // nothing but the error word was written
        AllNaN(permuted.ToArray(), "permuted after bad expert ids");
        Assert.All(offsets.ToArray(), v => Assert.Equal(IntPoison, v));
        Assert.All(slots.ToArray(), v => Assert.Equal(IntPoison, v));
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
/// hidden sizes, a guard after the destination; out-of-range rows reported through the error word, their tokens skipped.
/// </summary>
public abstract class MoeCombineConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(5, 3, 17, false), InlineData(5, 3, 17, true), InlineData(1, 1, 1, false), InlineData(9, 2, 65, true)]
    [InlineData(1, 8, 56, true), InlineData(300, 8, 24, false), InlineData(4096, 8, 4, true)]
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
        // token 0 (rows 3 and 5) was combined; tokens 1 and 2 (a bad row each) were skipped
        var y = dy.ToArray();
        Assert.All(y.AsSpan(0, hidden).ToArray(), v => Assert.False(float.IsNaN(v), "token 0 has good rows and was combined"));
        AllNaN(y.AsSpan(hidden), "the tokens with a bad row");
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

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class MoeRouteCpuConformance : MoeRouteConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
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

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class MoePermuteCpuConformance : MoePermuteConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
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

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class GroupedLinearCpuConformance : GroupedLinearConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
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

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class MoeCombineCpuConformance : MoeCombineConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
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
