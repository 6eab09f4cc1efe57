using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// Attention against float64: one element, MHA prefill, GQA with vHeadDim != headDim continuing a cache, a decode query at
/// the end of a long cache (head_dim 33), MQA, and DeepSeek's head_dim 128 (the support table's row); caches longer than
/// kvLength whose tail is NaN (reading it would poison the output), the output inside a NaN guard.
/// </summary>
public abstract class AttentionConformance : ConformanceTest
{
    public static TheoryData<int, int, int, int, int, int, int> Cases() => new()
    {
        // tokens, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart
        { 1, 1, 1, 1, 1, 1, 0 },
        { 7, 4, 4, 8, 8, 7, 0 },
        { 5, 6, 2, 16, 12, 9, 4 },
        { 1, 8, 2, 33, 7, 40, 39 },
        { 3, 3, 1, 7, 5, 20, 10 },
        { 2, 4, 2, 128, 128, 17, 15 },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void AttentionMatchesFloat64(int tokens, int qHeads, int kvHeads, int headDim, int vHeadDim, int kvLength, int queryStart)
    {
        const int spareRows = 3;
        float scale = 1f / MathF.Sqrt(headDim);
        var q = RandomValues(tokens * qHeads * headDim, 1);
        var k = RandomValues(kvLength * kvHeads * headDim, 2);
        var v = RandomValues(kvLength * kvHeads * vHeadDim, 3);
        using var dq = Upload(q);
        using var dk = Upload(k.Concat(Nan(spareRows * kvHeads * headDim)).ToArray());
        using var dv = Upload(v.Concat(Nan(spareRows * kvHeads * vHeadDim)).ToArray());
        using var dy = Poisoned(tokens * qHeads * vHeadDim + Guard);
        var signature = new OpSignature("Attention", ElementType.F32) { HeadDim = headDim };
        if (!Runs(signature, ops => ops.Attention(dq.View, dk.View, dv.View, dy.View, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, scale), dy))
            return;

        var (expected, magnitude) = Float64Oracles.Attention(q, k, v, tokens, qHeads, kvHeads, headDim, vHeadDim, queryStart, scale,
            kvHeads * headDim, kvHeads * vHeadDim);
        var actual = dy.ToArray();
        Close(expected, magnitude, actual.AsSpan(0, expected.Length), "Attention", ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }
}

/// <summary>
/// MlaAttention against float64 (attention with one kv head, keys the whole cache rows, values their latent part): small
/// latents, no rope part, a decode query, and DeepSeek's 512 + 64 = 576 (the support table's row); a NaN cache tail.
/// </summary>
public abstract class MlaAttentionConformance : ConformanceTest
{
    public static TheoryData<int, int, int, int, int, int> Cases() => new()
    {
        // tokens, heads, latentDim, ropeDim, kvLength, queryStart
        { 1, 2, 16, 4, 5, 0 },
        { 3, 4, 32, 8, 11, 8 },
        { 1, 3, 7, 0, 9, 8 },
        { 2, 3, 512, 64, 9, 7 },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void MlaAttentionMatchesFloat64(int tokens, int heads, int latentDim, int ropeDim, int kvLength, int queryStart)
    {
        int rowDim = latentDim + ropeDim;
        const float scale = 0.2f;
        var q = RandomValues(tokens * heads * rowDim, 31);
        var cache = RandomValues(kvLength * rowDim, 32, 0.5f);
        using var dq = Upload(q);
        using var dcache = Upload(cache.Concat(Nan(2 * rowDim)).ToArray());
        using var dy = Poisoned(tokens * heads * latentDim + Guard);
        var signature = new OpSignature("MlaAttention", ElementType.F32) { HeadDim = rowDim };
        if (!Runs(signature, ops => ops.MlaAttention(dq.View, dcache.View, dy.View, heads, latentDim, ropeDim, kvLength, queryStart, scale), dy))
            return;

        var (expected, magnitude) = Float64Oracles.Attention(q, cache, cache, tokens, heads, 1, rowDim, latentDim, queryStart, scale, rowDim, rowDim);
        var actual = dy.ToArray();
        Close(expected, magnitude, actual.AsSpan(0, expected.Length), "MlaAttention", ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class AttentionReferenceConformance : AttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class AttentionIlgpuCpuConformance : AttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class AttentionCpuConformance : AttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class AttentionIlgpuCudaConformance : AttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class AttentionNativeConformance : AttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class MlaAttentionReferenceConformance : MlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class MlaAttentionIlgpuCpuConformance : MlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class MlaAttentionCpuConformance : MlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class MlaAttentionIlgpuCudaConformance : MlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class MlaAttentionNativeConformance : MlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
