using DeepSeekKernels.Models;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Conformance;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// FP8 activations in the runner (<see cref="CausalLanguageModel.Fp8Activations"/>): a prefill of at least
/// <see cref="Projection.Fp8MinRows"/> tokens runs every FP8-block linear layer as QuantizeFp8Activations + LinearW8A8, and
/// DeepSeek-V3's routed experts as QuantizeFp8Activations + GroupedLinearW8A8 (gate and up, then down: three per MoE layer
/// on this fixture, whose gate and up stay apart),
/// counted by the ops' profile, and a decode step none of them; the logits stay within a stated bound of the dequantising path's
/// (the activations' e4m3 rounding, about 3% per product in relative norm by Ops.LinearW8A8's own measurement, compounds
/// over the layers and can flip a routing choice: on these random-weight fixtures 5.7% (Qwen2, --quant fp8), 7.1% (Llama,
/// --quant fp8) and 15.4% (DeepSeek-V3 FP8, MoE) of the logits' norm, the same on every backend; the bound, 30%, catches
/// a broken path, whose logits are unrelated) on the reference, ILGPU's CPU accelerator and the CPU backend.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class Fp8ActivationModelTests
{
    static Ops OpsFor(string backend) => backend switch
    {
        "reference" => ConformanceBackends.Reference,
        "ilgpu" => ConformanceBackends.IlgpuCpu,
        _ => ConformanceBackends.Cpu,
    };

    static double RelativeError(float[] a, float[] b)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            diff += Math.Pow(a[i] - b[i], 2);
            norm += Math.Pow(b[i], 2);
        }
        return Math.Sqrt(diff / norm);
    }

    [Theory]
    [InlineData("deepseek_v3_fp8", "none", "reference")]
    [InlineData("deepseek_v3_fp8", "none", "cpu")]
    [InlineData("llama", "fp8", "reference")]
    [InlineData("qwen2", "fp8", "ilgpu")]
    public void PrefillRunsW8A8WithinItsBoundAndDecodeDoesNot(string name, string quant, string backend)
    {
        string folder = CheckpointFixtures.Folder(name);
        var quantization = quant == "fp8" ? WeightQuantization.Fp8 : WeightQuantization.None;
        var (golden, _, _) = ModelTestSupport.Golden(folder);
        var ids = Enumerable.Range(0, 40).Select(i => golden[i % golden.Length]).ToArray(); // 40 tokens: one chunk past Fp8MinRows
        var ops = OpsFor(backend).WithProfiling();

        float[] Logits(bool fp8, out int w8a8Calls)
        {
            using var model = ModelLoader.Load(folder, ops, quantization: quantization, fp8Activations: fp8);
            Assert.Equal(fp8, model.Fp8Activations);
            using var cache = model.CreateCache(ids.Length + 1);
            var logits = new float[ids.Length * model.Shape.Vocab];
            ops.ResetProfile();
            model.Forward(ids, cache, logits, allPositions: true);
            w8a8Calls = (int)ops.Profile.Where(r => r.Signature.Op == nameof(Ops.LinearW8A8)).Sum(r => r.Calls);
            long grouped = ops.Profile.Where(r => r.Signature.Op == nameof(Ops.GroupedLinearW8A8)).Sum(r => r.Calls);
            long quantizations = ops.Profile.Where(r => r.Signature.Op == nameof(Ops.QuantizeFp8Activations)).Sum(r => r.Calls);
            // every MoE layer's experts as W8A8 (DeepSeek-V3's FP8 checkpoint: gate and up apart here, as moe_intermediate 32
            // does not fill a 128-row scale block), no dequantising grouped GEMM left
            int moeLayers = Enumerable.Range(0, model.Shape.Layers).Count(model.Shape.IsMoeLayer);
            Assert.Equal(fp8 ? 3L * moeLayers : 0, grouped);
            Assert.Equal(w8a8Calls + (fp8 ? 2L * moeLayers : 0), quantizations); // the experts' inputs: the permuted rows, then the activated
            if (fp8 && moeLayers > 0)
                Assert.DoesNotContain(ops.Profile, r => r.Signature.Op is nameof(Ops.GroupedLinear) or nameof(Ops.GroupedLinearSiluMul));
            // a decode step: no W8A8
            ops.ResetProfile();
            var last = new float[model.Shape.Vocab];
            model.Forward([ids[0]], cache, last);
            Assert.DoesNotContain(ops.Profile, r => r.Signature.Op is nameof(Ops.LinearW8A8) or nameof(Ops.GroupedLinearW8A8));
            return logits;
        }

        var plain = Logits(false, out int plainCalls);
        var fp8 = Logits(true, out int fp8Calls);
        Assert.Equal(0, plainCalls);
        Assert.True(fp8Calls > 0, "the prefill ran no LinearW8A8");
        double error = RelativeError(fp8, plain);
        TestContext.Current.TestOutputHelper?.WriteLine($"{name} ({quant}) on {backend}: {fp8Calls} W8A8 products, logits {error:E2} from the dequantising path");
        Assert.True(error < 0.3, $"logits {error:E2} from the dequantising path's");
    }

    /// <summary>The same on a GPU: the hand kernels (W8A8 on Hopper's wgmma family in an sm_90a build) and ILGPU-CUDA.</summary>
    [DeviceTheory, NeedsCudaGpu]
    [InlineData("native"), InlineData("ilgpu")]
    public void OnAGpuPrefillRunsW8A8WithinItsBound(string backend)
    {
        var runtime = backend == "native" ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        var ops = Ops.Create(runtime, backend == "native" ? Backend.Native : Backend.Ilgpu).WithProfiling();
        string folder = CheckpointFixtures.Folder("deepseek_v3_fp8");
        var (golden, _, _) = ModelTestSupport.Golden(folder);
        var ids = Enumerable.Range(0, 40).Select(i => golden[i % golden.Length]).ToArray();
        float[] Logits(bool fp8)
        {
            using var model = ModelLoader.Load(folder, ops, fp8Activations: fp8);
            using var cache = model.CreateCache(ids.Length);
            var logits = new float[ids.Length * model.Shape.Vocab];
            ops.ResetProfile();
            model.Forward(ids, cache, logits, allPositions: true);
            Assert.Equal(fp8, ops.Profile.Any(r => r.Signature.Op == nameof(Ops.LinearW8A8)));
            Assert.Equal(fp8, ops.Profile.Any(r => r.Signature.Op == nameof(Ops.GroupedLinearW8A8)));
            return logits;
        }
        double error = RelativeError(Logits(true), Logits(false));
        TestContext.Current.TestOutputHelper?.WriteLine($"deepseek_v3_fp8 on {ops.Label}: logits {error:E2} from the dequantising path");
        Assert.True(error < 0.3, $"logits {error:E2} from the dequantising path's");
    }
}
