using DeepSeekKernels.Models;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// Every architecture on the native backend with no fallback, proven without a GPU: each fixture (and the embedded model)
/// runs strict over a backend that answers Supports exactly as the native backend does (<c>NativeBackend.Refusal</c>, the
/// same static rule its Supports applies) and computes on the reference. A prompt and a few greedy decode steps, at f32 and
/// bf16 activations and with weights quantised at load, complete with no refusal: the native kernels cover every op
/// signature the models call (the GPU run of the same, <see cref="GpuBackendModelTests"/>, proves the kernels themselves).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class NativeCoverageTests
{
    public static TheoryData<string, ElementType, WeightQuantization> Cases()
    {
        var data = new TheoryData<string, ElementType, WeightQuantization>();
        foreach (string name in (string[])[.. CheckpointFixtures.Names, "dsv3-pydoc-tiny"])
            foreach (var activations in (ElementType[])[ElementType.F32, ElementType.BF16])
                data.Add(name, activations, WeightQuantization.None);
        data.Add("deepseek_v3", ElementType.BF16, WeightQuantization.Int4);
        data.Add("deepseek_v2_lite", ElementType.BF16, WeightQuantization.Fp8);
        data.Add("llama", ElementType.BF16, WeightQuantization.Int4);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void EveryArchitectureNeedsOnlyWhatTheNativeBackendRuns(string name, ElementType activations, WeightQuantization quantization)
    {
        var shadow = new ShadowBackend(Backend.Native, op => NativeBackend.Refusal(op));
        var ops = Ops.Over(TestDevices.Cpu, shadow);
        string folder = CheckpointFixtures.Folder(name);
        var (ids, _, greedy) = ModelTestSupport.Golden(folder);
        using var model = ModelLoader.Load(folder, ops, quantization: quantization, activations: activations);
        var generated = ModelTestSupport.Greedy(model, ids, 3); // a prefill and two decode steps
        if (activations == ElementType.F32 && quantization == WeightQuantization.None && greedy.Length >= 3)
            Assert.Equal(greedy.Take(3), generated); // the reference's numbers: the golden continuation
        var asked = shadow.Asked.Select(s => s.Op).ToHashSet();
        Assert.Contains(nameof(Ops.Linear), asked);
        if (name.StartsWith("deepseek", StringComparison.Ordinal) || name == "dsv3-pydoc-tiny")
            Assert.Superset(new HashSet<string> { nameof(Ops.MoeRoute), nameof(Ops.MoePermute), nameof(Ops.MoeCombine), nameof(Ops.PagedMlaAttention) }, asked);
        else
            Assert.Contains(nameof(Ops.PagedAttention), asked);
    }
}
