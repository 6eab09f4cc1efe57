using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// A forward pass on the CPU backend allocates (next to) nothing once warm: per-call garbage on the step path (host images,
/// closures, check messages, scratch arrays; a native gate|up block per MLP call) made the peak RSS of <c>dsk bench</c> exceed
/// the weights by far more than the activations and the cache need (issue 14). Bytes are counted on every thread
/// (<see cref="GC.GetTotalAllocatedBytes"/>, precise) and on the calling one; the collection runs alone, so no other test's
/// allocations mix in. f32 activations (the CPU default); the Llama fixture (3 layers) and the DeepSeek-V3 and V2-Lite ones (MLA,
/// MoE: 9.7 and 8.6 KB a decode token before the CPU backend ran MoE routing, permutation, combine and column copies in place,
/// their reference scratch came from a pool, the MoE and attention checks stopped formatting their messages up front and the MoE
/// block kept its scratch views).
/// </summary>
[Collection(nameof(DeviceCollection))]
public sealed class CpuBackendAllocationTests
{
    /// <summary>Bytes per decode token allowed, whole process: was about 29 KB (Llama) before the step path stopped allocating.</summary>
    const int DecodeBytesPerToken = 1024;

    /// <summary>Bytes per prompt token of a chunked prefill allowed, whole process.</summary>
    const int PrefillBytesPerToken = 1024;

    /// <summary>
    /// f32 activations (the CPU default) and bf16 (<c>--dtype bfloat16</c>: 9.8 KB a token on Llama, 27 KB on V2-Lite and
    /// 55 KB on DeepSeek-V3 until the CPU backend's small ops stopped making host images of bf16 tensors per call).
    /// </summary>
    [Theory]
    [InlineData("llama", 1, false), InlineData("llama", 3, false), InlineData("deepseek_v3", 3, false), InlineData("deepseek_v2_lite", 1, false)]
    [InlineData("llama", 1, true), InlineData("qwen2", 3, true), InlineData("deepseek_v3", 3, true), InlineData("deepseek_v2_lite", 1, true)]
    public void DecodeStepsAllocateLessThan1KBPerToken(string name, int threads, bool bf16)
    {
        using var model = ModelLoader.Load(CheckpointFixtures.Folder(name), Ops.CreateCpu(TestDevices.Cpu, threads),
            activations: bf16 ? ElementType.BF16 : ElementType.F32);
        const int prompt = 24, warm = 16, steps = 200;
        var ids = Ids(prompt + warm + steps, model.Shape.Vocab);
        using var cache = model.CreateCache(ids.Length);
        var logits = new float[model.Shape.Vocab];
        model.Forward(ids.AsSpan(0, prompt), cache, logits);
        for (int i = prompt; i < prompt + warm; i++)
            model.Forward(ids.AsSpan(i, 1), cache, logits);

        long thread0 = GC.GetAllocatedBytesForCurrentThread(), total0 = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = prompt + warm; i < ids.Length; i++)
            model.Forward(ids.AsSpan(i, 1), cache, logits);
        long thread = GC.GetAllocatedBytesForCurrentThread() - thread0, total = GC.GetTotalAllocatedBytes(precise: true) - total0;

        Assert.Equal(ids.Length, cache.Length);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        string figures = $"{name}{(bf16 ? ", bf16 activations" : "")}: {steps} decode steps ({threads} threads) allocated {total} bytes in all ({total / steps} per token), {thread} on the calling thread";
        TestContext.Current.TestOutputHelper?.WriteLine(figures);
        Assert.True(total < (long)DecodeBytesPerToken * steps, figures);
    }

    /// <summary>Llama at f32; DeepSeek-V3 (MLA, MoE over 16-token chunks) at bf16.</summary>
    [Theory]
    [InlineData("llama", false), InlineData("deepseek_v3", true)]
    public void AChunkedPrefillAllocatesLessThan1KBPerPromptToken(string name, bool bf16)
    {
        using var model = ModelLoader.Load(CheckpointFixtures.Folder(name), Ops.CreateCpu(TestDevices.Cpu, 3), chunkTokens: 16,
            activations: bf16 ? ElementType.BF16 : ElementType.F32);
        Assert.Equal(16, model.ChunkTokens);
        const int prompt = 96; // six chunks
        var ids = Ids(prompt, model.Shape.Vocab);
        using var cache = model.CreateCache(prompt);
        var logits = new float[model.Shape.Vocab];
        model.Forward(ids, cache, logits); // warm: per-thread scratch grown, code compiled
        cache.Clear();

        long thread0 = GC.GetAllocatedBytesForCurrentThread(), total0 = GC.GetTotalAllocatedBytes(precise: true);
        model.Forward(ids, cache, logits);
        long thread = GC.GetAllocatedBytesForCurrentThread() - thread0, total = GC.GetTotalAllocatedBytes(precise: true) - total0;

        Assert.Equal(prompt, cache.Length);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        string figures = $"{name}{(bf16 ? ", bf16 activations" : "")}: a {prompt}-token prefill in chunks of 16 allocated {total} bytes in all ({total / prompt} per token), {thread} on the calling thread";
        TestContext.Current.TestOutputHelper?.WriteLine(figures);
        Assert.True(total < (long)PrefillBytesPerToken * prompt, figures);
    }

    static int[] Ids(int count, int vocab)
    {
        var random = new Random(14);
        var ids = new int[count];
        for (int i = 0; i < count; i++)
            ids[i] = random.Next(vocab);
        return ids;
    }
}
