namespace DeepSeekKernels.Tests.Conformance;

// The conformance classes of the ILGPU kernels whose lane arithmetic depends most on the warp's width (lane groups per
// key, butterfly depths, lanes over experts, GEMV partial sums), run once more on a CPU accelerator that simulates a GPU's
// 32-lane warps (ConformanceBackends.IlgpuWarp32): the suite's ILGPU-CPU classes run 2-lane warps, and no GPU has run these
// kernels yet. Not a sixth backend: the same ILGPU backend at the GPU's warp width. Cases of thousands of keys or tokens
// skip here (SkipLongCaseAtGpuWarps: 20-90 s each at 32 simulated lanes); the rest, mixed batches, MLA at 576/512, routing
// up to 67 tokens, every Linear form and regime, run.

/// <summary>Paged GQA attention, ILGPU at 32 lanes.</summary>
public sealed class PagedAttentionIlgpuWarp32Conformance : PagedAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuWarp32;

    protected override bool SimulatesGpuWarps => true;
}

/// <summary>Paged MLA attention, ILGPU at 32 lanes.</summary>
public sealed class PagedMlaAttentionIlgpuWarp32Conformance : PagedMlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuWarp32;

    protected override bool SimulatesGpuWarps => true;
}

/// <summary>MoE routing (a warp per token, lanes over experts), ILGPU at 32 lanes.</summary>
public sealed class MoeRouteIlgpuWarp32Conformance : MoeRouteConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuWarp32;

    protected override bool SimulatesGpuWarps => true;
}

/// <summary>Linear (GEMV with split-K over warps, the tiled kernel), ILGPU at 32 lanes.</summary>
public sealed class LinearIlgpuWarp32Conformance : LinearConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuWarp32;

    protected override bool SimulatesGpuWarps => true;
}
