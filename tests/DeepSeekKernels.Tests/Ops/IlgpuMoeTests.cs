using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Conformance;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The ILGPU MoE kernels on ILGPU's CPU accelerator against the reference on the same buffers, where the conformance
/// cases do not reach: routing of bf16 logits over DeepSeek-V3's 256 experts with NaN, -inf and tied logits; permutations
/// of several 256-slot chunks (f32, bf16 in 16-byte units, f32 to bf16); combining bf16 rows into bf16; grouped GEMMs
/// over more experts than a warp has lanes. Ids, offsets, slot rows and permuted rows bit for bit.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class IlgpuMoeTests
{
    static Ops Ilgpu => ConformanceBackends.IlgpuCpu;

    static Ops Reference => ConformanceBackends.Reference;

    static DeviceRuntime Runtime => TestDevices.Cpu;

    [Theory]
    [InlineData(false), InlineData(true)]
    public void RoutingOfBf16LogitsWithSpecialValuesMatchesTheReference(bool softmax)
    {
        const int tokens = 5, experts = 256;
        var routing = new MoeRouting
        {
            Experts = experts, TopK = 8, Scoring = softmax ? MoeScoring.Softmax : MoeScoring.Sigmoid,
            Method = softmax ? MoeTopKMethod.GroupLimitedGreedy : MoeTopKMethod.NoAuxTc, Groups = 8, TopKGroups = 4,
            NormalizeTopK = true, RoutedScalingFactor = 2.5,
        };
        var logits = RandomValues(tokens * experts, 101, 4f);
        for (int e = 0; e < experts; e += 3)
            logits[experts + e] = logits[experts + 1]; // token 1: many ties
        logits[2 * experts + 7] = float.NegativeInfinity;
        logits[2 * experts + 200] = float.NegativeInfinity;
        logits[3 * experts + 77] = float.NaN;          // token 3: a NaN (softmax: every score NaN)
        logits[4 * experts + 3] = float.PositiveInfinity;
        var bf16 = logits.Select(v => (BFloat16)v).ToArray();
        using var dl = Runtime.Upload<BFloat16>(bf16);
        using var bias = Runtime.Upload<float>(RandomValues(experts, 102, 0.05f));
        using var ids = Runtime.Upload<int>(new int[tokens * routing.TopK]);
        using var weights = Runtime.Upload<float>(new float[tokens * routing.TopK]);
        using var refIds = Runtime.Upload<int>(new int[tokens * routing.TopK]);
        using var refWeights = Runtime.Upload<float>(new float[tokens * routing.TopK]);
        var biasView = softmax ? default : bias.View;
        Ilgpu.MoeRoute(dl.View, biasView, ids.View, weights.View, routing);
        Reference.MoeRoute(dl.View, biasView, refIds.View, refWeights.View, routing);
        Assert.Equal(refIds.ToArray(), ids.ToArray());
        var expected = refWeights.ToArray();
        var actual = weights.ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(expected[i]))
                Assert.True(float.IsNaN(actual[i]), $"weight {i}: {actual[i]}, the reference's is NaN");
            else
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5 * Math.Abs(expected[i]) + 1e-7, $"weight {i}: {actual[i]} vs {expected[i]}");
        }
    }

    [Theory]
    [InlineData("f32", "f32"), InlineData("bf16", "bf16")]
    public void PermutationsOfSeveralChunksMatchTheReferenceBitForBit(string xType, string permutedType)
    {
        const int tokens = 150, topK = 4, experts = 37, hidden = 24, slots = tokens * topK;
        var random = new Random(103);
        var expertIds = Enumerable.Range(0, slots).Select(_ => random.Next(experts) / 2 * 2).ToArray(); // odd experts get no rows
        var x = RandomValues(tokens * hidden, 104);
        using var dx = xType == "f32" ? Tensor(Runtime.Upload<float>(x)) : Tensor(Runtime.Upload<BFloat16>(x.Select(v => (BFloat16)v).ToArray()));
        using var dids = Runtime.Upload<int>(expertIds);
        Results Run(Ops ops)
        {
            var permuted = permutedType == "f32" ? Tensor(Runtime.Upload<float>(Nan(slots * hidden))) : Tensor(Runtime.Upload<BFloat16>(
                Enumerable.Repeat(BFloat16.NaN, slots * hidden).ToArray()));
            var offsets = Runtime.Upload<int>(new int[experts + 1]);
            var slotRows = Runtime.Upload<int>(new int[slots]);
            ops.MoePermute(dx.Tensor, dids.View, permuted.Tensor, offsets.View, slotRows.View, experts, topK);
            return new Results(permuted, offsets, slotRows);
        }
        using var ilgpu = Run(Ilgpu);
        using var reference = Run(Reference);
        Assert.Equal(reference.Offsets.ToArray(), ilgpu.Offsets.ToArray());
        Assert.Equal(reference.SlotRows.ToArray(), ilgpu.SlotRows.ToArray());
        Assert.Equal(reference.Permuted.Bytes(), ilgpu.Permuted.Bytes());
    }

    /// <summary>
    /// A caller's workspace (<see cref="Ops.MoePermuteWorkspaceBytes"/>) whose flag and status words start raised and whose
    /// histograms start as garbage: ILGPU's permutation puts the flag down itself and gives the reference's offsets, slot
    /// rows and rows bit for bit, twice in a row (the scan leaves the flag down for the next call); too small a workspace,
    /// or one overlapping an operand, is refused by the op API on every backend before anything runs.
    /// </summary>
    [Fact]
    public void ACallersPermutationWorkspaceGivesTheSameRowsAndIsChecked()
    {
        const int tokens = 300, topK = 3, experts = 20, hidden = 16, slots = tokens * topK;
        var random = new Random(109);
        var expertIds = Enumerable.Range(0, slots).Select(_ => random.Next(experts)).ToArray();
        using var x = Runtime.Upload<float>(RandomValues(tokens * hidden, 110));
        using var ids = Runtime.Upload<int>(expertIds);
        long bytes = Ops.MoePermuteWorkspaceBytes(slots, experts);
        Assert.Equal(16 * ((4 * (4 * experts + Math.Max(4 + 1, 2)) + 15) / 16), bytes); // 900 slots: 4 chunks of 256
        using var workspace = Runtime.Upload<int>(Enumerable.Repeat(1, (int)(bytes / 4)).ToArray());
        Results Run(Ops ops, DeviceView<int> ws)
        {
            var permuted = Tensor(Runtime.Upload<float>(Nan(slots * hidden)));
            var offsets = Runtime.Upload<int>(new int[experts + 1]);
            var slotRows = Runtime.Upload<int>(new int[slots]);
            ops.MoePermute(x.View, ids.View, permuted.Tensor, offsets.View, slotRows.View, experts, topK, ws);
            return new Results(permuted, offsets, slotRows);
        }
        using var reference = Run(Reference, default);
        for (int call = 0; call < 2; call++)
        {
            using var ilgpu = Run(Ilgpu, workspace.View);
            Assert.Equal(reference.Offsets.ToArray(), ilgpu.Offsets.ToArray());
            Assert.Equal(reference.SlotRows.ToArray(), ilgpu.SlotRows.ToArray());
            Assert.Equal(reference.Permuted.Bytes(), ilgpu.Permuted.Bytes());
        }

        using var permuted = Runtime.Upload<float>(Nan(slots * hidden));
        using var offsets = Runtime.Upload<int>(new int[experts + 1]);
        using var slotRows = Runtime.Upload<int>(new int[slots]);
        foreach (var ops in new[] { Ilgpu, Reference })
        {
            var small = Assert.Throws<ArgumentException>(() => ops.MoePermute(x.View, ids.View, permuted.View, offsets.View, slotRows.View, experts, topK,
                workspace.View.Slice(0, bytes / 4 - 4)));
            Assert.Equal("workspace", small.ParamName);
            Assert.Contains($"workspace holds {bytes - 16:N0} bytes; {slots} slots over {experts} experts need {bytes:N0} (MoePermuteWorkspaceBytes)", small.Message);
            var overlap = Assert.Throws<ArgumentException>(() => ops.MoePermute(x.View, ids.View, permuted.View, offsets.View, slotRows.View, experts, topK,
                slotRows.View));
            Assert.Contains("workspace overlaps slotRows", overlap.Message);
        }
        Assert.All(permuted.ToArray(), v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void PermutedRowsOfAnotherTypeThanXAreRefused()
    {
        using var x = Runtime.Upload<float>(RandomValues(2 * 8, 107));
        using var ids = Runtime.Upload<int>([0, 1]);
        using var permuted = Runtime.Upload<BFloat16>(Enumerable.Repeat(BFloat16.NaN, 2 * 8).ToArray());
        using var offsets = Runtime.Upload<int>(new int[3]);
        using var slotRows = Runtime.Upload<int>(new int[2]);
        var e = Assert.Throws<ArgumentException>(() => Ilgpu.MoePermute(x.View, ids.View, permuted.View, offsets.View, slotRows.View, 2, 1));
        Assert.Equal("permuted", e.ParamName);
        Assert.Contains("permuted holds bf16; it must hold x's f32 (rows are copied bit for bit)", e.Message);
    }

    [Fact]
    public void CombiningBf16RowsIntoBf16MatchesTheReference()
    {
        const int tokens = 6, topK = 3, hidden = 40, slots = tokens * topK;
        var random = new Random(105);
        var slotRows = Enumerable.Range(0, slots).OrderBy(_ => random.Next()).ToArray();
        using var output = Runtime.Upload<BFloat16>(RandomValues(slots * hidden, 106).Select(v => (BFloat16)v).ToArray());
        using var dslots = Runtime.Upload<int>(slotRows);
        using var dw = Runtime.Upload<float>(RandomValues(slots, 107, 0.4f));
        var initial = RandomValues(tokens * hidden, 108).Select(v => (BFloat16)v).ToArray();
        using var y = Runtime.Upload<BFloat16>(initial);
        using var refY = Runtime.Upload<BFloat16>(initial);
        Ilgpu.MoeCombine(output.View, dslots.View, dw.View, y.View, topK, accumulate: true);
        Reference.MoeCombine(output.View, dslots.View, dw.View, refY.View, topK, accumulate: true);
        var expected = refY.ToArray();
        var actual = y.ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            float e = (float)expected[i], a = (float)actual[i];
            Assert.True(Math.Abs(a - e) <= Math.Abs(e) * Math.Pow(2, -8) + 1e-6, $"element {i}: {a} vs {e}"); // one bf16 rounding apart at most
        }
    }

    [Theory]
    [InlineData("bf16", 40), InlineData("int4", 70)] // the gemv, then the tiled kernel
    public void GroupedGemmsOverMoreExpertsThanALaneCountMatchTheReference(string form, int m)
    {
        const int experts = 19, outFeatures = 10, inFeatures = 64;
        var random = new Random(109 + m);
        var offsets = new int[experts + 1];
        for (int e = 1; e < experts; e++)
            offsets[e] = random.Next(m + 1);
        offsets[experts] = m;
        Array.Sort(offsets);
        using var weight = new TestWeight(form, experts, outFeatures, inFeatures, 110, 128, 128, Runtime, 32);
        using var dx = Runtime.Upload<float>(RandomValues(m * inFeatures, 111));
        using var doffsets = Runtime.Upload<int>(offsets);
        using var y = Runtime.Upload<float>(Nan(m * outFeatures));
        using var refY = Runtime.Upload<float>(Nan(m * outFeatures));
        Ilgpu.GroupedLinear(dx.View, doffsets.View, weight.Matrix, y.View);
        Reference.GroupedLinear(dx.View, doffsets.View, weight.Matrix, refY.View);
        Close(refY.ToArray().Select(v => (double)v).ToArray(), y.ToArray(), $"GroupedLinear {form} over {experts} experts", 1e-5, 1e-5);
    }

    static Owned Tensor(DeviceBuffer<float> buffer) =>
        new(buffer, buffer, () => System.Runtime.InteropServices.MemoryMarshal.AsBytes<float>(buffer.ToArray()).ToArray());

    static Owned Tensor(DeviceBuffer<BFloat16> buffer) =>
        new(buffer, buffer, () => System.Runtime.InteropServices.MemoryMarshal.AsBytes<BFloat16>(buffer.ToArray()).ToArray());

    sealed class Owned(IDisposable buffer, DeviceTensor tensor, Func<byte[]> bytes) : IDisposable
    {
        public DeviceTensor Tensor { get; } = tensor;

        public byte[] Bytes() => bytes();

        public void Dispose() => buffer.Dispose();
    }

    sealed class Results(Owned permuted, DeviceBuffer<int> offsets, DeviceBuffer<int> slotRows) : IDisposable
    {
        public Owned Permuted => permuted;
        public DeviceBuffer<int> Offsets => offsets;
        public DeviceBuffer<int> SlotRows => slotRows;

        public void Dispose()
        {
            permuted.Dispose();
            offsets.Dispose();
            slotRows.Dispose();
        }
    }
}
