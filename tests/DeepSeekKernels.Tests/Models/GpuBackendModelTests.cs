using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// A whole model on a GPU backend: RMSNorm (and, on the native kernels, the linear layers and the embedding) on the GPU
/// kernels, every op they lack on the reference through the fallback (staged through the host), the weights in GPU
/// memory. The logits must still match the golden.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class GpuBackendModelTests
{
    /// <summary>
    /// The same mix as on a GPU, where it runs everywhere: ILGPU's kernels on the CPU accelerator (RMSNorm, the small ops,
    /// Linear, HeadwiseLinear, Embedding, and attention: Rope, KvAppend, PagedAttention, PagedMlaAttention), the rest on the
    /// reference; every fixture: two dense GQA models, an MLA model, and MLA + MoE models (bf16 and FP8 weights).
    /// </summary>
    [Theory]
    [InlineData("llama"), InlineData("qwen2"), InlineData("deepseek_v2_lite"), InlineData("deepseek_v3"), InlineData("deepseek_v3_fp8")]
    public void IlgpuKernelsMixWithTheReferenceOnTheCpuAccelerator(string name)
    {
        var ops = Ops.Create(TestDevices.Cpu, Backend.Ilgpu).WithReferenceFallback();
        Check(ops, name);
    }

    [DeviceTheory, NeedsCudaGpu]
    [InlineData(Backend.Native, "deepseek_v3"), InlineData(Backend.Ilgpu, "deepseek_v3"), InlineData(Backend.Native, "llama")]
    public void LogitsMatchTheGoldenOnTheGpu(Backend backend, string name)
    {
        var runtime = backend == Backend.Native ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        Check(Ops.Create(runtime, backend).WithReferenceFallback(), name);
    }

    /// <summary>The ops a model's attention block calls.</summary>
    internal static readonly string[] AttentionOps = [nameof(Ops.Rope), nameof(Ops.KvAppend), nameof(Ops.PagedAttention), nameof(Ops.PagedMlaAttention)];

    static void Check(Ops ops, string name)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        using var model = ModelLoader.Load(folder, ops);
        int vocab = model.Shape.Vocab;
        using var cache = model.CreateCache(ids.Length);
        var logits = new float[ids.Length * vocab];
        model.Forward(ids, cache, logits, allPositions: true);
        for (int p = 0; p < ids.Length; p++)
        {
            double error = ModelTestSupport.RelativeError(logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab));
            Assert.True(error < 1e-3, $"{ops.Backend} {name}: position {p}: relative error {error:E2}");
        }
        var fellBack = ops.FallbackReport.Select(r => r.Signature.Op).ToArray();
        Assert.DoesNotContain(nameof(Ops.RmsNorm), fellBack);
        // what fell back is what the backend refuses; both GPU backends run the linear layers and the embedding themselves
        Assert.All(ops.FallbackReport, r => Assert.False(ops.Supports(r.Signature), $"{r.Signature} fell back although {ops.Backend} supports it"));
        Assert.All((string[])[nameof(Ops.Linear), nameof(Ops.HeadwiseLinear), nameof(Ops.Embedding)], op => Assert.DoesNotContain(op, fellBack));
        // ILGPU runs the model's attention itself (issue 12): nothing of it fell back
        if (ops.Backend == Backend.Ilgpu)
            Assert.All(AttentionOps, op => Assert.DoesNotContain(op, fellBack));
        // every fallback call stages its operands through the host on a GPU; on the CPU accelerator nothing moves
        Assert.All(ops.FallbackReport, r => Assert.True(r.Calls > 0 && (ops.Runtime!.IsCuda ? r.StagedBytes > 0 : r.StagedBytes == 0), r.ToString()));
    }
}
