using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// Whole models on the CPU backend (issue 14), strict, weights read in place from the mapped checkpoints: every fixture
/// with float32 activations within 1e-3 of the golden logits and with the golden greedy continuation token for token (the
/// runner's default on a machine without a GPU must print transformers' tokens), and with bfloat16 activations within the
/// bf16 path's bars (<see cref="GpuBackendModelTests"/>: 3e-2 worst, 1.5e-2 median). Pools of 1 and 3 threads.
/// </summary>
[Collection(nameof(DeviceCollection))]
public sealed class CpuBackendModelTests
{
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void EveryFixtureMatchesTheGoldenLogitsWithFloat32Activations(string name) =>
        GpuBackendModelTests.Check(Ops.CreateCpu(TestDevices.Cpu, 3), name, ElementType.F32);

    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void EveryFixtureStaysWithinTheBf16BarsWithBfloat16Activations(string name) =>
        GpuBackendModelTests.Check(Ops.CreateCpu(TestDevices.Cpu, 3), name, ElementType.BF16);

    [Theory]
    [InlineData("llama", 1), InlineData("llama", 3), InlineData("qwen2", 3), InlineData("deepseek_v3", 3), InlineData("deepseek_v3_fp8", 3)]
    public void TheGreedyContinuationIsTheGoldenOne(string name, int threads)
    {
        string folder = CheckpointFixtures.Folder(name);
        var (ids, _, greedy) = ModelTestSupport.Golden(folder);
        Assert.NotEmpty(greedy);
        using var model = ModelLoader.Load(folder, Ops.CreateCpu(TestDevices.Cpu, threads));
        Assert.True(model.MappedWeightBytes > 0);
        Assert.Equal(greedy, ModelTestSupport.Greedy(model, ids, greedy.Length));
    }
}
