using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// Whole models on the GPU backends, strict (no fallback at all: an op the backend lacked would throw), the weights in
/// the backend's memory: every fixture (two dense GQA models, an MLA model, MLA + MoE models with bf16 and FP8 weights,
/// and the embedded model) on ILGPU's CPU accelerator here and on ILGPU and the native kernels where a GPU is found.
/// float32 activations match the golden logits within 1e-3; bfloat16 activations stay within the bf16 path's bars
/// (<see cref="GoldenLogitsTests.TheBf16PathStaysWithinTheBf16Tolerance"/>).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class GpuBackendModelTests
{
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void EveryFixtureRunsOnIlgpuOnTheCpuAcceleratorWithNoFallback(string name) =>
        Check(Ops.Create(TestDevices.Cpu, Backend.Ilgpu), name, ElementType.F32);

    [Theory]
    [InlineData("deepseek_v3"), InlineData("deepseek_v2_lite"), InlineData("qwen2"), InlineData("dsv3-pydoc-tiny")]
    public void Bf16ActivationsRunOnIlgpuOnTheCpuAcceleratorWithNoFallback(string name) =>
        Check(Ops.Create(TestDevices.Cpu, Backend.Ilgpu), name, ElementType.BF16);

    public static TheoryData<Backend, string, ElementType> GpuCases()
    {
        var data = new TheoryData<Backend, string, ElementType>();
        foreach (var backend in (Backend[])[Backend.Native, Backend.Ilgpu])
        {
            foreach (string name in (string[])[.. CheckpointFixtures.Names, "dsv3-pydoc-tiny"])
                data.Add(backend, name, ElementType.F32);
            data.Add(backend, "deepseek_v3", ElementType.BF16);
            data.Add(backend, "llama", ElementType.BF16);
        }
        return data;
    }

    [DeviceTheory, NeedsCudaGpu]
    [MemberData(nameof(GpuCases))]
    public void EveryFixtureRunsOnTheGpuWithNoFallback(Backend backend, string name, ElementType activations)
    {
        var runtime = backend == Backend.Native ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        Check(Ops.Create(runtime, backend), name, activations);
    }

    internal static void Check(Ops ops, string name, ElementType activations)
    {
        Assert.False(ops.ReferenceFallback, "these runs are strict");
        string folder = CheckpointFixtures.Folder(name);
        var (ids, golden, _) = ModelTestSupport.Golden(folder);
        using var model = ModelLoader.Load(folder, ops, activations: activations);
        Assert.Equal(activations, model.Activations);
        int vocab = model.Shape.Vocab;
        using var cache = model.CreateCache(ids.Length, activations);
        var logits = new float[ids.Length * vocab];
        model.Forward(ids, cache, logits, allPositions: true);
        var errors = Enumerable.Range(0, ids.Length)
            .Select(p => ModelTestSupport.RelativeError(logits.AsSpan(p * vocab, vocab), golden.AsSpan(p * vocab, vocab))).Order().ToArray();
        string all = string.Join(", ", errors.Select(e => e.ToString("E1")));
        if (activations == ElementType.F32)
        {
            Assert.True(errors[^1] < 1e-3, $"{ops.Label} {name}: worst relative error {errors[^1]:E2} (bar 1e-3): {all}");
            return;
        }
        int allowed = name.StartsWith("deepseek_v3", StringComparison.Ordinal) ? 2 : 0;
        Assert.True(errors[errors.Length - 1 - allowed] < 3e-2, $"{ops.Label} {name} bf16: {all}");
        Assert.True(errors[errors.Length / 2] < 1.5e-2, $"{ops.Label} {name} bf16: median relative error {errors[errors.Length / 2]:E2} (bar 1.5e-2)");
        Assert.True(errors[0] > 1e-4, $"{ops.Label} {name}: the bf16 path gave the f32 logits (error {errors[0]:E1})");
    }
}
