using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Planning;

/// <summary>
/// `dsk plan` and `dsk info` against figures computed by hand (a separate script summing every weight
/// matrix of the published architectures) for real configs. The totals agree with the published sizes:
/// DeepSeek-V3 671B (37B active), V2-Lite 15.7B, R1-Distill-Llama-8B 8.03B, -70B 70.6B, R1-Distill-Qwen-7B 7.62B.
/// </summary>
/// <remarks>
/// Quantizable, Fp8Blocks, Int4Groups and Int4Dense follow the runner's --quant (recomputed 2026-12 by a second script,
/// which first reproduced the earlier figures): linear weights including lm_head, excluding MLA's kv_b_proj (loaded
/// into dense per-head matrices); FP8 blocks of 128x128 with ragged edges; INT4 groups only of matrices whose in
/// features are a multiple of 128, the others (Int4Dense: V2-Lite's dense-layer down_proj, in 10,944) kept dense.
/// </remarks>
public class PlanTests
{
    public sealed record Expected(string Name, string Json, long Total, long Active, long Quantizable, long Fp8Blocks, long Int4Groups, long Int4Dense,
        long KvBytesPerToken);

    static readonly Expected[] Models =
    [
        new("DeepSeek-V3", HubConfigs.DeepSeekV3, 671_026_419_200, 37_552_297_472, 668_968_878_080, 40_832_328, 5_226_319_360, 0, 70_272),
        new("DeepSeek-V2-Lite", HubConfigs.DeepSeekV2Lite, 15_706_484_224, 2_661_150_208, 15_436_611_584, 942_416, 120_423_424, 22_413_312, 31_104),
        new("R1-Distill-Llama-8B", HubConfigs.R1DistillLlama8B, 8_030_261_248, 8_030_261_248, 7_504_658_432, 458_048, 58_630_144, 0, 131_072),
        new("R1-Distill-Llama-70B", HubConfigs.R1DistillLlama70B, 70_553_706_496, 70_553_706_496, 69_501_714_432, 4_242_048, 542_982_144, 0, 327_680),
        new("R1-Distill-Qwen-7B", HubConfigs.R1DistillQwen7B, 7_615_616_512, 7_615_616_512, 7_070_285_824, 431_536, 55_236_608, 0, 57_344),
    ];

    public static TheoryData<string> Names => [.. Models.Select(m => m.Name)];

    static (ParameterInventory Inventory, Expected Expected) Of(string name)
    {
        var expected = Models.Single(m => m.Name == name);
        var shape = ModelShapes.From(ModelConfig.Parse(expected.Json, name));
        return (ParameterInventory.Of(shape), expected);
    }

    [Theory, MemberData(nameof(Names))]
    public void ParameterCountsMatchTheHandComputedFigures(string name)
    {
        var (inventory, e) = Of(name);
        Assert.Equal(e.Total, inventory.Total);
        Assert.Equal(e.Active, inventory.ActivePerToken);
        Assert.Equal(e.Quantizable, inventory.Groups.Where(g => g.Quantizable).Sum(g => g.Parameters));
    }

    [Theory, MemberData(nameof(Names))]
    public void WeightBytesPerFormatAreTheFormulas(string name)
    {
        var (inventory, e) = Of(name);
        var request = new PlanRequest(Context: 8192, Batch: 1, GpuMemoryBytes: 80_000_000_000);
        long kept = (e.Total - e.Quantizable) * 2;
        Assert.Equal(e.Quantizable * 2 + kept, Weights(MemoryPlan.Compute(inventory, WeightQuantization.None, request)));
        Assert.Equal(e.Quantizable + e.Fp8Blocks * 4 + kept, Weights(MemoryPlan.Compute(inventory, WeightQuantization.Fp8, request)));
        // INT4: half a byte per weight, a bf16 scale and a bf16 zero point per group, the matrices it cannot group at 2 B
        Assert.Equal((e.Quantizable - e.Int4Dense) / 2 + e.Int4Groups * 4 + e.Int4Dense * 2 + kept, Weights(MemoryPlan.Compute(inventory, WeightQuantization.Int4, request)));
    }

    /// <summary>The weight lines' sum, which <see cref="MemoryPlan.WeightBytes"/> must be.</summary>
    static long Weights(MemoryPlan plan)
    {
        long sum = plan.Lines.Where(l => l.Item is not ("KV cache" or "attention workspace" or "activations" or "RoPE cos/sin tables" or "CUDA context and libraries")).Sum(l => l.Bytes);
        Assert.Equal(sum, plan.WeightBytes);
        return sum;
    }

    [Theory, MemberData(nameof(Names))]
    public void KvCacheIsLayersTimesRowTimesContextTimesBatch(string name)
    {
        var (inventory, e) = Of(name);
        var plan = MemoryPlan.Compute(inventory, WeightQuantization.Fp8, new PlanRequest(Context: 32768, Batch: 4, GpuMemoryBytes: 80_000_000_000));
        Assert.Equal(e.KvBytesPerToken, plan.KvBytesPerToken);
        // 32768 positions are whole pages (16 or 64): the pool is exactly this, plus the page tables
        var layout = new PlanRequest(Context: 32768, Batch: 4, GpuMemoryBytes: 80_000_000_000).KvLayout(inventory.Shape);
        Assert.Equal(e.KvBytesPerToken * 32768 * 4, layout.PoolBytes);
        Assert.Equal(layout.Bytes - layout.AttentionWorkspaceBytes, plan.Lines.Single(l => l.Item == "KV cache").Bytes);
        Assert.Equal(layout.AttentionWorkspaceBytes, plan.Lines.Single(l => l.Item == "attention workspace").Bytes);
        Assert.InRange(layout.Bytes - layout.PoolBytes - layout.MetadataBytes - layout.AttentionWorkspaceBytes, 0, 5 * DeepSeekKernels.Runtime.DeviceArena.Alignment); // alignment padding only
    }

    [Fact]
    public void DeepSeekV3InFp8DoesNotFitOneH100ButLlama8BDoes()
    {
        var (v3, _) = Of("DeepSeek-V3");
        var request = new PlanRequest(Context: 8192, Batch: 1, GpuMemoryBytes: 80_000_000_000);
        var plan = MemoryPlan.Compute(v3, WeightQuantization.Fp8, request);
        Assert.False(plan.Fits);
        Assert.Equal(0, plan.MaxContext);
        Assert.True(plan.Total > 673_000_000_000);

        var (llama, _) = Of("R1-Distill-Llama-8B");
        var bf16 = MemoryPlan.Compute(llama, WeightQuantization.None, request);
        Assert.True(bf16.Fits);
        // The rest of the plan held fixed, the longest context that fits fills the memory with KV cache: within one page
        // (16 positions of 128 KiB) and the RoPE tables' share of the estimate per position.
        long fixedPart = bf16.Total - bf16.KvBytesPerToken * 8192 - bf16.RopeBytesPerPosition * 8192;
        long estimate = (80_000_000_000 - fixedPart) / (bf16.KvBytesPerToken + bf16.RopeBytesPerPosition);
        Assert.InRange(bf16.MaxContext, Math.Min(131072, estimate - 32), Math.Min(131072, estimate));
    }

    [Fact]
    public void ActivationsAreTheRunnersOwnWorkspace()
    {
        var (inventory, _) = Of("R1-Distill-Qwen-7B");
        var plan = MemoryPlan.Compute(inventory, WeightQuantization.None, new PlanRequest(Context: 4096, Batch: 1, GpuMemoryBytes: 24L << 30, PrefillChunk: 256));
        Assert.Equal(WorkspaceLayout.Bytes(inventory.Shape, 256), plan.Lines.Single(l => l.Item == "activations").Bytes);
    }

    [Theory, MemberData(nameof(Names))]
    public void RopeTablesCoverTheContextThePlanRuns(string name)
    {
        var (inventory, _) = Of(name);
        var s = inventory.Shape;
        int rotary = s.IsMla ? s.QkRopeHeadDim : s.HeadDim;
        var line = MemoryPlan.Compute(inventory, WeightQuantization.None, new PlanRequest(Context: 4096, Batch: 2, GpuMemoryBytes: 80_000_000_000))
            .Lines.Single(l => l.Item == "RoPE cos/sin tables");
        Assert.Equal(4096L * rotary * 4, line.Bytes);
        Assert.Equal($"{4096:N0} positions (the context) x {rotary} x 4 B", line.Formula);
    }

    [Fact]
    public void MaxPositionsOfIntMaxValueDoesNotPlanTablesForEveryPosition()
    {
        var inventory = ParameterInventory.Of(ModelShapes.From(ModelConfig.Parse(
            HubConfigs.R1DistillLlama8B.Replace("\"max_position_embeddings\": 131072", "\"max_position_embeddings\": 2147483647"), "llama")));
        Assert.Equal(int.MaxValue, inventory.Shape.MaxPositions);
        var plan = MemoryPlan.Compute(inventory, WeightQuantization.None, new PlanRequest(Context: 8192, Batch: 1, GpuMemoryBytes: 80_000_000_000));
        Assert.Equal(8192L * 128 * 4, plan.Lines.Single(l => l.Item == "RoPE cos/sin tables").Bytes);
        Assert.True(plan.Fits);
    }

    [Theory]
    [InlineData("R1-Distill-Llama-8B", WeightQuantization.None, 24L << 30), InlineData("R1-Distill-Qwen-7B", WeightQuantization.Int4, 12L << 30)]
    [InlineData("DeepSeek-V2-Lite", WeightQuantization.Fp8, 20L << 30), InlineData("R1-Distill-Llama-70B", WeightQuantization.Int4, 48L << 30)]
    public void MaxContextIsTheLongestContextThatFits(string name, WeightQuantization format, long gpu)
    {
        // KV cache and RoPE tables grow with the context; with contexts past the prefill chunk nothing else does.
        var (inventory, _) = Of(name);
        var max = MemoryPlan.Compute(inventory, format, new PlanRequest(Context: 4096, Batch: 3, GpuMemoryBytes: gpu)).MaxContext;
        Assert.InRange(max, 256, inventory.Shape.MaxPositions - 1); // past the prefill chunk, below the cap
        Assert.True(MemoryPlan.Compute(inventory, format, new PlanRequest(Context: (int)max, Batch: 3, GpuMemoryBytes: gpu)).Fits);
        Assert.False(MemoryPlan.Compute(inventory, format, new PlanRequest(Context: (int)max + 1, Batch: 3, GpuMemoryBytes: gpu)).Fits);
    }

    [Fact]
    public void BadRequestsAreRefused()
    {
        var (inventory, _) = Of("R1-Distill-Qwen-7B");
        Assert.Throws<ArgumentOutOfRangeException>(() => MemoryPlan.Compute(inventory, WeightQuantization.None, new PlanRequest(0, 1, 1L << 30)));
        Assert.Throws<ArgumentOutOfRangeException>(() => MemoryPlan.Compute(inventory, WeightQuantization.None, new PlanRequest(16, 0, 1L << 30)));
    }

    /// <summary>
    /// The plan counts the quantised weights exactly as the loader stores them: for the bf16 fixtures, what --quant
    /// int4 or fp8 saves over none is the same in the plan (from config.json alone) as in
    /// <see cref="ModelLoader.EstimateBytes"/> (from the tensors; equal to what loading allocates, QuantizedLoadingTests).
    /// The same set of matrices quantised or kept dense, the same bytes for each. (deepseek_v3_fp8 is left out: its
    /// weights stay FP8 whatever --quant says, which the plan does not model; dsk plan says so.)
    /// </summary>
    [Theory]
    [InlineData("deepseek_v3"), InlineData("deepseek_v2_lite"), InlineData("llama"), InlineData("qwen2"), InlineData("dsv3-pydoc-tiny")]
    public void ThePlanCountsQuantisedWeightsAsTheLoaderStoresThem(string name)
    {
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.Folder(name));
        var inventory = ParameterInventory.Of(ModelShapes.From(checkpoint.Config));
        var request = new PlanRequest(Context: 64, Batch: 1, GpuMemoryBytes: 1L << 30);
        long planNone = MemoryPlan.Compute(inventory, WeightQuantization.None, request).WeightBytes;
        long loadNone = ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, 64).Weights;
        foreach (var q in new[] { WeightQuantization.Int4, WeightQuantization.Fp8 })
        {
            long planSaves = planNone - MemoryPlan.Compute(inventory, q, request).WeightBytes;
            long loaderSaves = loadNone - ModelLoader.EstimateBytes(checkpoint, ModelLoader.DefaultChunkTokens, 64, q).Weights;
            Assert.True(loaderSaves > 0, $"{name} {q}: nothing quantised");
            Assert.Equal(loaderSaves, planSaves);
        }
    }
}
