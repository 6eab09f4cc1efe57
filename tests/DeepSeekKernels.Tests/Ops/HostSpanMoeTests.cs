using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The host-span forms of the MoE chain past routing (MoePermute, GroupedLinearSiluMul and GroupedLinear over weight stacks in
/// host memory, MoeCombine): on the reference, the CPU backend and ILGPU's CPU accelerator, each step gives bit for bit what
/// the device-resident op gives on the same backend (INT4 gate|up and FP8 down stacks with a ragged block, an expert that
/// receives no token, bf16 rows, the combine accumulating onto a shared output), and the permutation moves each token's row
/// to the row its slot names. Refused calls and bad device-held values (an expert id or a slot row out of range) write nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostSpanMoeTests
{
    const int Experts = 6, TopK = 2, Tokens = 5, Hidden = 128, Inter = 64;


    public static TheoryData<string> Backends => new() { "reference", "cpu", "ilgpu" };

    static float[] Random(int length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => (random.NextSingle() * 2 - 1) * scale)];
    }

    /// <summary>Two distinct experts per token, never expert 3 (it receives no token).</summary>
    static int[] ExpertIds() => [0, 5, 2, 0, 4, 1, 5, 2, 1, 0];

    /// <summary>An INT4 stack of [rows, cols] matrices, each quantised on its own (round to nearest per group of 128).</summary>
    static (Int4x2[] Packed, BFloat16[] Scales, BFloat16[] Zeros) Int4Stack(int rows, int cols, int seed)
    {
        var parts = Enumerable.Range(0, Experts).Select(e => Int4GroupQuantizer.Quantize(Random(rows * cols, seed + e, 0.2f), rows, cols)).ToList();
        return ([.. parts.SelectMany(p => p.Packed)], [.. parts.SelectMany(p => p.Scales)], [.. parts.SelectMany(p => p.Zeros)]);
    }

    static (Float8E4M3[] Data, float[] ScaleInv) Fp8Stack(int rows, int cols, int seed)
    {
        var parts = Enumerable.Range(0, Experts).Select(e => Fp8BlockQuantizer.Quantize(Random(rows * cols, seed + e, 0.2f), rows, cols)).ToList();
        return ([.. parts.SelectMany(p => p.Data)], [.. parts.SelectMany(p => p.ScaleInv)]);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void TheChainOnSpansGivesWhatTheDeviceFormsGive(string backend) => RunChain(TestDevices.CpuOps(backend));

    internal static void RunChain(Ops ops)
    {
        var runtime = ops.Runtime ?? TestDevices.Cpu;
        int slots = Tokens * TopK;
        var x = Random(Tokens * Hidden, 1).Select(BFloat16.FromSingle).ToArray();
        int[] ids = ExpertIds();
        var weights = Random(slots, 2).Select(Math.Abs).ToArray();
        var shared = Random(Tokens * Hidden, 3).Select(BFloat16.FromSingle).ToArray();
        var gateUp = Int4Stack(2 * Inter, Hidden, 10);
        var down = Fp8Stack(Hidden, Inter, 20); // 64 in features: one ragged 128 x 64 block per matrix

        // Span forms (outputs poisoned with 7 past what is written).
        var permuted = Enumerable.Repeat(BFloat16.FromSingle(7), slots * Hidden + 2).ToArray();
        var offsets = Enumerable.Repeat(-7, Experts + 2).ToArray();
        var slotRows = Enumerable.Repeat(-7, slots + 1).ToArray();
        ops.MoePermute<BFloat16>(x, ids, permuted, offsets, slotRows, Experts, TopK);
        var activated = new BFloat16[slots * Inter];
        ops.GroupedLinearSiluMul<BFloat16>(permuted.AsSpan(0, slots * Hidden), offsets.AsSpan(0, Experts + 1),
            HostWeightMatrix.Int4(gateUp.Packed, gateUp.Scales, gateUp.Zeros, 2 * Inter, Hidden, count: Experts), activated);
        var expertOut = new BFloat16[slots * Hidden];
        ops.GroupedLinear<BFloat16>(activated, offsets.AsSpan(0, Experts + 1),
            HostWeightMatrix.Fp8(down.Data, down.ScaleInv, Hidden, Inter, count: Experts), expertOut);
        var output = (BFloat16[])shared.Clone();
        ops.MoeCombine<BFloat16>(expertOut, slotRows.AsSpan(0, slots), weights, output, TopK, accumulate: true);

        // The permutation: ascending expert, then ascending slot; expert 3 empty; row slotRows[s] is token s / TopK's row.
        Assert.Equal([0, 3, 5, 7, 7, 8, 10], offsets[..(Experts + 1)]);
        Assert.Equal(-7, offsets[^1]);
        Assert.Equal(-7, slotRows[^1]);
        Assert.Equal(BFloat16.FromSingle(7), permuted[^1]);
        for (int s = 0; s < slots; s++)
            Assert.Equal(x.AsSpan(s / TopK * Hidden, Hidden).ToArray(), permuted.AsSpan(slotRows[s] * Hidden, Hidden).ToArray());

        // Device forms on the same backend.
        using var dx = runtime.Upload<BFloat16>(x);
        using var dIds = runtime.Upload<int>(ids);
        using var dWeights = runtime.Upload<float>(weights);
        using var dPermuted = runtime.Allocate<BFloat16>(slots * Hidden);
        using var dOffsets = runtime.Allocate<int>(Experts + 1);
        using var dSlotRows = runtime.Allocate<int>(slots);
        using var dActivated = runtime.Allocate<BFloat16>(slots * Inter);
        using var dExpertOut = runtime.Allocate<BFloat16>(slots * Hidden);
        using var dOutput = runtime.Upload<BFloat16>(shared);
        using var gPacked = runtime.Upload<Int4x2>(gateUp.Packed);
        using var gScales = runtime.Upload<BFloat16>(gateUp.Scales);
        using var gZeros = runtime.Upload<BFloat16>(gateUp.Zeros);
        using var dData = runtime.Upload<Float8E4M3>(down.Data);
        using var dScales = runtime.Upload<float>(down.ScaleInv);
        ops.MoePermute(DeviceTensor.FromView(dx.View), dIds.View, DeviceTensor.FromView(dPermuted.View), dOffsets.View, dSlotRows.View, Experts);
        ops.GroupedLinearSiluMul(DeviceTensor.FromView(dPermuted.View), dOffsets.View,
            WeightMatrix.Int4(gPacked.View, gScales.View, gZeros.View, 2 * Inter, Hidden, count: Experts), DeviceTensor.FromView(dActivated.View));
        ops.GroupedLinear(DeviceTensor.FromView(dActivated.View), dOffsets.View,
            WeightMatrix.Fp8(dData.View, dScales.View, Hidden, Inter, count: Experts), DeviceTensor.FromView(dExpertOut.View));
        ops.MoeCombine(DeviceTensor.FromView(dExpertOut.View), dSlotRows.View, dWeights.View, DeviceTensor.FromView(dOutput.View), TopK, accumulate: true);
        runtime.Synchronize();

        Assert.Equal(dPermuted.View.ToArray(), permuted[..^2]);
        Assert.Equal(dOffsets.View.ToArray(), offsets[..(Experts + 1)]);
        Assert.Equal(dSlotRows.View.ToArray(), slotRows[..slots]);
        Assert.Equal(dActivated.View.ToArray(), activated);
        Assert.Equal(dExpertOut.View.ToArray(), expertOut);
        Assert.Equal(dOutput.View.ToArray(), output);
        Assert.NotEqual(shared, output); // the routed experts added something
        Assert.All(output, v => Assert.True(float.IsFinite(v.ToSingle())));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void ADenseF32StackGivesWhatTheDeviceFormGives(string backend)
    {
        var ops = TestDevices.CpuOps(backend);
        var runtime = ops.Runtime ?? TestDevices.Cpu;
        const int m = 7, cols = 24, rows = 10;
        var x = Random(m * cols, 4);
        int[] offsets = [0, 2, 2, 7]; // three experts, the second empty
        var w = Random(3 * rows * cols, 5);
        var span = Enumerable.Repeat(7f, m * rows).ToArray();
        ops.GroupedLinear<float>(x, offsets, HostWeightMatrix.Dense(w, rows, cols, count: 3), span);
        using var dx = runtime.Upload<float>(x);
        using var dOffsets = runtime.Upload<int>(offsets);
        using var dw = runtime.Upload<float>(w);
        using var dy = runtime.Upload<float>(Enumerable.Repeat(7f, m * rows).ToArray());
        ops.GroupedLinear(DeviceTensor.FromView(dx.View), dOffsets.View, WeightMatrix.Dense(dw.View, rows, cols, count: 3), DeviceTensor.FromView(dy.View));
        runtime.Synchronize();
        Assert.Equal(dy.View.ToArray(), span);
        // row 0 through expert 0: a float64 dot product of it
        double dot = Enumerable.Range(0, cols).Sum(c => (double)x[c] * w[c]);
        Assert.Equal(dot, span[0], 1e-4);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void BadCallsWriteNothing(string backend)
    {
        var ops = TestDevices.CpuOps(backend);
        int slots = Tokens * TopK;
        var x = Random(Tokens * Hidden, 6);
        var permuted = Enumerable.Repeat(7f, slots * Hidden).ToArray();
        var offsets = Enumerable.Repeat(-7, Experts + 1).ToArray();
        var slotRows = Enumerable.Repeat(-7, slots).ToArray();
        int[] bad = ExpertIds();
        bad[3] = Experts; // out of range

        var e = Assert.Throws<DeviceIndexException>(() => ops.MoePermute<float>(x, bad, permuted, offsets, slotRows, Experts));
        Assert.Contains("MoePermute", e.Message);
        Assert.All(permuted, v => Assert.Equal(7f, v));
        Assert.All(offsets, v => Assert.Equal(-7, v));
        Assert.All(slotRows, v => Assert.Equal(-7, v));

        var overlap = Assert.Throws<ArgumentException>(() => ops.MoePermute<float>(x, ExpertIds(), x, offsets, slotRows, Experts));
        Assert.Contains("permuted overlaps x", overlap.Message);

        // A combine through a slot row past the rows: nothing is written.
        var expertOut = Random(slots * Hidden, 7);
        var rowsBad = Enumerable.Range(0, slots).ToArray();
        rowsBad[4] = slots;
        var destination = Enumerable.Repeat(7f, Tokens * Hidden).ToArray();
        Assert.Throws<DeviceIndexException>(() => ops.MoeCombine<float>(expertOut, rowsBad, Random(slots, 8), destination, TopK, accumulate: false));
        Assert.All(destination, v => Assert.Equal(7f, v));

        // Stacks go to the grouped GEMMs, not to Linear; a default weight is refused.
        var w = Random(2 * 4 * 8, 9);
        var stack = Assert.Throws<ArgumentException>(() => ops.Linear<float>(Random(8, 10), HostWeightMatrix.Dense(w, 4, 8, count: 2), [], new float[4]));
        Assert.Contains("stack of 2 matrices", stack.Message);
        var y = Enumerable.Repeat(7f, 12).ToArray();
        Assert.Throws<ArgumentException>(() => ops.GroupedLinear<float>(Random(24, 11), [0, 3], default, y));
        Assert.All(y, v => Assert.Equal(7f, v));
    }
}

/// <summary>
/// <see cref="HostSpanMoeTests"/>' chain and <see cref="HostSpanMoeLayerTests"/>' layer on a GPU: the host-span MoE ops stage
/// into the GPU runtime and must give bit for bit what the device-resident ops give there, on the native and ILGPU-CUDA backends. Skips without a CUDA GPU (fails under
/// DSK_REQUIRE_GPU=1).
/// </summary>
[Collection(nameof(DeviceCollection))]
[NeedsCudaGpu]
public sealed class HostSpanMoeGpuTests
{
    public static TheoryData<string> Backends => new() { "native", "ilgpu" };

    [DeviceTheory]
    [MemberData(nameof(Backends))]
    public void TheChainOnSpansGivesWhatTheDeviceFormsGive(string backend) => HostSpanMoeTests.RunChain(TestDevices.GpuOps(backend));

    [DeviceTheory]
    [MemberData(nameof(Backends))]
    public void TheLayerOnSpansGivesWhatTheDeviceLayerGives(string backend) => HostSpanMoeLayerTests.RunLayer(TestDevices.GpuOps(backend), fused: true);

}

/// <summary>
/// The host-span MoeLayer (weights in host memory, staged per call): on the reference, the CPU backend and ILGPU's CPU
/// accelerator it gives bit for bit what the device-resident MoeLayer gives on the same backend, with the fused gate|up stack
/// and with gate and up apart (DeepSeek-V3's sigmoid routing with the correction bias, FP8 experts, bf16 rows, accumulating
/// onto a shared output); parts that do not fit are refused by name and nothing is written.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostSpanMoeLayerTests
{
    const int Experts = 8, TopK = 2, Tokens = 3, Hidden = 128, Inter = 64;

    static readonly MoeRouting Routing = new()
    {
        Experts = Experts, TopK = TopK, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 2,
        NormalizeTopK = true, RoutedScalingFactor = 2.5,
    };

    static float[] Random(int length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => (random.NextSingle() * 2 - 1) * scale)];
    }

    static (Float8E4M3[] Data, float[] ScaleInv) Fp8Stack(int rows, int cols, int seed)
    {
        var parts = Enumerable.Range(0, Experts).Select(e => Fp8BlockQuantizer.Quantize(Random(rows * cols, seed + e, 0.2f), rows, cols)).ToList();
        return ([.. parts.SelectMany(p => p.Data)], [.. parts.SelectMany(p => p.ScaleInv)]);
    }

    public static TheoryData<string, bool> Cases() => new()
    {
        { "reference", true }, { "cpu", true }, { "ilgpu", true }, { "reference", false }, { "ilgpu", false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheLayerOnSpansGivesWhatTheDeviceLayerGives(string backend, bool fused) => RunLayer(TestDevices.CpuOps(backend), fused);

    internal static void RunLayer(Ops ops, bool fused)
    {
        var runtime = ops.Runtime ?? TestDevices.Cpu;
        var x = Random(Tokens * Hidden, 1).Select(BFloat16.FromSingle).ToArray();
        var router = Random(Experts * Hidden, 2, 0.3f);
        var bias = Random(Experts, 3, 0.1f);
        var gateUp = Fp8Stack(2 * Inter, Hidden, 10);
        var gate = Fp8Stack(Inter, Hidden, 20);
        var up = Fp8Stack(Inter, Hidden, 30);
        var down = Fp8Stack(Hidden, Inter, 40);
        var shared = Random(Tokens * Hidden, 4).Select(BFloat16.FromSingle).ToArray();

        var span = (BFloat16[])shared.Clone();
        var hRouter = HostWeightMatrix.Dense(router, Experts, Hidden);
        var hDown = HostWeightMatrix.Fp8(down.Data, down.ScaleInv, Hidden, Inter, count: Experts);
        if (fused)
            ops.MoeLayer<BFloat16>(x, hRouter, bias, Routing, HostWeightMatrix.Fp8(gateUp.Data, gateUp.ScaleInv, 2 * Inter, Hidden, count: Experts),
                hDown, span, accumulate: true);
        else
            ops.MoeLayer<BFloat16>(x, hRouter, bias, Routing, HostWeightMatrix.Fp8(gate.Data, gate.ScaleInv, Inter, Hidden, count: Experts),
                HostWeightMatrix.Fp8(up.Data, up.ScaleInv, Inter, Hidden, count: Experts), hDown, span, accumulate: true);

        using var dRouter = runtime.Upload<float>(router);
        using var dBias = runtime.Upload<float>(bias);
        var owned = new List<IDisposable>();
        WeightMatrix Fp8((Float8E4M3[] Data, float[] ScaleInv) w, int rows, int cols)
        {
            var data = runtime.Upload<Float8E4M3>(w.Data);
            var scales = runtime.Upload<float>(w.ScaleInv);
            owned.Add(data);
            owned.Add(scales);
            return WeightMatrix.Fp8(data.View, scales.View, rows, cols, count: Experts);
        }
        try
        {
            var layer = fused
                ? new MoeLayer(WeightMatrix.Dense(dRouter.View, Experts, Hidden), dBias.View, Routing, Fp8(gateUp, 2 * Inter, Hidden), null, null, Fp8(down, Hidden, Inter))
                : new MoeLayer(WeightMatrix.Dense(dRouter.View, Experts, Hidden), dBias.View, Routing, null, Fp8(gate, Inter, Hidden), Fp8(up, Inter, Hidden), Fp8(down, Hidden, Inter));
            using var scratch = MoeLayerScratch.Allocate(layer, Tokens, ElementType.BF16);
            using var dx = runtime.Upload<BFloat16>(x);
            using var dy = runtime.Upload<BFloat16>(shared);
            ops.MoeLayer(layer, DeviceTensor.FromView(dx.View), scratch, DeviceTensor.FromView(dy.View), accumulate: true);
            runtime.Synchronize();
            Assert.Equal(dy.View.ToArray(), span);
            Assert.NotEqual(shared, span);
        }
        finally
        {
            owned.ForEach(o => o.Dispose());
        }
    }

    [Fact]
    public void PartsThatDoNotFitAreRefusedByNameAndNothingIsWritten()
    {
        var ops = Ops.Reference;
        var x = Random(Tokens * Hidden, 5);
        var y = Enumerable.Repeat(7f, Tokens * Hidden).ToArray();
        var router = Random(Experts * Hidden, 6);
        var down = Fp8Stack(Hidden, Inter, 50);
        var shortStack = Random((Experts - 1) * 2 * Inter * Hidden, 60); // one expert short
        var e = Assert.Throws<ArgumentException>(() => ops.MoeLayer<float>(x, HostWeightMatrix.Dense(router, Experts, Hidden), [], Routing,
            HostWeightMatrix.Dense(shortStack, 2 * Inter, Hidden, count: Experts - 1),
            HostWeightMatrix.Fp8(down.Data, down.ScaleInv, Hidden, Inter, count: Experts), y, accumulate: false));
        Assert.Equal("gateUp", e.ParamName);
        Assert.Contains("it must be 8 matrices", e.Message);
        var wrongGateUp = Fp8Stack(2 * Inter, Hidden, 70);
        var d = Assert.Throws<ArgumentException>(() => ops.MoeLayer<float>(x, HostWeightMatrix.Dense(router, Experts, Hidden), [], Routing,
            default, HostWeightMatrix.Fp8(down.Data, down.ScaleInv, Hidden, Inter, count: Experts), y, accumulate: false));
        Assert.Contains("gateUp is a default HostWeightMatrix", d.Message);
        var odd = Assert.Throws<ArgumentException>(() => ops.MoeLayer<float>(x.AsSpan(1), HostWeightMatrix.Dense(router, Experts, Hidden), [], Routing,
            HostWeightMatrix.Fp8(wrongGateUp.Data, wrongGateUp.ScaleInv, 2 * Inter, Hidden, count: Experts),
            HostWeightMatrix.Fp8(down.Data, down.ScaleInv, Hidden, Inter, count: Experts), y, accumulate: false));
        Assert.Contains("multiple of hidden", odd.Message);
        Assert.All(y, v => Assert.Equal(7f, v));
    }
}
