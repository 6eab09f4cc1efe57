using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// MoeRoute on hand-made logits whose answer is known (group masking, the correction bias, normalisation and the
/// scaling factor, ties), DeepSeek-V2's softmax routes, and MoePermute + GroupedLinear + SiluAndMul + GroupedLinear
/// + MoeCombine against a direct per-token loop over each token's experts in float64.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class MoeTests
{
    static float Logit(double p) => (float)Math.Log(p / (1 - p)); // sigmoid(Logit(p)) = p

    static readonly MoeRouting V3 = new()
    {
        Experts = 8, TopK = 2, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 2,
        NormalizeTopK = true, RoutedScalingFactor = 2.5,
    };

    // scores per expert; groups of two: {0.95, 0.05} sums 1.00, {0.80, 0.75} 1.55, {0.70, 0.70} 1.40, {0.10, 0.20} 0.30
    static readonly double[] Scores = [0.95, 0.05, 0.80, 0.75, 0.70, 0.70, 0.10, 0.20];

    static (int[] Ids, float[] Weights) Route(float[] logits, float[]? bias, MoeRouting routing)
    {
        int tokens = logits.Length / routing.Experts;
        using var dl = Upload(logits);
        using var db = bias is null ? null : Upload(bias);
        using var ids = Upload(Enumerable.Repeat(-7, tokens * routing.TopK).ToArray());
        using var weights = Poisoned(tokens * routing.TopK);
        ReferenceOps.MoeRoute(dl.View, db?.View ?? default, ids.View, weights.View, routing);
        return (ids.ToArray(), weights.ToArray());
    }

    [Fact]
    public void GroupMaskingExcludesTheBestExpertOfALosingGroup()
    {
        var logits = Scores.Select(Logit).ToArray();
        var (ids, weights) = Route(logits, null, V3);
        // groups 1 (1.55) and 2 (1.40) are kept; expert 0 (0.95, the best) sits in group 0 (1.00) and is masked
        Assert.Equal([2, 3], ids);
        Close([0.80 / 1.55 * 2.5, 0.75 / 1.55 * 2.5], weights, "weights", relative: 1e-6);

        // without groups the best two overall win
        var (greedyIds, _) = Route(logits, null, V3 with { Method = MoeTopKMethod.Greedy });
        Assert.Equal([0, 2], greedyIds);
    }

    [Fact]
    public void TheBiasChangesTheChoiceButNotTheWeights()
    {
        var logits = Scores.Select(Logit).ToArray();
        var bias = new float[8];
        bias[5] = 0.3f; // expert 5's choice 1.00: group 2 now sums 1.70, and expert 5 ranks first
        var (ids, weights) = Route(logits, bias, V3);
        Assert.Equal([5, 2], ids);
        // weights are the unbiased scores 0.70 and 0.80, normalised by their sum
        Close([0.70 / 1.50 * 2.5, 0.80 / 1.50 * 2.5], weights, "weights", relative: 1e-6);
    }

    [Fact]
    public void MaskedExpertsScoreZeroNotMinusInfinity()
    {
        // masked_fill(~mask, 0.0): with a negative bias an unmasked expert's choice can fall below a masked one's 0
        var logits = Scores.Select(Logit).ToArray();
        var bias = new float[] { 0, -1, -1, -1, -1, -1, -1, -1 };
        var routing = V3 with { TopKGroups = 1, TopK = 2 };
        // choices: {0.95, -0.95} 0.00, {-0.20, -0.25} -0.45, {-0.30, -0.30} -0.60, {-0.90, -0.80} -1.70 -> group 0 kept
        var (ids, weights) = Route(logits, bias, routing);
        // kept: 0 (0.95); then the masked experts at 0.0 beat expert 1 (-0.95): the lowest index, 2, is picked
        Assert.Equal([0, 2], ids);
        Close([0.95 / 1.75 * 2.5, 0.80 / 1.75 * 2.5], weights, "weights", relative: 1e-6);
    }

    [Fact]
    public void NormalisationAndScalingAreOptional()
    {
        var logits = Scores.Select(Logit).ToArray();
        var (_, plain) = Route(logits, null, V3 with { NormalizeTopK = false, RoutedScalingFactor = 1 });
        Close([0.80, 0.75], plain, "unnormalised", relative: 1e-6);
        var (_, scaled) = Route(logits, null, V3 with { NormalizeTopK = false, RoutedScalingFactor = 16 });
        Close([0.80 * 16, 0.75 * 16], scaled, "scaled", relative: 1e-6);
    }

    [Fact]
    public void TiesGoToTheLowerIndex()
    {
        var logits = new float[] { 0.5f, 2f, -1f, 2f, 2f, 0f };
        var routing = new MoeRouting { Experts = 6, TopK = 3, Scoring = MoeScoring.Softmax, Method = MoeTopKMethod.Greedy };
        var (ids, weights) = Route(logits, null, routing);
        Assert.Equal([1, 3, 4], ids);
        Assert.Equal(weights[0], weights[1]);
        Assert.Equal(weights[0], weights[2]);
    }

    [Theory]
    [InlineData(MoeTopKMethod.Greedy), InlineData(MoeTopKMethod.GroupLimitedGreedy)]
    public void DeepSeekV2SoftmaxRoutesMatchFloat64(MoeTopKMethod method)
    {
        const int tokens = 9, experts = 12, topK = 3, groups = 4, keptGroups = 2;
        var routing = new MoeRouting
        {
            Experts = experts, TopK = topK, Scoring = MoeScoring.Softmax, Method = method, Groups = groups, TopKGroups = keptGroups,
            RoutedScalingFactor = 16,
        };
        var logits = RandomValues(tokens * experts, 61);
        var (ids, weights) = Route(logits, null, routing);
        var expectedWeights = new double[tokens * topK];
        for (int t = 0; t < tokens; t++)
        {
            var row = logits.AsSpan(t * experts, experts).ToArray();
            double max = row.Max(), sum = row.Sum(l => Math.Exp(l - max));
            var p = row.Select(l => Math.Exp(l - max) / sum).ToArray();
            var allowed = Enumerable.Range(0, experts);
            if (method == MoeTopKMethod.GroupLimitedGreedy)
            {
                var bestGroups = Enumerable.Range(0, groups).OrderByDescending(g => p.Skip(g * 3).Take(3).Max()).Take(keptGroups).ToHashSet();
                allowed = allowed.Where(e => bestGroups.Contains(e / 3));
            }
            var expected = allowed.OrderByDescending(e => p[e]).ThenBy(e => e).Take(topK).ToArray();
            Assert.Equal(expected, ids.AsSpan(t * topK, topK).ToArray());
            for (int k = 0; k < topK; k++)
                expectedWeights[t * topK + k] = p[expected[k]] * 16;
        }
        Close(expectedWeights, weights, "weights", relative: 2e-6);
    }

    [Fact]
    public void PermuteGroupsSlotsByExpertStably()
    {
        const int hidden = 3, topK = 2;
        int[] expertIds = [2, 0, 0, 3, 2, 0]; // tokens 0..2
        var x = RandomValues(3 * hidden, 71);
        using var dx = Upload(x);
        using var dids = Upload(expertIds);
        using var permuted = Poisoned(6 * hidden);
        using var offsets = Upload(Enumerable.Repeat(-9, 6).ToArray());
        using var slots = Upload(Enumerable.Repeat(-9, 6).ToArray());
        ReferenceOps.MoePermute(dx.View, dids.View, permuted.View, offsets.View, slots.View, experts: 5, topK: topK);
        Assert.Equal([0, 3, 3, 5, 6, 6], offsets.ToArray());     // expert 0: 3 rows, 1: none, 2: 2, 3: 1, 4: none
        Assert.Equal([3, 0, 1, 5, 4, 2], slots.ToArray());       // slot -> row: ascending slot within an expert
        var rows = permuted.ToArray();
        var slotRows = slots.ToArray();
        for (int slot = 0; slot < 6; slot++)
            Exact(x.AsSpan(slot / topK * hidden, hidden), rows.AsSpan(slotRows[slot] * hidden, hidden), $"slot {slot}");

        // topK = 0 infers it from the lengths
        using var again = Poisoned(6 * hidden);
        ReferenceOps.MoePermute(dx.View, dids.View, again.View, offsets.View, slots.View, experts: 5);
        Exact(rows, again.ToArray(), "inferred topK");
    }

    [Fact]
    public void BadExpertIdsAreNamedAndNothingIsWritten()
    {
        using var dx = Upload(RandomValues(2 * 4, 72));
        using var dids = Upload(new[] { 1, 0, 5, 2 });
        using var permuted = Poisoned(16);
        using var offsets = Upload(new int[6]);
        using var slots = Upload(new int[4]);
        DeviceIndexError(CpuRuntime, () => ReferenceOps.MoePermute(dx.View, dids.View, permuted.View, offsets.View, slots.View, 5, 2),
            "MoePermute", "expertIds", "expertIds[2] = 5");
        AllNaN(permuted.ToArray(), "permuted");
    }

    [Theory]
    [InlineData("f32"), InlineData("bf16"), InlineData("fp8")]
    public void PermuteExpertsCombineEqualsADirectLoop(string form)
    {
        const int tokens = 7, hidden = 33, intermediate = 9, experts = 5, topK = 2;
        // every token picks two distinct experts; expert 4 is never picked (an empty group)
        var expertIds = new int[tokens * topK];
        var random = new Random(81);
        for (int t = 0; t < tokens; t++)
        {
            expertIds[t * topK] = random.Next(4);
            do expertIds[t * topK + 1] = random.Next(4); while (expertIds[t * topK + 1] == expertIds[t * topK]);
        }
        var routeWeights = RandomValues(tokens * topK, 82, 0.3f);
        var x = RandomValues(tokens * hidden, 83);
        var shared = RandomValues(tokens * hidden, 84); // the shared experts' output, accumulated onto
        using var gateUp = new TestWeight(form, experts, 2 * intermediate, hidden, seed: 85, blockRows: 8, blockCols: 16);
        using var down = new TestWeight(form, experts, hidden, intermediate, seed: 86, blockRows: 8, blockCols: 16);

        int slots = tokens * topK;
        using var dx = Upload(x);
        using var dids = Upload(expertIds);
        using var dw = Upload(routeWeights);
        using var permuted = Poisoned(slots * hidden);
        using var offsets = Upload(new int[experts + 1]);
        using var slotRows = Upload(new int[slots]);
        using var hiddenStates = Poisoned(slots * 2 * intermediate);
        using var activated = Poisoned(slots * intermediate);
        using var expertOutput = Poisoned(slots * hidden);
        using var destination = Upload(shared);
        var ops = ReferenceOps;
        ops.MoePermute(dx.View, dids.View, permuted.View, offsets.View, slotRows.View, experts, topK);
        ops.GroupedLinear(permuted.View, offsets.View, gateUp.Matrix, hiddenStates.View);
        ops.SiluAndMul(hiddenStates.View, activated.View, intermediate);
        ops.GroupedLinear(activated.View, offsets.View, down.Matrix, expertOutput.View);
        ops.MoeCombine(expertOutput.View, slotRows.View, dw.View, destination.View, topK, accumulate: true);

        // the direct loop: y[t] = shared[t] + sum_k w[t, k] * down[e] @ (silu(gate[e] @ x[t]) * (up[e] @ x[t]))
        var expected = new double[tokens * hidden];
        var scale = new double[expected.Length];
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < hidden; i++)
            {
                expected[t * hidden + i] = shared[t * hidden + i];
                scale[t * hidden + i] = Math.Abs(shared[t * hidden + i]);
            }
            for (int k = 0; k < topK; k++)
            {
                int e = expertIds[t * topK + k];
                var act = new double[intermediate];
                var actScale = new double[intermediate];
                for (int j = 0; j < intermediate; j++)
                {
                    double gate = 0, up = 0, magnitude = 0;
                    for (int c = 0; c < hidden; c++)
                    {
                        gate += (double)gateUp.Values[((long)e * 2 * intermediate + j) * hidden + c] * x[t * hidden + c];
                        up += (double)gateUp.Values[((long)e * 2 * intermediate + intermediate + j) * hidden + c] * x[t * hidden + c];
                        magnitude += Math.Abs((double)gateUp.Values[((long)e * 2 * intermediate + intermediate + j) * hidden + c] * x[t * hidden + c])
                            + Math.Abs((double)gateUp.Values[((long)e * 2 * intermediate + j) * hidden + c] * x[t * hidden + c]);
                    }
                    act[j] = gate / (1 + Math.Exp(-gate)) * up;
                    actScale[j] = magnitude * magnitude;
                }
                for (int i = 0; i < hidden; i++)
                {
                    double sum = 0, magnitude = 0;
                    for (int j = 0; j < intermediate; j++)
                    {
                        double w = down.Values[((long)e * hidden + i) * intermediate + j];
                        sum += w * act[j];
                        magnitude += Math.Abs(w) * (Math.Abs(act[j]) + actScale[j]);
                    }
                    expected[t * hidden + i] += routeWeights[t * topK + k] * sum;
                    scale[t * hidden + i] += Math.Abs(routeWeights[t * topK + k]) * magnitude;
                }
            }
        }
        Close(expected, scale, destination.ToArray(), $"moe {form}");
        Assert.Equal(0, offsets.ToArray()[0]);
        Assert.Equal(offsets.ToArray()[4], offsets.ToArray()[5]); // expert 4 had no rows
    }

    [Fact]
    public void CombineWithoutAccumulateOverwrites()
    {
        const int hidden = 4, topK = 2;
        var output = RandomValues(4 * hidden, 91);  // 2 tokens x 2 experts, permuted
        int[] slotRows = [1, 3, 2, 0];             // slot s went to row slotRows[s]
        var weights = new float[] { 0.25f, 0.5f, 2f, -1f };
        using var dout = Upload(output);
        using var dslot = Upload(slotRows);
        using var dw = Upload(weights);
        using var dy = Poisoned(2 * hidden);
        ReferenceOps.MoeCombine(dout.View, dslot.View, dw.View, dy.View, topK, accumulate: false);
        // token 0: slots 0 (row 1) and 1 (row 3); token 1: slots 2 (row 2) and 3 (row 0)
        var expected = new double[2 * hidden];
        for (int i = 0; i < hidden; i++)
        {
            expected[i] = 0.25 * output[1 * hidden + i] + 0.5 * output[3 * hidden + i];
            expected[hidden + i] = 2.0 * output[2 * hidden + i] - 1.0 * output[0 * hidden + i];
        }
        Close(expected, expected.Select(v => Math.Abs(v) + 3).ToArray(), dy.ToArray(), "combined", relative: 1e-6);

        using var outside = Upload(new[] { 1, 3, 4, 0 });
        DeviceIndexError(CpuRuntime, () => ReferenceOps.MoeCombine(dout.View, outside.View, dw.View, dy.View, topK, false),
            "MoeCombine", "slotRows", "slotRows[2] = 4 is outside [0, 4)");
    }

    [Fact]
    public void MoeLayerAdmitsTheWholeChainBeforeAnythingRuns()
    {
        // a strict backend that runs everything but MoeCombine: the call is refused naming it, and the router never ran
        const int tokens = 3, hidden = 8, intermediate = 4, experts = 4;
        var stub = new StubBackend(op => op.Op != "MoeCombine");
        var ops = DeepSeekKernels.Ops.Over(CpuRuntime, stub);
        using var router = new TestWeight("f32", 1, experts, hidden, seed: 1);
        using var gateUp = new TestWeight("f32", experts, 2 * intermediate, hidden, seed: 2);
        using var down = new TestWeight("f32", experts, hidden, intermediate, seed: 3);
        var layer = new MoeLayer(router.Matrix, default, V3 with { Experts = experts, Groups = 2, TopKGroups = 1 }, gateUp.Matrix, null, null, down.Matrix);
        using var scratch = MoeLayerScratch.Allocate(layer, tokens);
        using var x = Upload(RandomValues(tokens * hidden, 4));
        using var y = Poisoned(tokens * hidden);
        var e = Assert.Throws<OpNotSupportedException>(() => ops.MoeLayer(layer, x.View, scratch, y.View, accumulate: false));
        Assert.Equal("MoeCombine", e.Signature.Op);
        Assert.Equal(0, stub.LinearCalls);
        AllNaN(y.ToArray(), "the destination of a refused MoeLayer");

        // parts that do not fit together are named
        Throws<ArgumentException>(() => new MoeLayer(router.Matrix, default, V3 with { Experts = 5 }, gateUp.Matrix, null, null, down.Matrix),
            "router", "it must be one [routing.Experts = 5, hidden] matrix");
        Throws<ArgumentException>(() => new MoeLayer(router.Matrix, default, V3 with { Experts = experts, Groups = 2, TopKGroups = 1 }, down.Matrix, null, null, down.Matrix),
            "gateUp", "it must be 4 matrices of [2 * intermediate = 8, hidden = 8]");
        Throws<ArgumentException>(() => new MoeLayer(router.Matrix, default, V3 with { Experts = experts, Groups = 2, TopKGroups = 1 }, null, gateUp.Matrix, null, down.Matrix),
            "gate", "it must be 4 matrices of [intermediate = 4, hidden = 8]");
        using var big = Upload(RandomValues((tokens + 1) * hidden, 5));
        Throws<ArgumentException>(() => DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Reference).MoeLayer(layer, big.View, scratch, y.View, false), "x",
            "x has 4 tokens; the scratch holds at most 3");
    }
}
