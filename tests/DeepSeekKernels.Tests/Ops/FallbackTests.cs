using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Strict Ops refuse an op their backend lacks, naming both; <see cref="DeepSeekKernels.Ops.WithReferenceFallback"/>
/// runs it on the reference, on the same device views, and lists it in FallbackOps; ops the backend has still run
/// there. On a GPU the fallback stages through host memory and must give the reference's results exactly.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class FallbackTests
{
    [Fact]
    public void StrictIlgpuRefusesLinearByName()
    {
        var ops = DeepSeekKernels.Ops.Create(Cpu, Backend.Ilgpu);
        using var w = new TestWeight("bf16", 1, 4, 6, seed: 1);
        using var x = Upload(RandomValues(12, 2));
        using var y = Poisoned(8);
        var e = Assert.Throws<NotSupportedException>(() => ops.Linear(x.View, w.Matrix, default, y.View));
        Assert.StartsWith("Linear is not implemented on the Ilgpu backend", e.Message);
        Assert.Contains("WithReferenceFallback", e.Message);
        Assert.False(ops.ReferenceFallback);
        Assert.Empty(ops.FallbackOps);
        AllNaN(y.ToArray(), "destination");
    }

    [Fact]
    public void WithReferenceFallbackRunsTheOpAndListsIt()
    {
        var strict = DeepSeekKernels.Ops.Create(Cpu, Backend.Ilgpu);
        var ops = strict.WithReferenceFallback();
        Assert.True(ops.ReferenceFallback);
        Assert.Equal(Backend.Ilgpu, ops.Backend);
        Assert.Same(Cpu, ops.Runtime);
        using var w = new TestWeight("fp8", 1, 40, 24, seed: 3, blockRows: 16, blockCols: 16);
        using var norm = Upload(RandomValues(24, 4, 0.3f));
        using var x = Upload(RandomValues(3 * 24, 5));
        using var h = Poisoned(3 * 24);
        using var y = Poisoned(3 * 40);
        using var expectedY = Poisoned(3 * 40);

        // RmsNorm (an ILGPU kernel) then Linear (the reference, after waiting for the kernel) on the same buffers
        ops.RmsNorm(x.View, norm.View, h.View, 24, 1e-6f);
        ops.Linear(h.View, w.Matrix, default, y.View);
        Assert.Equal(["Linear"], ops.FallbackOps);
        ReferenceOps.Linear(h.View, w.Matrix, default, expectedY.View);
        Exact(expectedY.ToArray(), y.ToArray(), "fallback Linear");

        using var table = RopeTable.Create(Cpu, RopeScaling.Plain(10000), 8, 16);
        using var positions = Upload(new[] { 3, 4, 5 });
        ops.Rope(y.View, positions.View, table, 5, 8, 0, RopeLayout.Interleaved);
        Assert.Equal(["Linear", "Rope"], ops.FallbackOps); // sorted, each once
        ops.Linear(h.View, w.Matrix, default, y.View);
        Assert.Equal(["Linear", "Rope"], ops.FallbackOps);
        Assert.Empty(strict.FallbackOps); // the strict Ops it came from is unchanged

        var flagged = DeepSeekKernels.Ops.Create(Cpu, Backend.Ilgpu, referenceFallback: true);
        Assert.True(flagged.ReferenceFallback);
        flagged.Linear(h.View, w.Matrix, default, y.View);
        Assert.Equal(["Linear"], flagged.FallbackOps);
    }

    [Fact]
    public void BackendsSayWhatTheyImplement()
    {
        var ilgpu = DeepSeekKernels.Ops.Create(Cpu, Backend.Ilgpu);
        Assert.True(ilgpu.Implements("RmsNorm"));
        Assert.True(ilgpu.Implements("AddRmsNorm"));
        Assert.False(ilgpu.Implements("Linear"));
        var reference = ReferenceOps;
        Assert.All(DeepSeekKernels.Ops.OpNames, op => Assert.True(reference.Implements(op), op));
        Assert.Equal(21, DeepSeekKernels.Ops.OpNames.Count);
        Assert.Same(reference.GetType(), reference.WithReferenceFallback().GetType());
        Assert.Empty(reference.WithReferenceFallback().FallbackOps);
    }

    /// <summary>On a GPU the reference stages device views through host memory: results must equal the CPU reference's.</summary>
    [Fact]
    public void OnAGpuTheFallbackStagesThroughTheHost()
    {
        var cuda = TestDevices.RequireCuda();
        var gpu = DeepSeekKernels.Ops.Create(cuda, Backend.Ilgpu).WithReferenceFallback();
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

        // Rope and attention in place / into a poisoned output
        using var gTable = RopeTable.Create(cuda, RopeScaling.Plain(10000), 8, 16);
        using var cTable = RopeTable.Create(Cpu, RopeScaling.Plain(10000), 8, 16);
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
        Assert.Equal(["Attention", "Linear", "Rope"], gpu.FallbackOps);

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
        using var badIds = cuda.Upload<int>(new[] { 3, 50, 1 });
        Throws<ArgumentOutOfRangeException>(() => gpu.Embedding(badIds.View, gpuTable.Matrix, gEmbedded.View), "tokenIds", "tokenIds[1] = 50");
    }
}
