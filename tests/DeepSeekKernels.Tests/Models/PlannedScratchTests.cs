using DeepSeekKernels.Generation;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Models;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// The runner's steps allocate nothing beyond `dsk plan`'s lines: the attention ops take their split-K scratch from the KV
/// cache's arena (<see cref="PagedBatch.Workspace"/>) and the MoE permutation its histograms from the model's workspace,
/// so the kernels' own grow-on-demand scratch stays empty through prefill chunks, decode steps and a batch of requests
/// (on ILGPU's CPU accelerator here; natively and on ILGPU-CUDA on a GPU). A direct op call without a workspace still
/// grows the backend's own, which shows the count is live.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class PlannedScratchTests
{
    /// <summary>Greedy generation of three requests together (prefill chunks of 16 and decode steps mixed) and one alone.</summary>
    static void Generate(CausalLanguageModel model)
    {
        using var pool = model.CreatePagedCache(model.CacheLayout(96, 3));
        var scheduler = new BatchScheduler(model, null, pool);
        int finished = 0;
        for (int r = 0; r < 3; r++)
            scheduler.Add([.. Enumerable.Range(1, 20 + 9 * r)], new GenerationOptions { MaxNewTokens = 2 + r }, onFinished: _ => finished++);
        scheduler.RunToCompletion();
        Assert.Equal(3, finished);
        Assert.Equal(3, ModelTestSupport.Greedy(model, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4], 3).Length);
    }

    [Theory]
    [InlineData("deepseek_v3")]      // MLA (page 64) and MoE
    [InlineData("deepseek_v2_lite")] // MLA and V2's routing
    [InlineData("llama")]            // GQA (page 16)
    public void OnIlgpuTheKernelsOwnScratchStaysEmpty(string name)
    {
        var runtime = TestDevices.Cpu;
        var backend = new IlgpuBackend(runtime);
        using var model = ModelLoader.Load(CheckpointFixtures.Folder(name), Ops.Over(runtime, backend), chunkTokens: 16);
        Generate(model);
        runtime.Synchronize();
        Assert.Equal(0, backend.OwnScratchBytes);

        // the count is live: the same attention without a workspace grows the backend's own split scratch
        using var cache = model.CreatePagedCache(model.CacheLayout(96, 1));
        int sequence = cache.AddSequence();
        cache.Blocks.Reserve(sequence, 80);
        var layout = cache.Layout;
        int width = layout.KeyWidth, heads = model.Shape.Heads;
        var pages = cache.Blocks.PagesOf(sequence);
        using var table = runtime.Upload<int>([.. Enumerable.Range(0, layout.TableWidth).Select(j => j < pages.Count ? pages[j] : -1)]);
        using var lengths = runtime.Upload<int>([80]);
        using var starts = runtime.Upload<int>([0, 1]);
        var batch = new PagedBatch(table.View, lengths.View, starts.View);
        if (model.Shape.IsMla)
        {
            using var q = runtime.Allocate<float>((long)heads * width);
            using var y = runtime.Allocate<float>((long)heads * model.Shape.KvLoraRank);
            q.View.Clear();
            model.Ops.PagedMlaAttention(q.AsTensor(1, heads, width), cache.KeyPages(0), batch, y.AsTensor(1, heads, model.Shape.KvLoraRank), 0.1f);
        }
        else
        {
            int d = model.Shape.HeadDim;
            using var q = runtime.Allocate<float>((long)heads * d);
            using var y = runtime.Allocate<float>((long)heads * d);
            q.View.Clear();
            model.Ops.PagedAttention(q.AsTensor(1, heads, d), cache.KeyPages(0), cache.ValuePages(0), batch, y.AsTensor(1, heads, d), model.Shape.KvHeads, 0.1f);
        }
        runtime.Synchronize();
        Assert.True(backend.OwnScratchBytes > 0, "a call without a workspace should have grown the backend's own scratch");
    }

    public static TheoryData<string, string, ElementType> GpuCases()
    {
        var data = new TheoryData<string, string, ElementType>();
        foreach (string backend in new[] { "native", "ilgpu" })
        {
            data.Add(backend, "deepseek_v3", ElementType.F32);
            data.Add(backend, "deepseek_v2_lite", ElementType.BF16);
            data.Add(backend, "qwen2", ElementType.BF16);
        }
        return data;
    }

    /// <summary>The same on a GPU, natively (the hand kernels' KernelWorkspaces) and on ILGPU-CUDA.</summary>
    [DeviceTheory, NeedsCudaGpu]
    [MemberData(nameof(GpuCases))]
    public void OnAGpuTheKernelsOwnScratchStaysEmpty(string backendName, string name, ElementType activations)
    {
        var runtime = backendName == "native" ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        KernelBackend backend = backendName == "native" ? new NativeBackend(runtime) : new IlgpuBackend(runtime);
        using var model = ModelLoader.Load(CheckpointFixtures.Folder(name), Ops.Over(runtime, backend), chunkTokens: 16, activations: activations);
        Generate(model);
        runtime.Synchronize();
        Assert.Equal(0, backend is NativeBackend native ? native.OwnScratchBytes : ((IlgpuBackend)backend).OwnScratchBytes);
    }
}
