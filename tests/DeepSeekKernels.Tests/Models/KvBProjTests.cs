using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// MLA's kv_b_proj is kept in the checkpoint's precision: an FP8 one whose heads' nope and v rows are whole blocks of
/// 128 (DeepSeek-V3's 128 + 128) stays FP8 with its scales, split per head into W_UK and W_UV; the fixtures (32 + 32
/// rows per head) take the bf16 route and are covered by the golden-logit tests.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class KvBProjTests
{
    [Fact]
    public void AnFp8KvBProjOfWholeBlocksStaysFp8AndSplitsPerHead()
    {
        const int heads = 2, nope = 128, v = 128, latent = 192, rows = heads * (nope + v);
        using var folder = new TempFolder();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "config.json")))!.AsObject();
        config["num_attention_heads"] = heads;
        config["num_key_value_heads"] = heads;
        config["qk_nope_head_dim"] = nope;
        config["v_head_dim"] = v;
        config["kv_lora_rank"] = latent;
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), config.ToJsonString());
        var random = new Random(5);
        var bits = new byte[rows * latent];
        for (int i = 0; i < bits.Length; i++)
            bits[i] = Float8E4M3.FromSingleSaturating((float)(random.NextDouble() * 8 - 4)).Bits;
        var scales = Enumerable.Range(0, rows / 128 * 2).Select(i => 0.01f * (i + 1)).ToArray(); // [4, ceil(192/128) = 2]
        const string name = "model.layers.0.self_attn.kv_b_proj";
        SafetensorsWriter.Write(Path.Combine(folder.Path, "model.safetensors"),
        [
            new TensorToWrite(name + ".weight", "F8_E4M3", [rows, latent], bits),
            new TensorToWrite(name + ".weight_scale_inv", "F32", [rows / 128, 2], SafetensorsWriter.F32(scales)),
        ]);
        using var checkpoint = Checkpoint.Open(folder.Path);
        var shape = ModelShapes.From(checkpoint.Config);
        Assert.True(WeightLoader.KvBProjStaysFp8(shape));
        var loader = new WeightLoader(checkpoint, TestDevices.Cpu, shape, WeightQuantization.None);
        try
        {
            var (uk, uv) = loader.KvBProj(name, heads, nope, v, latent);
            Assert.Equal((ElementType.Fp8E4M3, nope, latent, heads), (uk.ElementType, uk.Rows, uk.Cols, uk.Count));
            Assert.Equal((ElementType.Fp8E4M3, v, latent, heads), (uv.ElementType, uv.Rows, uv.Cols, uv.Count));
            // every element dequantises to what the whole kv_b_proj dequantises to at its row
            var whole = loader.HostMatrix(name, rows, latent);
            using var ukValues = TestDevices.Cpu.Allocate<float>((long)heads * nope * latent);
            using var uvValues = TestDevices.Cpu.Allocate<float>((long)heads * v * latent);
            var ops = Ops.Create(TestDevices.Cpu, Backend.Reference);
            ops.DequantizeFp8(uk, ukValues.View);
            ops.DequantizeFp8(uv, uvValues.View);
            var k = ukValues.ToArray();
            var vv = uvValues.ToArray();
            for (int h = 0; h < heads; h++)
            {
                Assert.Equal(whole.AsSpan(h * (nope + v) * latent, nope * latent).ToArray(), k.AsSpan(h * nope * latent, nope * latent).ToArray());
                Assert.Equal(whole.AsSpan((h * (nope + v) + nope) * latent, v * latent).ToArray(), vv.AsSpan(h * v * latent, v * latent).ToArray());
            }
            // one byte per element plus the scales: the estimate's rule
            Assert.Equal((long)rows * latent + scales.Length * 4, uk.Bytes + uv.Bytes);
        }
        finally
        {
            foreach (var item in loader.Owned)
                item.Dispose();
        }
    }
}
