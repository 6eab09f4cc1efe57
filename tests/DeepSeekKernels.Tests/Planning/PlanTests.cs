using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Planning;

/// <summary>
/// `dsk plan` and `dsk info` against figures computed by hand (a separate script summing every weight
/// matrix of the published architectures) for real configs. The totals agree with the published sizes:
/// DeepSeek-V3 671B (37B active), V2-Lite 15.7B, R1-Distill-Llama-8B 8.03B, -70B 70.6B, R1-Distill-Qwen-7B 7.62B.
/// </summary>
public class PlanTests
{
    public sealed record Expected(string Name, string Json, long Total, long Active, long Quantizable, long Fp8Blocks, long Int4Groups, long KvBytesPerToken);

    static readonly Expected[] Models =
    [
        new("DeepSeek-V3", HubConfigs.DeepSeekV3, 671_026_419_200, 37_552_297_472, 669_065_609_216, 40_838_232, 5_227_075_072, 70_272),
        new("DeepSeek-V2-Lite", HubConfigs.DeepSeekV2Lite, 15_706_484_224, 2_661_150_208, 15_283_519_488, 933_072, 119_403_520, 31_104),
        new("R1-Distill-Llama-8B", HubConfigs.R1DistillLlama8B, 8_030_261_248, 8_030_261_248, 6_979_321_856, 425_984, 54_525_952, 131_072),
        new("R1-Distill-Llama-70B", HubConfigs.R1DistillLlama70B, 70_553_706_496, 70_553_706_496, 68_451_041_280, 4_177_920, 534_773_760, 327_680),
        new("R1-Distill-Qwen-7B", HubConfigs.R1DistillQwen7B, 7_615_616_512, 7_615_616_512, 6_525_288_448, 398_272, 50_978_816, 57_344),
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
        Assert.Equal(e.Quantizable * 2 + kept, Weights(MemoryPlan.Compute(inventory, WeightFormat.Bf16, request)));
        Assert.Equal(e.Quantizable + e.Fp8Blocks * 4 + kept, Weights(MemoryPlan.Compute(inventory, WeightFormat.Fp8, request)));
        Assert.Equal((e.Quantizable + 1) / 2 + e.Int4Groups * 2 + kept, Weights(MemoryPlan.Compute(inventory, WeightFormat.Int4, request)));
    }

    static long Weights(MemoryPlan plan) => plan.Lines.Where(l => l.Item is "linear weights" or "weight scales" or "embeddings, lm_head, norms, router (bf16)").Sum(l => l.Bytes);

    [Theory, MemberData(nameof(Names))]
    public void KvCacheIsLayersTimesRowTimesContextTimesBatch(string name)
    {
        var (inventory, e) = Of(name);
        var plan = MemoryPlan.Compute(inventory, WeightFormat.Fp8, new PlanRequest(Context: 32768, Batch: 4, GpuMemoryBytes: 80_000_000_000));
        Assert.Equal(e.KvBytesPerToken, plan.KvBytesPerToken);
        // 32768 positions are whole pages (16 or 64): the pool is exactly this, plus the page tables
        var layout = new PlanRequest(Context: 32768, Batch: 4, GpuMemoryBytes: 80_000_000_000).KvLayout(inventory.Shape);
        Assert.Equal(e.KvBytesPerToken * 32768 * 4, layout.PoolBytes);
        Assert.Equal(layout.PoolBytes + layout.MetadataBytes, plan.Lines.Single(l => l.Item == "KV cache").Bytes);
    }

    [Fact]
    public void DeepSeekV3InFp8DoesNotFitOneH100ButLlama8BDoes()
    {
        var (v3, _) = Of("DeepSeek-V3");
        var request = new PlanRequest(Context: 8192, Batch: 1, GpuMemoryBytes: 80_000_000_000);
        var plan = MemoryPlan.Compute(v3, WeightFormat.Fp8, request);
        Assert.False(plan.Fits);
        Assert.Equal(0, plan.MaxContext);
        Assert.True(plan.Total > 673_000_000_000);

        var (llama, _) = Of("R1-Distill-Llama-8B");
        var bf16 = MemoryPlan.Compute(llama, WeightFormat.Bf16, request);
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
        var plan = MemoryPlan.Compute(inventory, WeightFormat.Bf16, new PlanRequest(Context: 4096, Batch: 1, GpuMemoryBytes: 24L << 30, PrefillChunk: 256));
        Assert.Equal(WorkspaceLayout.Bytes(inventory.Shape, 256), plan.Lines.Single(l => l.Item == "activations").Bytes);
    }

    [Theory, MemberData(nameof(Names))]
    public void RopeTablesCoverTheContextThePlanRuns(string name)
    {
        var (inventory, _) = Of(name);
        var s = inventory.Shape;
        int rotary = s.IsMla ? s.QkRopeHeadDim : s.HeadDim;
        var line = MemoryPlan.Compute(inventory, WeightFormat.Bf16, new PlanRequest(Context: 4096, Batch: 2, GpuMemoryBytes: 80_000_000_000))
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
        var plan = MemoryPlan.Compute(inventory, WeightFormat.Bf16, new PlanRequest(Context: 8192, Batch: 1, GpuMemoryBytes: 80_000_000_000));
        Assert.Equal(8192L * 128 * 4, plan.Lines.Single(l => l.Item == "RoPE cos/sin tables").Bytes);
        Assert.True(plan.Fits);
    }

    [Theory]
    [InlineData("R1-Distill-Llama-8B", WeightFormat.Bf16, 24L << 30), InlineData("R1-Distill-Qwen-7B", WeightFormat.Int4, 12L << 30)]
    [InlineData("DeepSeek-V2-Lite", WeightFormat.Fp8, 20L << 30), InlineData("R1-Distill-Llama-70B", WeightFormat.Int4, 48L << 30)]
    public void MaxContextIsTheLongestContextThatFits(string name, WeightFormat format, long gpu)
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
        Assert.Throws<ArgumentOutOfRangeException>(() => MemoryPlan.Compute(inventory, WeightFormat.Bf16, new PlanRequest(0, 1, 1L << 30)));
        Assert.Throws<ArgumentOutOfRangeException>(() => MemoryPlan.Compute(inventory, WeightFormat.Bf16, new PlanRequest(16, 0, 1L << 30)));
    }
}
