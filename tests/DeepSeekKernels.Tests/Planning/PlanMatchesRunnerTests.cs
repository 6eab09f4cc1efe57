using DeepSeekKernels.Runtime;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Models;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Planning;

/// <summary>
/// `dsk plan`'s KV cache, attention workspace, activation and RoPE lines are what the runner allocates for the same
/// context, batch and KV element type on a GPU backend (ILGPU here, on its CPU accelerator): the KV arena (pools, step
/// metadata and the attention ops' split-K workspace; none for the host backends) and
/// the workspace arena (the MoE permutation's workspace included), each filled exactly by the buffers carved from it, and
/// the RoPE tables of the loaded model.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class PlanMatchesRunnerTests
{
    [Theory]
    [InlineData("deepseek_v3", 100, 3, "f32", 32)]
    [InlineData("deepseek_v2_lite", 64, 1, "bf16", 256)]
    [InlineData("llama", 37, 5, "bf16", 16)]
    [InlineData("qwen2", 300, 2, "f32", 256)]
    [InlineData("dsv3-pydoc-tiny", 513, 4, "bf16", 256)]
    public void ThePlansLinesAreTheRunnersAllocations(string name, int context, int batch, string kv, int chunk)
    {
        var type = kv == "f32" ? ElementType.F32 : ElementType.BF16;
        string folder = CheckpointFixtures.Folder(name);
        // ILGPU (on its CPU accelerator): a GPU backend, whose attention kernels take the cache's workspace
        using var model = ModelLoader.Load(folder, Ops.Create(TestDevices.Cpu, Backend.Ilgpu), chunk, contextLength: context);
        using var cache = model.CreatePagedCache(model.CacheLayout(context, batch, type));

        var shape = model.Shape;
        var plan = MemoryPlan.Compute(ParameterInventory.Of(shape), DeepSeekKernels.Quantization.WeightQuantization.None,
            new PlanRequest(context, batch, long.MaxValue, PrefillChunk: chunk, KvCacheType: type));
        long Line(string item) => plan.Lines.Single(l => l.Item == item).Bytes;
        Assert.Equal(cache.AllocatedBytes, Line("KV cache") + Line("attention workspace"));
        Assert.Equal(cache.Layout.AttentionWorkspaceBytes, Line("attention workspace"));
        Assert.Equal(cache.AllocatedBytes, cache.ArenaUsedBytes); // the buffers carved from the arena fill it exactly
        Assert.Equal(model.WorkspaceBytes, Line("activations"));
        Assert.Equal(model.WorkspaceBytes, model.WorkspaceUsedBytes);
        Assert.Equal(model.RopeTableBytes, Line("RoPE cos/sin tables"));
        // and the cache really holds batch sequences of the whole context at once
        for (int b = 0; b < batch; b++)
            cache.Blocks.Reserve(cache.AddSequence(), context);
        Assert.Equal(cache.Layout.Pages - batch * cache.Layout.TableWidth, cache.Blocks.FreePages);

        // the host backends keep their attention scratch on the host: a cache made for them carves no workspace
        using var onCpu = ModelLoader.Load(folder, Ops.CreateCpu(TestDevices.Cpu, 1), chunk, contextLength: context);
        var cpuLayout = onCpu.CacheLayout(context, batch, type);
        Assert.Equal(0, cpuLayout.AttentionWorkspaceBytes);
        Assert.Equal(cache.Layout.Bytes - cache.Layout.AttentionWorkspaceBytes, cpuLayout.Bytes);
    }

    /// <summary>
    /// `dsk plan --device cpu` (<see cref="PlanRequest.OnCpu"/>): the KV line is what the CPU backend's cache allocates (no
    /// attention workspace), the activation and RoPE lines the loaded model's, and the KV line is also what the loader's fit
    /// check counts for the same cache (<see cref="KvCacheRequest"/>), so the plan and a refusal agree.
    /// </summary>
    [Theory]
    [InlineData("deepseek_v3", 100, 3, 32)]
    [InlineData("llama", 37, 5, 16)]
    public void TheCpuPlansLinesAreTheCpuRunnersAllocations(string name, int context, int batch, int chunk)
    {
        string folder = CheckpointFixtures.Folder(name);
        var ops = Ops.CreateCpu(TestDevices.Cpu, 1);
        using var model = ModelLoader.Load(folder, ops, chunk, contextLength: context);
        using var cache = model.CreatePagedCache(model.CacheLayout(context, batch, ElementType.F32));
        var plan = MemoryPlan.Compute(ParameterInventory.Of(model.Shape), DeepSeekKernels.Quantization.WeightQuantization.None,
            new PlanRequest(context, batch, long.MaxValue, PrefillChunk: chunk, KvCacheType: ElementType.F32, OnCpu: true));
        long Line(string item) => plan.Lines.Single(l => l.Item == item).Bytes;
        Assert.Equal(cache.AllocatedBytes, Line("KV cache"));
        Assert.Equal(0, Line("attention workspace"));
        Assert.Equal(model.WorkspaceBytes, Line("activations"));
        Assert.Equal(model.RopeTableBytes, Line("RoPE cos/sin tables"));
        Assert.Equal(PlanRequest.CpuProcessAllowanceBytes, Line("the dsk process"));
        Assert.DoesNotContain(plan.Lines, l => l.Item.Contains("CUDA", StringComparison.Ordinal));

        var refused = Assert.Throws<ModelDoesNotFitException>(() => ModelLoader.Load(folder, ops, chunk, memoryBudgetBytes: 1,
            contextLength: context, kvCache: new KvCacheRequest(batch, ElementType.F32)));
        Assert.Equal(Line("KV cache"), refused.Needed.KvCache);
    }

    /// <summary>With FP8 (W8A8) prefill the workspace also holds the FP8 inputs and their scales: the plan counts them alike.</summary>
    [Theory]
    [InlineData("deepseek_v3_fp8", 64), InlineData("llama", 16)]
    public void TheActivationLineCountsTheFp8InputsWhenAsked(string name, int chunk)
    {
        using var model = ModelLoader.Load(CheckpointFixtures.Folder(name), Ops.Create(TestDevices.Cpu, Backend.Reference), chunk, contextLength: 100,
            fp8Activations: true);
        var request = new PlanRequest(100, 1, long.MaxValue, PrefillChunk: chunk, Fp8Activations: true);
        var plan = MemoryPlan.Compute(ParameterInventory.Of(model.Shape), DeepSeekKernels.Quantization.WeightQuantization.None, request);
        long line = plan.Lines.Single(l => l.Item == "activations").Bytes;
        Assert.Equal(model.WorkspaceBytes, line);
        Assert.Equal(model.WorkspaceBytes, model.WorkspaceUsedBytes);
        long without = MemoryPlan.Compute(ParameterInventory.Of(model.Shape), DeepSeekKernels.Quantization.WeightQuantization.None, request with { Fp8Activations = false })
            .Lines.Single(l => l.Item == "activations").Bytes;
        // a linear layer's widest input, or with routed experts their top-k slot rows (the wider of hidden and moe_intermediate)
        var sh = model.Shape;
        long linear = Math.Max(Math.Max(sh.Hidden, sh.QLoraRank ?? 0), Math.Max(sh.IsMla ? (long)sh.Heads * sh.VHeadDim : (long)sh.Heads * sh.HeadDim,
            Math.Max(sh.Intermediate, sh.Experts > 0 ? (long)sh.MoeIntermediate * Math.Max(1, sh.SharedExperts) : 0)));
        long wide = Math.Max(sh.Hidden, sh.MoeIntermediate);
        long inputs = sh.Experts > 0 ? Math.Max(linear, (long)sh.ExpertsPerToken * wide) : linear;
        long scales = sh.Experts > 0 ? Math.Max((linear + 127) / 128, sh.ExpertsPerToken * ((wide + 127) / 128)) : (linear + 127) / 128;
        Assert.Equal(DeviceArena.Align(chunk * inputs) + DeviceArena.Align(4L * chunk * scales), line - without);
    }
}
