using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>Loading refuses what it cannot run correctly, before running anything, with the reason.</summary>
[Collection(nameof(DeviceCollection))]
public class LoadingErrorTests
{
    static string CopyFixture(string name, Action<JsonObject>? editConfig = null)
    {
        string source = CheckpointFixtures.HfTiny(name);
        string target = Directory.CreateTempSubdirectory("dsk-model").FullName;
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        if (editConfig != null)
        {
            string path = Path.Combine(target, "config.json");
            var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            editConfig(config);
            File.WriteAllText(path, config.ToJsonString());
        }
        return target;
    }

    [Fact]
    public void AConfigThatContradictsTheTensorShapesIsRefused()
    {
        string folder = CopyFixture("llama", c => c["intermediate_size"] = 512);
        var e = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder));
        Assert.Contains("mlp.gate_proj.weight", e.Message);
        Assert.Contains("[256, 128]", e.Message);
        Assert.Contains("[512, 128]", e.Message);
    }

    [Fact]
    public void MoreExpertsThanTheCheckpointHasIsRefused()
    {
        string folder = CopyFixture("deepseek_v3", c => c["n_routed_experts"] = 20);
        var e = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder));
        Assert.Contains("mlp.gate.weight", e.Message);
    }

    [Fact]
    public void AMissingTensorIsNamed()
    {
        string folder = CopyFixture("qwen2", c => c["num_hidden_layers"] = 4);
        var e = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder));
        Assert.Contains("model.layers.3.", e.Message);
    }

    [Fact]
    public void AnUnknownArchitectureIsRefusedByName()
    {
        string folder = CopyFixture("llama", c => c["model_type"] = "mixtral");
        var e = Assert.Throws<UnsupportedModelException>(() => ModelTestSupport.Load(folder));
        Assert.Contains("mixtral", e.Message);
        Assert.Contains("deepseek_v3", e.Message);
    }

    [Fact]
    public void ATruncatedWeightsFileIsReportedWithItsName()
    {
        string folder = CopyFixture("deepseek_v2_lite");
        string weights = Path.Combine(folder, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void AMissingFolderIsReported()
    {
        var e = Assert.ThrowsAny<Exception>(() => ModelTestSupport.Load(Path.Combine(Path.GetTempPath(), "dsk-no-such-model")));
        Assert.Contains("dsk-no-such-model", e.Message);
    }

    [Fact]
    public void ThePromptMustLeaveRoomInTheContext()
    {
        using var model = ModelTestSupport.Load(CheckpointFixtures.HfTiny("llama"));
        using var generator = new DeepSeekKernels.Generation.TextGenerator(model, null, 8);
        var e = Assert.Throws<ArgumentException>(() => generator.Generate([1, 2, 3, 4, 5, 6, 7, 8, 9], new(), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("The prompt has 9 tokens; the context holds 8", e.Message);
    }

    [Fact]
    public void Fp8WeightsAreDequantisedExactly()
    {
        // q_b_proj [384, 96] and kv_a_proj_with_mqa [80, 192] have ragged 128x128 blocks (96 < 128 columns; 80 rows; 192 = 128 + 64).
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.HfTiny("deepseek_v3_fp8"));
        var runtime = TestDevices.Cpu;
        var ops = Ops.Create(runtime, Backend.Reference);
        foreach (var (name, rows, cols) in new[] { ("model.layers.0.self_attn.q_b_proj", 384, 96), ("model.layers.1.self_attn.kv_a_proj_with_mqa", 80, 192), ("model.layers.0.mlp.down_proj", 192, 384) })
        {
            var data = checkpoint.GetBytes(checkpoint.GetTensor(name + ".weight")).ToArray();
            var scales = checkpoint.ReadAsFloat32(name + ".weight_scale_inv");
            int scaleCols = (cols + 127) / 128;
            Assert.Equal((rows + 127) / 128 * scaleCols, scales.Length);
            using var dData = runtime.Upload<DeepSeekKernels.Numerics.Float8E4M3>(data.Select(DeepSeekKernels.Numerics.Float8E4M3.FromBits).ToArray());
            using var dScales = runtime.Upload<float>(scales);
            using var dense = runtime.Allocate<float>((long)rows * cols);
            ops.DequantizeFp8(WeightMatrix.Fp8(dData.View, dScales.View, rows, cols), dense.View);
            var actual = dense.ToArray();
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                {
                    // fp8 * scale in float32, rounded once to bf16, as transformers' golden logits need (see Float8E4M3.Dequantize)
                    float expected = DeepSeekKernels.Numerics.BFloat16.FromSingle(DeepSeekKernels.Numerics.Float8E4M3.FromBits(data[r * cols + c]).ToSingle() * scales[r / 128 * scaleCols + c / 128]).ToSingle();
                    Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(actual[r * cols + c]));
                }
        }
    }
}
