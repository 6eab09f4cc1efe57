using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// Issue 14, point 2: on the CPU the stored weights are read in place from the checkpoint's read-only mapping (no private
/// copy); only weights quantised at load, the f16 ones (widened) and small vectors are the model's own memory. A mapped
/// buffer refuses writes (the pages are read-only: a write would fault the process).
/// </summary>
[Collection(nameof(DeviceCollection))]
public sealed class MappedWeightsTests
{
    /// <summary>Bytes of the checkpoint's rank-2 tensors of <paramref name="dtype"/> (the linear weights and embeddings).</summary>
    static long MatrixBytes(string folder, SafetensorsDType dtype)
    {
        using var checkpoint = Checkpoint.Open(folder);
        return checkpoint.Tensors.Where(t => t.Rank == 2 && t.DType == dtype).Sum(t => t.ByteLength);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("deepseek_v2_lite")]
    public void EveryStoredBf16MatrixOfADenseOrMoeModelIsReadInPlace(string name)
    {
        string folder = CheckpointFixtures.HfTiny(name);
        using var model = ModelTestSupport.Load(folder);
        long mapped = model.MappedWeightBytes;
        Assert.True(mapped > 0, "nothing was mapped");
        long stored = MatrixBytes(folder, SafetensorsDType.BF16);
        if (name == "deepseek_v2_lite")
        {
            // routed experts are stored one tensor per expert and not back to back: they are stacked into a copy, and
            // kv_b_proj is split per head; every other bf16 matrix is mapped
            Assert.InRange(mapped, 1, stored - 1);
        }
        else
        {
            Assert.Equal(stored, mapped);
        }
        Assert.True(model.WeightBytes >= mapped);
    }

    [Fact]
    public void CopiedCheckpointBytesLeaveTheResidentSet()
    {
        // A dense llama is read in place: nothing copied, nothing to release.
        using (var llama = ModelTestSupport.Load(CheckpointFixtures.HfTiny("llama")))
            Assert.Equal(0, llama.ReleasedCheckpointBytes);

        // DeepSeek-V2-Lite's routed experts (one tensor per expert, not back to back) are copied into stacks and its
        // kv_b_proj split per head: exactly those tensors' bytes are released once copied.
        string folder = CheckpointFixtures.HfTiny("deepseek_v2_lite");
        using var model = ModelTestSupport.Load(folder);
        using var checkpoint = Checkpoint.Open(folder);
        long copied = checkpoint.Tensors
            .Where(t => (t.Name.Contains(".mlp.experts.") && t.Name.EndsWith(".weight")) || t.Name.EndsWith("kv_b_proj.weight"))
            .Sum(t => t.ByteLength);
        Assert.True(copied > 0);
        Assert.Equal(copied, model.ReleasedCheckpointBytes);

        // Quantised at load: every quantised matrix's bytes, band by band (the rest, the embeddings, stays mapped).
        using var int4 = ModelTestSupport.Load(CheckpointFixtures.HfTiny("llama"), quantization: WeightQuantization.Int4);
        Assert.Equal(MatrixBytes(CheckpointFixtures.HfTiny("llama"), SafetensorsDType.BF16) - int4.MappedWeightBytes, int4.ReleasedCheckpointBytes);
    }

    [Fact]
    public void Fp8CheckpointDataIsMappedAndItsScalesCopied()
    {
        string folder = CheckpointFixtures.HfTiny("deepseek_v3_fp8");
        using var model = ModelTestSupport.Load(folder);
        long fp8 = MatrixBytes(folder, SafetensorsDType.F8_E4M3);
        Assert.True(fp8 > 0);
        Assert.InRange(model.MappedWeightBytes, 1, model.WeightBytes - 1); // scales (and the copied expert stacks) are the model's
    }

    [Fact]
    public void QuantisedAtLoadWeightsAreTheOnlyPrivateCopiesOfALlama()
    {
        string folder = CheckpointFixtures.HfTiny("llama");
        using var model = ModelTestSupport.Load(folder, quantization: WeightQuantization.Int4);
        using var checkpoint = Checkpoint.Open(folder);
        // only the embeddings stay as stored (WeightLoader.QuantizedAtLoad); every other matrix is INT4, in private memory
        Assert.Equal(checkpoint.GetTensor("model.embed_tokens.weight").ByteLength, model.MappedWeightBytes);
    }

    [Fact]
    public void TheMappedModelGivesTheSameLogitsAsTheGoldenFile()
    {
        // the golden tests cover every fixture; this one says it of the mapping explicitly, for the llama fixture
        string folder = CheckpointFixtures.HfTiny("llama");
        using var model = ModelTestSupport.Load(folder);
        Assert.True(model.MappedWeightBytes > 0);
        var (ids, logits, _) = ModelTestSupport.Golden(folder);
        using var cache = model.CreateCache(ids.Length);
        var last = new float[model.Shape.Vocab];
        model.Forward(ids, cache, last);
        var expected = logits.AsSpan((ids.Length - 1) * model.Shape.Vocab, model.Shape.Vocab);
        Assert.True(ModelTestSupport.RelativeError(last, expected) < 1e-4);
    }

    [Fact]
    public unsafe void AReadOnlyBufferRefusesCopiesClearsAndOpOutputsAndKeepsItsBytes()
    {
        var runtime = TestDevices.Cpu;
        var values = new float[] { 1, 2, 3, 4, 5, 6 };
        fixed (float* p = values)
        {
            using var buffer = runtime.WrapReadOnlyHostMemory<float>((nint)p, values.Length);
            Assert.True(buffer.IsReadOnly);
            Assert.False(buffer.IsArenaWindow);
            Assert.Equal(values, buffer.ToArray()); // used in place: reads see the memory
            Assert.Contains("read-only", Assert.Throws<InvalidOperationException>(() => buffer.CopyFromHost([9f, 9f])).Message);
            Assert.Throws<InvalidOperationException>(() => buffer.Clear());
            using var other = runtime.Upload<float>([7f, 7f, 7f, 7f, 7f, 7f]);
            Assert.Throws<InvalidOperationException>(() => other.CopyTo(buffer.View));
            var ops = Ops.Create(runtime, Backend.Reference);
            using var w = runtime.Upload<float>([1f, 0f, 0f, 1f, 1f, 1f]);
            var e = Assert.Throws<ArgumentException>(() => ops.Linear(other.View.Slice(0, 2), WeightMatrix.Dense(w.View, 3, 2), default, buffer.View.Slice(0, 3)));
            Assert.Contains("read-only", e.Message);
            Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, values);
        }
    }
}
