using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// The whole routed-expert layer (<see cref="Ops.MoeLayer"/>: router, routing, permutation, grouped gate|up with SiLU,
/// grouped down, combine) against plain per-token, per-expert loops in float64: DeepSeek-V3 routing over 8 to 64 experts,
/// every expert weight form, fused and separate gate/up stacks, accumulating onto a shared-experts output and overwriting,
/// f32 and bf16 activations. Where the backend lacks an op of the chain, the strict call must be refused before anything
/// runs (nothing written).
/// </summary>
public abstract class MoeLayerConformance : ConformanceTest
{
    public static TheoryData<string, int, int, int, bool, bool, bool> Cases() => new()
    {
        // form, tokens, experts, top k, fused gate|up, accumulate, bf16 activations
        { "f32", 5, 8, 2, true, true, false },
        { "f32", 1, 16, 4, false, false, false },
        { "bf16", 40, 16, 4, true, true, false },
        { "bf16", 9, 64, 8, true, false, true },
        { "fp8/8x16", 7, 8, 3, false, true, false },
        { "fp8/8x16", 6, 16, 4, true, false, false },
        { "int4", 11, 8, 2, true, true, false },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void MoeLayerMatchesPerExpertLoops(string form, int tokens, int experts, int topK, bool fused, bool accumulate, bool bf16)
    {
        const int hidden = 64, intermediate = 32;
        int groups = experts >= 16 ? 4 : 2;
        var routing = new MoeRouting
        {
            Experts = experts, TopK = topK, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = groups,
            TopKGroups = groups / 2 + (topK > experts / groups * (groups / 2) ? 1 : 0), NormalizeTopK = true, RoutedScalingFactor = 2.5,
        };
        using var router = Weight("f32", 1, experts, hidden, seed: 101);
        var bias = RandomValues(experts, 102, 0.1f);
        using var dbias = Upload(bias);
        using var gateUp = fused ? Weight(form, experts, 2 * intermediate, hidden, seed: 103) : null;
        using var gate = fused ? null : Weight(form, experts, intermediate, hidden, seed: 104);
        using var up = fused ? null : Weight(form, experts, intermediate, hidden, seed: 105);
        using var down = Weight(form, experts, hidden, intermediate, seed: 106);
        var layer = new MoeLayer(router.Matrix, dbias.View, routing, gateUp?.Matrix, gate?.Matrix, up?.Matrix, down.Matrix);

        var x = RandomValues(tokens * hidden, 107);
        var shared = RandomValues(tokens * hidden, 108); // the shared experts' output the routed sum is added onto
        if (bf16)
        {
            x = x.Select(v => (float)(BFloat16)v).ToArray();
            shared = shared.Select(v => (float)(BFloat16)v).ToArray();
        }
        var type = bf16 ? ElementType.BF16 : ElementType.F32;
        using var scratch = MoeLayerScratch.Allocate(layer, tokens + 3, type);
        using var dx = Upload(x);
        using var dxBf16 = Upload(x.Select(v => (BFloat16)v).ToArray());
        var initial = accumulate ? shared : Nan(tokens * hidden);
        using var dy = Upload(initial.Concat(Nan(Guard)).ToArray());
        using var dyBf16 = Upload(initial.Concat(Nan(Guard)).Select(v => (BFloat16)v).ToArray());
        DeviceTensor input = bf16 ? dxBf16.View : dx.View, output = bf16 ? dyBf16.View : dy.View;

        bool admitted = true;
        try
        {
            Ops.MoeLayer(layer, input, scratch, output, accumulate);
        }
        catch (OpNotSupportedException e)
        {
            Assert.False(Ops.Supports(e.Signature), $"refused {e.Signature}, which the backend says it supports");
            admitted = false;
        }
        var actual = bf16 ? dyBf16.ToArray().Select(v => (float)v).ToArray() : dy.ToArray();
        if (!admitted)
        {
            Runtime.Synchronize();
            for (int i = 0; i < actual.Length; i++)
                Assert.True(actual[i].Equals(i < initial.Length ? (bf16 ? (float)(BFloat16)initial[i] : initial[i]) : float.NaN),
                    $"element {i} changed by a refused MoeLayer");
            return;
        }

        // routing in float64 from float64 logits, then each token's experts one by one
        var logits = new float[tokens * experts];
        var expected = new double[tokens * hidden];
        var scale = new double[expected.Length];
        for (int t = 0; t < tokens; t++)
            for (int e = 0; e < experts; e++)
            {
                double sum = 0;
                for (int c = 0; c < hidden; c++)
                    sum += (double)router.Values[e * hidden + c] * x[t * hidden + c];
                logits[t * experts + e] = (float)sum;
            }
        var (ids, weights) = MoeRouteOracle.Float64(logits, bias, tokens, routing);
        float G(int e, int j, int c) => fused ? gateUp!.Values[((long)e * 2 * intermediate + j) * hidden + c] : gate!.Values[((long)e * intermediate + j) * hidden + c];
        float U(int e, int j, int c) => fused ? gateUp!.Values[((long)e * 2 * intermediate + intermediate + j) * hidden + c] : up!.Values[((long)e * intermediate + j) * hidden + c];
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < hidden; i++)
            {
                expected[t * hidden + i] = accumulate ? shared[t * hidden + i] : 0;
                scale[t * hidden + i] = Math.Abs(expected[t * hidden + i]);
            }
            for (int k = 0; k < topK; k++)
            {
                int e = ids[t * topK + k];
                var act = new double[intermediate];
                var actScale = new double[intermediate];
                for (int j = 0; j < intermediate; j++)
                {
                    double g = 0, u = 0, magnitude = 0;
                    for (int c = 0; c < hidden; c++)
                    {
                        g += (double)G(e, j, c) * x[t * hidden + c];
                        u += (double)U(e, j, c) * x[t * hidden + c];
                        magnitude += Math.Abs((double)G(e, j, c) * x[t * hidden + c]) + Math.Abs((double)U(e, j, c) * x[t * hidden + c]);
                    }
                    act[j] = g / (1 + Math.Exp(-g)) * u;
                    actScale[j] = magnitude * magnitude + Math.Abs(act[j]);
                }
                for (int i = 0; i < hidden; i++)
                {
                    double sum = 0, magnitude = 0;
                    for (int j = 0; j < intermediate; j++)
                    {
                        double w = down.Values[((long)e * hidden + i) * intermediate + j];
                        sum += w * act[j];
                        magnitude += Math.Abs(w) * actScale[j];
                    }
                    expected[t * hidden + i] += weights[t * topK + k] * sum;
                    scale[t * hidden + i] += Math.Abs(weights[t * topK + k]) * magnitude;
                }
            }
        }
        double tolerance = bf16 ? ConformanceTolerance.Bf16 : ConformanceTolerance.Weight(form);
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"MoeLayer {form}{(fused ? " fused" : "")}{(bf16 ? " bf16" : "")}", tolerance,
            ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the destination");
    }

    /// <summary>
    /// FP8 experts with the scratch's FP8 inputs (<see cref="MoeLayerScratch.Allocate"/> with fp8Activations): from
    /// <see cref="Ops.MoeLayerW8A8MinTokens"/> tokens the layer runs them as W8A8 (QuantizeFp8Activations + GroupedLinearW8A8,
    /// no dequantising grouped GEMM: counted by the profile), within 10% of the dequantising layer's output in relative norm
    /// (the activations' e4m3 rounding: about 3% per product, two products) and not equal to it; one token fewer, the same
    /// call is the dequantising layer bit for bit. Fused gate|up (moe_intermediate 128: whole 128-row scale blocks) and apart.
    /// </summary>
    [DeviceTheory]
    [InlineData(true, false), InlineData(false, true)]
    public void Fp8ExpertsRunAsW8A8FromTheThresholdWithinTheBound(bool fused, bool bf16)
    {
        const int hidden = 256, intermediate = 128, experts = 8, topK = 2;
        var routing = new MoeRouting
        {
            Experts = experts, TopK = topK, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 2, TopKGroups = 1,
            NormalizeTopK = true, RoutedScalingFactor = 2.5,
        };
        using var router = Weight("f32", 1, experts, hidden, seed: 111);
        using var dbias = Upload(RandomValues(experts, 112, 0.1f));
        using var gateUp = fused ? Weight("fp8", experts, 2 * intermediate, hidden, seed: 113) : null;
        using var gate = fused ? null : Weight("fp8", experts, intermediate, hidden, seed: 114);
        using var up = fused ? null : Weight("fp8", experts, intermediate, hidden, seed: 115);
        using var down = Weight("fp8", experts, hidden, intermediate, seed: 116);
        var layer = new MoeLayer(router.Matrix, dbias.View, routing, gateUp?.Matrix, gate?.Matrix, up?.Matrix, down.Matrix);
        int tokens = Ops.MoeLayerW8A8MinTokens;
        var type = bf16 ? ElementType.BF16 : ElementType.F32;
        var x = RandomValues(tokens * hidden, 117);
        using var dx = Upload(x);
        using var dxBf16 = Upload(x.Select(v => (BFloat16)v).ToArray());
        using var plainScratch = MoeLayerScratch.Allocate(layer, tokens, type);
        using var fp8Scratch = MoeLayerScratch.Allocate(layer, tokens, type, fp8Activations: true);
        Assert.True(fp8Scratch.Fp8Activations);
        Assert.False(plainScratch.Fp8Activations);
        var ops = Ops.WithProfiling();
        if (!ops.Supports(new OpSignature("GroupedLinearW8A8", type) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3, StridedRows = !fused }))
            return; // this backend takes the dequantising chain whatever the scratch holds

        float[] Run(int count, MoeLayerScratch scratch, out long w8a8Calls, out long dequantising)
        {
            using var dy = Poisoned((long)count * hidden);
            using var dyBf16 = PoisonedBf16((long)count * hidden);
            DeviceTensor input = (bf16 ? dxBf16.View : (DeviceTensor)dx.View).Slice(0, (long)count * hidden);
            ops.ResetProfile();
            ops.MoeLayer(layer, input, scratch, bf16 ? dyBf16.View : dy.View, accumulate: false);
            w8a8Calls = ops.Profile.Where(r => r.Signature.Op == "GroupedLinearW8A8").Sum(r => r.Calls);
            dequantising = ops.Profile.Where(r => r.Signature.Op is "GroupedLinear" or "GroupedLinearSiluMul").Sum(r => r.Calls);
            return bf16 ? dyBf16.ToArray().Select(v => (float)v).ToArray() : dy.ToArray();
        }

        var plain = Run(tokens, plainScratch, out long plainW8A8, out _);
        var w8a8 = Run(tokens, fp8Scratch, out long calls, out long dequantisingCalls);
        Assert.Equal(0, plainW8A8);
        Assert.Equal(fused ? 2 : 3, calls);
        Assert.Equal(0, dequantisingCalls);
        double diff = 0, norm = 0;
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.False(float.IsNaN(w8a8[i]), $"y[{i / hidden}, {i % hidden}] is NaN (not written?)");
            diff += Math.Pow(w8a8[i] - plain[i], 2);
            norm += Math.Pow(plain[i], 2);
        }
        double relative = Math.Sqrt(diff / norm);
        TestContext.Current.TestOutputHelper?.WriteLine($"MoeLayer W8A8 ({(fused ? "fused" : "gate and up apart")}, {type.Name()}) on {Ops.Label}: {relative:E2} from the dequantising layer");
        Assert.True(relative is > 0 and < 0.1, $"W8A8 experts {relative:E2} from the dequantising layer (expected a few percent)");

        // below the threshold the FP8 scratch changes nothing
        var below = Run(tokens - 1, fp8Scratch, out long belowCalls, out _);
        var belowPlain = Run(tokens - 1, plainScratch, out _, out _);
        Assert.Equal(0, belowCalls);
        Assert.Equal(belowPlain, below);
    }
}

/// <summary>The MoeRoute doc in float64 (shared by the route and layer conformance classes).</summary>
internal static class MoeRouteOracle
{
    /// <summary>Ids and weights [tokens, TopK] from float32 logits and an optional bias, computed in float64.</summary>
    public static (int[] Ids, double[] Weights) Float64(float[] logits, float[]? bias, int tokens, MoeRouting routing)
    {
        int experts = routing.Experts, topK = routing.TopK;
        var ids = new int[tokens * topK];
        var weights = new double[tokens * topK];
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
            var choice = scores.Select((sc, e) => sc + (bias is null ? 0 : bias[e])).ToArray();
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
                ids[t * topK + k] = picked[k];
                double w = scores[picked[k]];
                if (routing.NormalizeTopK)
                    w /= total + 1e-20;
                weights[t * topK + k] = w * routing.RoutedScalingFactor;
            }
        }
        return (ids, weights);
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class MoeLayerReferenceConformance : MoeLayerConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class MoeLayerIlgpuCpuConformance : MoeLayerConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class MoeLayerCpuConformance : MoeLayerConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class MoeLayerIlgpuCudaConformance : MoeLayerConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class MoeLayerNativeConformance : MoeLayerConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
