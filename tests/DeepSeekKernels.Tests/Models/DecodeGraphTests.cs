using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// CausalLanguageModel.DecodeGraphs: decode steps replayed from CUDA graphs give the logits of the same steps launched
/// directly, bit for bit (single sequence through Forward, a batch of sequences through the scheduler with prefill chunks
/// and decode steps mixed, which only the pure decode steps replay), on the native and ILGPU-CUDA backends; the first decode
/// step of a batch size runs directly, every later one replays (the second is captured first). On ILGPU's CPU accelerator it
/// is refused.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class DecodeGraphTests
{
    [Fact]
    public void OnTheCpuAcceleratorDecodeGraphsAreRefusedAndOffChangesNothing()
    {
        using var model = ModelLoader.Load(CheckpointFixtures.Folder("llama"), Ops.Create(TestDevices.Cpu, Backend.Ilgpu));
        var e = Assert.Throws<NotSupportedException>(() => model.DecodeGraphs = true);
        Assert.Contains("CUDA graphs", e.Message);
        Assert.False(model.DecodeGraphs);
        model.DecodeGraphs = false;
        Assert.Equal(0, model.DecodeGraphReplays);
        Assert.Null(model.DecodeGraphFailure);
    }

    public static TheoryData<Backend, string, ElementType> GpuCases() => new()
    {
        { Backend.Native, "deepseek_v3", ElementType.F32 },
        { Backend.Native, "llama", ElementType.BF16 },
        { Backend.Native, "deepseek_v2_lite", ElementType.BF16 },
        { Backend.Ilgpu, "deepseek_v3", ElementType.F32 },
        { Backend.Ilgpu, "qwen2", ElementType.BF16 },
    };

    [DeviceTheory, NeedsCudaGpu]
    [MemberData(nameof(GpuCases))]
    public void ReplayedDecodeStepsGiveTheDirectStepsLogits(Backend backend, string name, ElementType activations)
    {
        var runtime = backend == Backend.Native ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        var ops = Ops.Create(runtime, backend);
        string folder = CheckpointFixtures.Folder(name);
        using var model = ModelLoader.Load(folder, ops, activations: activations);
        int vocab = model.Shape.Vocab;
        int[] prompt = [3, 1, 4, 1, 5, 9, 2, 6];
        const int steps = 8;

        float[][] Run(bool graphs)
        {
            model.DecodeGraphs = graphs;
            using var cache = model.CreateCache(prompt.Length + steps + 1, activations);
            var logits = new float[vocab];
            var seen = new List<float[]>();
            model.Forward(prompt, cache, logits);
            for (int i = 0; i < steps; i++)
            {
                int next = Sampler.ArgMax(logits);
                model.Forward([next], cache, logits);
                seen.Add((float[])logits.Clone());
            }
            return [.. seen];
        }

        var direct = Run(false);
        var replayed = Run(true);
        Assert.Null(model.DecodeGraphFailure);
        Assert.Equal(steps - 1, model.DecodeGraphReplays); // the first decode step runs directly, the second is captured and replayed
        for (int i = 0; i < steps; i++)
            Assert.True(direct[i].AsSpan().SequenceEqual(replayed[i]), $"{ops.Label} {name}: decode step {i} differs with graphs");

        // A batch of three through the scheduler: their prefills and the decode steps mixed with them run directly, the
        // steps where all three decode replay the graph of batch 3; the outputs are the direct run's.
        List<int>[] Batch(bool graphs)
        {
            model.DecodeGraphs = graphs;
            using var pool = model.CreatePagedCache(model.CacheLayout(64, 3, activations));
            var scheduler = new BatchScheduler(model, null, pool);
            var results = new List<int>[3];
            for (int r = 0; r < 3; r++)
            {
                int index = r;
                scheduler.Add([.. prompt.Take(3 + 2 * r)], new GenerationOptions { MaxNewTokens = 6 + r },
                    onFinished: result => results[index] = [.. result.GeneratedIds]);
            }
            scheduler.RunToCompletion();
            return results;
        }
        var batchDirect = Batch(false);
        long before = model.DecodeGraphReplays;
        var batchReplayed = Batch(true);
        Assert.Equal(batchDirect, batchReplayed);
        Assert.True(model.DecodeGraphReplays > before, "no batched decode step was replayed");
        Assert.Null(model.DecodeGraphFailure);
    }
}
