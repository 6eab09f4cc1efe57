using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// <see cref="DeepSeekKernels.Ops.WithReferenceFallback"/> runs what the backend does not support on the reference, on
/// the same device views, after the kernels enqueued before it, and reports each signature with its calls and the bytes
/// staged between device and host: none on ILGPU's CPU accelerator (in place), every operand both ways on a GPU, where
/// the results must still equal the reference's exactly. The backends are stubs (<see cref="StubBackend"/>), so the
/// tests do not depend on which kernels ILGPU has.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class FallbackTests
{
    static OpSignature LinearOf(ElementType weight) =>
        new("Linear", ElementType.F32) { Scheme = weight == ElementType.Fp8E4M3 ? WeightScheme.Fp8Block : WeightScheme.Dense, Weight = weight };

    [Fact]
    public void AFallbackOpSeesTheKernelsEnqueuedBeforeIt()
    {
        // RMSNorm on the real ILGPU kernel, Linear (unsupported by the stub) on the reference, on the same buffers
        var stub = new StubBackend(op => op.Op == "RmsNorm", inner: new IlgpuBackend(CpuRuntime));
        var ops = DeepSeekKernels.Ops.Over(CpuRuntime, stub, referenceFallback: true);
        using var w = new TestWeight("fp8", 1, 40, 24, seed: 3, blockRows: 16, blockCols: 16);
        using var norm = Upload(RandomValues(24, 4, 0.3f));
        using var x = Upload(RandomValues(3 * 24, 5));
        using var h = Poisoned(3 * 24);
        using var y = Poisoned(3 * 40);
        using var expectedY = Poisoned(3 * 40);

        ops.RmsNorm(x.View, norm.View, h.View, 24, 1e-6f);
        ops.Linear(h.View, w.Matrix, default, y.View);
        Assert.Equal(1, stub.RmsNormCalls);
        Assert.Equal(0, stub.LinearCalls);
        Assert.Equal([new FallbackRecord(LinearOf(ElementType.Fp8E4M3), 1, 0)], ops.FallbackReport);
        ReferenceOps.Linear(h.View, w.Matrix, default, expectedY.View);
        Exact(expectedY.ToArray(), y.ToArray(), "fallback Linear");
    }

    [Fact]
    public void OnTheCpuAcceleratorTheFallbackStagesNothing()
    {
        var ops = DeepSeekKernels.Ops.Over(CpuRuntime, new StubBackend(_ => false), referenceFallback: true);
        using var weight = new TestWeight("f32", 1, 40, 24, seed: 7);
        using var x = Upload(RandomValues(3 * 24, 8));
        using var y = Poisoned(3 * 40);
        using var table = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 8, 16);
        using var positions = Upload(new[] { 0, 1, 2 });
        ops.Linear(x.View, weight.Matrix, default, y.View);
        ops.Rope(y.View, positions.View, table, 5, 8, 0, RopeLayout.HalfSplit);
        ops.Rope(y.View, positions.View, table, 5, 8, 0, RopeLayout.HalfSplit);
        ops.Scale(y.View, 0.5f, y.View);
        Assert.Equal(
            [new FallbackRecord(LinearOf(ElementType.F32), 1, 0), new FallbackRecord(new OpSignature("Rope", ElementType.F32), 2, 0),
                new FallbackRecord(new OpSignature("Scale", ElementType.F32), 1, 0)],
            ops.FallbackReport);
    }

    /// <summary>On a GPU the reference stages device views through host memory: results must equal the CPU reference's, and the bytes are counted.</summary>
    [Fact]
    public void OnAGpuTheFallbackStagesThroughTheHost()
    {
        var cuda = TestDevices.RequireCuda();
        var gpu = DeepSeekKernels.Ops.Over(cuda, new StubBackend(_ => false), referenceFallback: true);
        var cpu = ReferenceOps;
        const int tokens = 3, hidden = 24, outFeatures = 40;

        using var weight = new TestWeight("f32", 1, outFeatures, hidden, seed: 7);
        var xValues = RandomValues(tokens * hidden, 8);

        using var gx = cuda.Upload<float>(xValues);
        using var gw = cuda.Upload<float>(weight.Values);
        using var gy = cuda.Upload<float>(Nan(tokens * outFeatures));
        gpu.Linear(gx.View, WeightMatrix.Dense(gw.View, outFeatures, hidden), default, gy.View);
        using var cx = Upload(xValues);
        using var cw = Upload(weight.Values);
        using var cy = Poisoned(tokens * outFeatures);
        cpu.Linear(cx.View, WeightMatrix.Dense(cw.View, outFeatures, hidden), default, cy.View);
        Exact(cy.ToArray(), gy.ToArray(), "GPU-staged Linear");
        // x down, y down and back (a tensor output is staged whole), the weight down: (72 + 2 * 120 + 960) floats
        const long linearBytes = (tokens * hidden + 2 * tokens * outFeatures + outFeatures * hidden) * sizeof(float);
        Assert.Equal([new FallbackRecord(LinearOf(ElementType.F32), 1, linearBytes)], gpu.FallbackReport);

        // Rope and attention in place / into a poisoned output
        using var gTable = RopeTable.Create(cuda, RopeScaling.Plain(10000), 8, 16);
        using var cTable = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), 8, 16);
        using var gp = cuda.Upload<int>(new[] { 0, 1, 2 });
        using var cp = Upload(new[] { 0, 1, 2 });
        gpu.Rope(gy.View, gp.View, gTable, 5, 8, 0, RopeLayout.HalfSplit);
        cpu.Rope(cy.View, cp.View, cTable, 5, 8, 0, RopeLayout.HalfSplit);
        Exact(cy.ToArray(), gy.ToArray(), "GPU-staged Rope");
        using var go = cuda.Upload<float>(Nan(tokens * 5 * 8));
        using var co = Poisoned(tokens * 5 * 8);
        gpu.Attention(gy.View, gy.View, gy.View, go.View, 5, 5, 8, 8, tokens, 0, 0.35f);
        cpu.Attention(cy.View, cy.View, cy.View, co.View, 5, 5, 8, 8, tokens, 0, 0.35f);
        Exact(co.ToArray(), go.ToArray(), "GPU-staged Attention");
        Assert.Equal(["Attention", "Linear", "Rope"], gpu.FallbackReport.Select(r => r.Signature.Op));
        Assert.All(gpu.FallbackReport, r => Assert.True(r.Calls == 1 && r.StagedBytes > 0, r.ToString()));
        // Rope: positions down, x down and back
        Assert.Equal(3 * sizeof(int) + 2 * tokens * 5 * 8 * sizeof(float), gpu.FallbackReport.Single(r => r.Signature.Op == "Rope").StagedBytes);

        // FP8 weights, an expert stack (staged one used expert at a time) and an embedding (staged row by row)
        using var gpuExperts = new TestWeight("fp8", 3, 40, 24, seed: 9, blockRows: 16, blockCols: 16, runtime: cuda);
        using var cpuExperts = new TestWeight("fp8", 3, 40, 24, seed: 9, blockRows: 16, blockCols: 16);
        int[] offsets = [0, 2, 2, 3];
        using var gOffsets = cuda.Upload<int>(offsets);
        using var cOffsets = Upload(offsets);
        using var gGrouped = cuda.Upload<float>(Nan(tokens * outFeatures));
        using var cGrouped = Poisoned(tokens * outFeatures);
        gpu.GroupedLinear(gx.View, gOffsets.View, gpuExperts.Matrix, gGrouped.View);
        cpu.GroupedLinear(cx.View, cOffsets.View, cpuExperts.Matrix, cGrouped.View);
        Exact(cGrouped.ToArray(), gGrouped.ToArray(), "GPU-staged GroupedLinear");

        using var gpuTable = new TestWeight("bf16", 1, 50, 24, seed: 10, runtime: cuda);
        using var cpuTable = new TestWeight("bf16", 1, 50, 24, seed: 10);
        int[] ids = [49, 0, 7];
        using var gIds = cuda.Upload<int>(ids);
        using var cIds = Upload(ids);
        using var gEmbedded = cuda.Upload<float>(Nan(tokens * hidden));
        using var cEmbedded = Poisoned(tokens * hidden);
        gpu.Embedding(gIds.View, gpuTable.Matrix, gEmbedded.View);
        cpu.Embedding(cIds.View, cpuTable.Matrix, cEmbedded.View);
        Exact(cEmbedded.ToArray(), gEmbedded.ToArray(), "GPU-staged Embedding");
        // ids down, y down and back, one bf16 table row per id: not the whole vocabulary
        var embedding = gpu.FallbackReport.Single(r => r.Signature.Op == "Embedding");
        Assert.Equal(3 * sizeof(int) + 2 * tokens * hidden * sizeof(float) + 3 * 24 * 2, embedding.StagedBytes);
        using var badIds = cuda.Upload<int>(new[] { 3, 50, 1 });
        Throws<ArgumentOutOfRangeException>(() => gpu.Embedding(badIds.View, gpuTable.Matrix, gEmbedded.View), "tokenIds", "tokenIds[1] = 50");
    }
}
