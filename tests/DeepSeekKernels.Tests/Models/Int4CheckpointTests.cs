using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// GPTQ and AWQ checkpoints (<see cref="Int4CheckpointWeights"/>): written from the fixtures by <see cref="Int4CheckpointWriter"/>
/// in each packing, loaded as INT4 weights that are exactly the layers' dequantised values (the model equals the one loaded
/// dense from those values), with the bytes the estimate gives and nothing left unread; malformed ones refused with the
/// loader's and the conformance check's one error.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class Int4CheckpointTests
{
    /// <summary>Fixture, packing, group size, and whether the rest is F16 (as AWQ and GPTQ tools write it) or as stored (bf16).</summary>
    public static TheoryData<string, Int4Packing, int, bool> Cases() => new()
    {
        { "llama", Int4Packing.Gptq, 32, false },
        { "llama", Int4Packing.Awq, 128, true },
        { "llama", Int4Packing.GptqV2, -1, false },
        { "qwen2", Int4Packing.Awq, 32, true },
        { "deepseek_v2_lite", Int4Packing.Gptq, 32, true },
        { "deepseek_v3", Int4Packing.Awq, 32, false },
        { "dsv3-pydoc-tiny", Int4Packing.Gptq, 64, false },
    };

    static double WorstRelativeError(float[] actual, float[] expected, int vocab)
    {
        double worst = 0;
        for (int p = 0; p < actual.Length / vocab; p++)
            worst = Math.Max(worst, ModelTestSupport.RelativeError(actual.AsSpan(p * vocab, vocab), expected.AsSpan(p * vocab, vocab)));
        return worst;
    }

    /// <summary>
    /// The INT4 checkpoint loads as the model of its dequantised weights: logits within 1e-5 relative of the dense twin's (the
    /// same weight values, summed in another order; a misplaced nibble, a wrong zero convention or a transposed scale moves
    /// them by 1e-2 or more), its weight bytes are the estimate's, and the conformance check reads every tensor (g_idx too).
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void TheCheckpointIsTheModelOfItsDequantizedWeights(string name, Int4Packing packing, int groupSize, bool float16)
    {
        string source = CheckpointFixtures.Folder(name);
        var (ids, _, _) = ModelTestSupport.Golden(source);
        using var temp = new TempFolder();
        string int4 = Int4CheckpointWriter.WriteQuantized(source, temp.Subfolder("int4"), packing, groupSize, float16: float16);
        string dense = Int4CheckpointWriter.WriteDequantized(source, temp.Subfolder("dense"), groupSize, packing, float16: float16);

        long estimate;
        int layers;
        using (var checkpoint = Checkpoint.Open(int4))
        {
            var report = CheckpointConformance.Check(checkpoint);
            Assert.Empty(report.UnreadTensors);
            layers = checkpoint.Tensors.Count(t => t.Name.EndsWith(".qweight", StringComparison.Ordinal));
            estimate = ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, ids.Length).Weights;
        }
        Assert.True(layers >= 3, $"{name}: only {layers} layers quantised"); // qwen2 (hidden 112): only down_proj
        float[] expected;
        using (var model = ModelTestSupport.Load(dense, contextLength: ids.Length))
            expected = ModelTestSupport.AllLogits(model, ids);
        using var loaded = ModelTestSupport.Load(int4, contextLength: ids.Length);
        Assert.Equal(estimate, loaded.WeightBytes);
        double worst = WorstRelativeError(ModelTestSupport.AllLogits(loaded, ids), expected, loaded.Shape.Vocab);
        Assert.True(worst < 1e-5, $"{name} {packing} g{groupSize}: relative error {worst:E2} against the dequantised twin (bar 1e-5)");
    }

    /// <summary>The three packings of one quantisation are one model: bitwise the same logits, on the CPU backend's INT4 kernels.</summary>
    [Fact]
    public void EveryPackingGivesTheSameModel()
    {
        string source = CheckpointFixtures.HfTiny("llama");
        var (ids, _, _) = ModelTestSupport.Golden(source);
        using var temp = new TempFolder();
        float[]? first = null;
        foreach (var packing in new[] { Int4Packing.Gptq, Int4Packing.GptqV2, Int4Packing.Awq })
        {
            string folder = Int4CheckpointWriter.WriteQuantized(source, temp.Subfolder(packing.ToString()), packing, 32);
            using var model = ModelLoader.Load(folder, Ops.CreateCpu(TestDevices.Cpu, 2), contextLength: ids.Length);
            var logits = ModelTestSupport.AllLogits(model, ids);
            Assert.All(logits, v => Assert.True(float.IsFinite(v)));
            if (first is null)
                first = logits;
            else
                Assert.Equal(first, logits);
        }
    }

    /// <summary>--quant leaves the checkpoint's INT4 layers as they are and says so; it takes the dense lm_head.</summary>
    [Fact]
    public void QuantAtLoadKeepsTheInt4LayersAndReportsThem()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("llama"), temp.Path, Int4Packing.Gptq, 32);
        using var model = ModelTestSupport.Load(folder, contextLength: 16, quantization: WeightQuantization.Int4);
        Assert.Equal(3 * 7, model.Quantization.AlreadyInt4); // q, k, v, o, gate, up, down in each of 3 layers
        Assert.Equal(1, model.Quantization.Quantized); // lm_head
        Assert.Contains("21 already INT4 in the checkpoint", model.Quantization.Describe(), StringComparison.Ordinal);
    }

    /// <summary>The loader's error and the conformance check's are one and the same, raised before any weight is read.</summary>
    static CheckpointException Refused(string folder, params string[] fragments)
    {
        CheckpointException fromCheck;
        using (var checkpoint = Checkpoint.Open(folder))
            fromCheck = Assert.Throws<CheckpointException>(() => CheckpointConformance.Check(checkpoint));
        var fromLoad = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder, contextLength: 16));
        Assert.Equal(fromCheck.Message, fromLoad.Message);
        foreach (var fragment in fragments)
            Assert.Contains(fragment, fromLoad.Message, StringComparison.Ordinal);
        return fromLoad;
    }

    [Fact]
    public void Int4LayersWithoutAQuantizationConfigAreRefused()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("llama"), temp.Path, Int4Packing.Gptq, 32);
        CheckpointCopy.EditConfig(folder, c => c.Remove("quantization_config"));
        Refused(folder, "model.layers.0.self_attn.q_proj.qweight", "no quantization_config", "gptq or awq");
    }

    [Fact]
    public void AWrongQzerosShapeIsRefused()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("llama"), temp.Path, Int4Packing.Awq, 32,
            (prefix, layer) => prefix == "model.layers.1.mlp.up_proj"
                ? [.. layer.Select(t => t.Name.EndsWith(".qzeros", StringComparison.Ordinal) ? t with { Shape = [t.Shape[1], t.Shape[0]] } : t)]
                : layer);
        Refused(folder, "model.layers.1.mlp.up_proj.qzeros", "[32, 4]", "[4, 32]");
    }

    [Fact]
    public void PackedCodesOfAnotherDtypeAreRefused()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("llama"), temp.Path, Int4Packing.Gptq, 32,
            (prefix, layer) => prefix == "model.layers.2.self_attn.o_proj"
                ? [.. layer.Select(t => t.Name.EndsWith(".qweight", StringComparison.Ordinal) ? t with { DType = "F32" } : t)]
                : layer);
        Refused(folder, "model.layers.2.self_attn.o_proj.qweight", "F32", "I32");
    }

    [Fact]
    public void AGroupSizeTheLayersDoNotFitIsRefused()
    {
        // deepseek_v3's q_a_proj has 192 in features: groups of 32 and 64 fit, of 128 not; with 64 the layers' qzeros
        // (written for 32) have twice the rows config.json implies
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("deepseek_v3"), temp.Path, Int4Packing.Gptq, 32);
        CheckpointCopy.EditConfig(folder, c => c["quantization_config"]!["group_size"] = 128);
        Refused(folder, "model.layers.0.self_attn.q_a_proj.qweight", "[96, 192] (out x in)", "192 in features is not a multiple of group_size 128");
        CheckpointCopy.EditConfig(folder, c => c["quantization_config"]!["group_size"] = 64);
        Refused(folder, "model.layers.0.self_attn.q_a_proj.qzeros", "[6, 12]", "[3, 12]");
    }

    [Fact]
    public void AnExpertStackOfMixedFormsIsRefused()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("deepseek_v2_lite"), temp.Path, Int4Packing.Gptq, 32,
            keepDense: t => t.Name == "model.layers.1.mlp.experts.3.gate_proj.weight");
        Refused(folder, "'model.layers.1.mlp.experts.0.gate_proj' is an INT4 layer", "'model.layers.1.mlp.experts.3.gate_proj' is not", "one form");
    }

    /// <summary>
    /// An act-order layer (g_idx permuting the groups) passes the header check, whose shapes are right, and is refused by the
    /// loader when it reads g_idx, naming the first in feature out of place.
    /// </summary>
    [Fact]
    public void AnActOrderGIdxIsRefusedWhenRead()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.HfTiny("llama"), temp.Path, Int4Packing.Gptq, 32,
            (prefix, layer) => prefix == "model.layers.0.mlp.down_proj"
                ? [.. layer.Select(t => t.Name.EndsWith(".g_idx", StringComparison.Ordinal)
                    ? t with { Data = Int4CheckpointWriter.Int32Bytes([.. Enumerable.Range(0, 256).Select(k => k == 1 ? 1 : k / 32)]) }
                    : t)]
                : layer);
        using (var checkpoint = Checkpoint.Open(folder))
            CheckpointConformance.Check(checkpoint);
        var e = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder, contextLength: 16));
        Assert.Contains("model.layers.0.mlp.down_proj.g_idx", e.Message, StringComparison.Ordinal);
        Assert.Contains("puts in feature 1 in group 1, not 0", e.Message, StringComparison.Ordinal);
        Assert.Contains("act-order", e.Message, StringComparison.Ordinal);
    }
}
