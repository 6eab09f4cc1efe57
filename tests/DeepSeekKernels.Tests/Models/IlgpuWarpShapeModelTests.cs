using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// The ILGPU kernels at warp widths other than the one the suite runs them at. ILGPU's CPU accelerator here simulates
/// 2-lane warps (<see cref="DeviceRuntime.CpuWarpSize"/>: a 4-lane warp's shuffles cost 3x the time on 2 cores), where a
/// butterfly reduction has one step and a lane-strided loop two lanes; these runs take whole models (every kernel the
/// forward pass calls: RMSNorm, Linear's GEMV and tiled kernels over bf16 and FP8 weights, RoPE, KV append, paged GQA and
/// MLA attention, MoE routing, permutation, grouped GEMM and combine) through 4-, 8- and 32-lane warps (wide shapes cost the most
/// here: one model each; 32 lanes, a GPU's warp, since 2026-12-02, where a one-warp group found the paged attention kernel's CPU
/// group of two warps too large; the ops whose lane arithmetic depends most on the width also run their conformance classes at
/// 32 lanes, IlgpuWarp32Conformance), strict, against the golden logits (<see cref="GpuBackendModelTests.Check"/>).
/// A real GPU runs in the GPU classes.
/// </summary>
public class IlgpuWarpShapeModelTests
{
    [Theory]
    [InlineData(8, 4, "deepseek_v3_fp8")] // MLA, V3 routing, MoE over FP8 block-scaled weights
    [InlineData(4, 4, "qwen2")] // ILGPU's default shape (the suite's until 2026-12-02): GQA with bias
    [InlineData(4, 4, "deepseek_v2_lite")] // MLA, V2 routing, bf16 weights
    [InlineData(8, 2, "llama")] // a group of two 8-lane warps: Linear's GEMV (4 warps) does not fit and takes the tiled kernel
    [InlineData(32, 1, "llama")] // a GPU's warp width: a group of one warp (the tiled Linear, paged attention on one warp)
    [InlineData(32, 2, "deepseek_v2_lite")] // MLA and the MoE chain (permutation, grouped GEMMs, combine) at 32 lanes
    public void ModelsRunOnWiderWarps(int warpSize, int warps, string name)
    {
        using var runtime = DeviceRuntime.CreateCpu(warpSize, warps);
        Assert.Equal(warpSize, runtime.Accelerator.WarpSize);
        Assert.Equal(warpSize * warps, runtime.Accelerator.MaxNumThreadsPerGroup);
        GpuBackendModelTests.Check(Ops.Create(runtime, Backend.Ilgpu), name, ElementType.F32);
    }

    /// <summary>
    /// A group of one 32-lane warp cannot hold the grouped tiled GEMM's 16-thread tile as whole warps (its tile search shuffles
    /// across the warp, and lanes 16..31 would not exist): refused with a message, not run on undefined lanes.
    /// </summary>
    /// <remarks>One GroupedLinear call (it took deepseek_v2_lite's whole forward pass up to its first MoE layer, 20 s, until 2026-12-02).</remarks>
    [Fact]
    public void AGroupedTileOfPartialWarpsIsRefused()
    {
        using var runtime = DeviceRuntime.CreateCpu(32, 1);
        var ops = Ops.Create(runtime, Backend.Ilgpu);
        using var weight = new OpTests.OpTestSupport.TestWeight("f32", count: 2, rows: 16, cols: 32, seed: 1, runtime: runtime);
        using var x = runtime.Upload<float>(OpTests.OpTestSupport.RandomValues(3 * 32, 2));
        using var offsets = runtime.Upload<int>([0, 2, 3]);
        using var y = runtime.Upload<float>(OpTests.OpTestSupport.Nan(3 * 16));
        var e = Assert.Throws<InvalidOperationException>(() =>
            ops.GroupedLinear(x.View.AsTensor(3, 32), offsets.View, weight.Matrix, y.View.AsTensor(3, 16)));
        Assert.Contains("group of 16 threads is not whole 32-lane warps", e.Message, StringComparison.Ordinal);
        Assert.All(y.ToArray(), v => Assert.True(float.IsNaN(v), "an output was written"));
    }

    [Fact]
    public void TheDefaultCpuRuntimeSimulatesTheDocumentedShape()
    {
        using var runtime = DeviceRuntime.Create(DevicePreference.Cpu);
        Assert.False(runtime.IsCuda);
        Assert.Equal(DeviceRuntime.CpuWarpSize, runtime.Accelerator.WarpSize);
        Assert.Equal(DeviceRuntime.CpuWarpSize * DeviceRuntime.CpuWarpsPerGroup, runtime.Accelerator.MaxNumThreadsPerGroup);
    }

    [Theory]
    [InlineData(1, 4, "warpSize")]
    [InlineData(3, 4, "warpSize")]
    [InlineData(64, 1, "warpSize")]
    [InlineData(4, 0, "warpsPerGroup")]
    [InlineData(4, 6, "warpsPerGroup")]
    [InlineData(32, 64, "warpsPerGroup")]
    public void ShapesIlgpuCannotSimulateAreRefused(int warpSize, int warps, string parameter)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => DeviceRuntime.CreateCpu(warpSize, warps).Dispose());
        Assert.Equal(parameter, e.ParamName);
    }
}
