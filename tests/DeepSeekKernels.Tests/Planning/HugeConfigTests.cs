using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Planning;

/// <summary>
/// `dsk info` and `dsk plan` on configs with absurd but legal numbers: answered at once (no per-layer loops),
/// and every size either exact or an <see cref="OverflowException"/> that names the quantity, never a wrapped figure.
/// </summary>
public class HugeConfigTests
{
    /// <summary><paramref name="json"/> with <paramref name="edit"/> applied, parsed.</summary>
    static ModelShape Shape(string json, Action<JsonObject>? edit = null)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        edit?.Invoke(node);
        return ModelShapes.From(ModelConfig.Parse(node.ToJsonString(), "/models/huge/config.json"));
    }

    [Fact]
    public void MoeLayersInClosedFormEqualsCountingEveryLayer()
    {
        var v3 = Shape(HubConfigs.DeepSeekV3);
        int cases = 0;
        foreach (int experts in new[] { 0, 1, 256 })
            for (int layers = 0; layers <= 40; layers++)
                for (int first = 0; first <= layers + 3; first++)
                    for (int freq = 1; freq <= 7; freq++)
                    {
                        var s = v3 with { Experts = experts, Layers = layers, FirstDenseLayers = first, MoeLayerFrequency = freq };
                        int counted = Enumerable.Range(0, layers).Count(s.IsMoeLayer);
                        Assert.True(counted == s.MoeLayers, $"layers {layers}, first_k_dense_replace {first}, moe_layer_freq {freq}, experts {experts}: {s.MoeLayers}, counted {counted}");
                        cases++;
                    }
        Assert.True(cases > 10_000);
    }

    [Theory]
    [InlineData(0, 1, int.MaxValue), InlineData(1, 1, int.MaxValue - 1), InlineData(3, 2, 1_073_741_822)]
    [InlineData(int.MaxValue - 1, 1, 1), InlineData(int.MaxValue, 1, 0), InlineData(0, int.MaxValue, 1), InlineData(5, int.MaxValue, 0)]
    public void MoeLayersOfIntMaxValueLayers(int first, int freq, int expected)
    {
        var s = Shape(HubConfigs.DeepSeekV3) with { Layers = int.MaxValue, FirstDenseLayers = first, MoeLayerFrequency = freq };
        Assert.Equal(expected, s.MoeLayers);
    }

    [Fact]
    public void AnInventoryOfIntMaxValueLayersIsExact()
    {
        // V2-Lite's layers are small enough that 2^31 - 1 of them still count in 64 bits (about 1.2e18 parameters).
        ModelShape WithLayers(int layers) => Shape(HubConfigs.DeepSeekV2Lite, c => c["num_hidden_layers"] = layers);
        var two = ParameterInventory.Of(WithLayers(2));
        var three = ParameterInventory.Of(WithLayers(3));
        var huge = ParameterInventory.Of(WithLayers(int.MaxValue));
        Assert.Equal(int.MaxValue - 1, huge.Shape.MoeLayers); // first_k_dense_replace = 1
        Assert.Equal(checked(two.Total + (int.MaxValue - 2L) * (three.Total - two.Total)), huge.Total);
        Assert.Equal(checked(two.ActivePerToken + (int.MaxValue - 2L) * (three.ActivePerToken - two.ActivePerToken)), huge.ActivePerToken);
    }

    [Theory]
    [InlineData(WeightQuantization.None), InlineData(WeightQuantization.Fp8), InlineData(WeightQuantization.Int4)]
    public void AKvCacheOf2To63BytesOrMoreIsRefusedNotWrapped(WeightQuantization format)
    {
        // `dsk plan --batch 1602202737 --context 163840` on DeepSeek-V3: 70,272 B x 163,840 x 1,602,202,737 wrapped to a small figure.
        var v3 = ParameterInventory.Of(Shape(HubConfigs.DeepSeekV3));
        var request = new PlanRequest(Context: 163_840, Batch: 1_602_202_737, GpuMemoryBytes: 80_000_000_000);
        var e = Assert.Throws<OverflowException>(() => MemoryPlan.Compute(v3, format, request));
        Assert.Equal("the KV cache (68.6 KiB per token x 163,840 tokens x 1,602,202,737 sequences) is 2^63 bytes or more", e.Message);
    }

    [Theory]
    [InlineData("R1-Distill-Llama-8B"), InlineData("DeepSeek-V3"), InlineData("DeepSeek-V2-Lite"), InlineData("R1-Distill-Qwen-7B")]
    public void AnInventoryOf2To63ParametersOrMoreIsRefusedNotWrapped(string name)
    {
        string json = name switch
        {
            "R1-Distill-Llama-8B" => HubConfigs.R1DistillLlama8B,
            "DeepSeek-V3" => HubConfigs.DeepSeekV3,
            "DeepSeek-V2-Lite" => HubConfigs.DeepSeekV2Lite,
            _ => HubConfigs.R1DistillQwen7B,
        };
        // Legal ints all near int.MaxValue; hidden_size a multiple of the head count (2^31 - 128 = 2^7 x 16,777,215).
        var shape = Shape(json, c =>
        {
            c["hidden_size"] = int.MaxValue - 127;
            c["vocab_size"] = int.MaxValue;
            c["num_hidden_layers"] = int.MaxValue;
        });
        var e = Assert.Throws<OverflowException>(() => ParameterInventory.Of(shape));
        Assert.Matches(@"^the number of parameters of (the model \(the sum of its \d+ weight groups\)|weight group '[^']+' \([\d,]+ matrices of \[[\d,]+, [\d,]+\]\)) is 2\^63 or more$", e.Message);
    }

    [Fact]
    public void TheOverflowingGroupIsNamedNotTheSumItWasPartOf()
    {
        // `dsk info` on DeepSeek-V3 with 2^31 - 1 layers: the routed experts alone are past 2^63.
        var shape = Shape(HubConfigs.DeepSeekV3, c => c["num_hidden_layers"] = int.MaxValue);
        var e = Assert.Throws<OverflowException>(() => ParameterInventory.Of(shape));
        Assert.Equal("the number of parameters of weight group 'experts gate/up_proj' (1,099,511,625,728 matrices of [2,048, 7,168]) is 2^63 or more", e.Message);
    }

    [Fact]
    public void TwoTablesOf2To62ParametersAreRefusedAsATotal()
    {
        // Each of embed_tokens, lm_head and q_proj (about 2^62 each) counts in 64 bits; together they do not.
        var shape = Shape(HubConfigs.R1DistillLlama8B, c =>
        {
            c["hidden_size"] = int.MaxValue - 127;
            c["vocab_size"] = int.MaxValue;
            c["num_hidden_layers"] = 1;
        });
        var e = Assert.Throws<OverflowException>(() => ParameterInventory.Of(shape));
        Assert.Equal("the number of parameters of the model (the sum of its 9 weight groups) is 2^63 or more", e.Message);
    }

    [Fact]
    public void AnActivationBufferOf2To63ElementsOrMoreIsNamed()
    {
        var shape = Shape(HubConfigs.DeepSeekV3) with { Heads = int.MaxValue, QkNopeHeadDim = int.MaxValue };
        var e = Assert.Throws<OverflowException>(() => WorkspaceLayout.Bytes(shape, 256));
        Assert.Equal("the activation buffer 'q' (256 x 2,147,483,647 x 2,147,483,711) is 2^63 elements or more", e.Message);
    }

    /// <summary>
    /// Random shapes with dimensions up to int.MaxValue (log-uniform) and random requests: each plan is either exact
    /// (every group, line and total equal to the same sum in 128-bit arithmetic) or refused with an OverflowException
    /// that names the quantity; never wrapped, never another exception.
    /// </summary>
    [Fact]
    public void EverySizeIsExactOrRefused()
    {
        var random = new Random(1234);
        int Dim() => (int)Math.Min(int.MaxValue, Math.Round(Math.Exp(random.NextDouble() * Math.Log(int.MaxValue))));
        string[] configs = [HubConfigs.DeepSeekV3, HubConfigs.DeepSeekV2Lite, HubConfigs.R1DistillLlama8B, HubConfigs.R1DistillQwen7B];
        var tally = new FuzzTally("plans of huge configs");
        for (int i = 0; i < 400; i++)
        {
            var baseShape = Shape(configs[i % configs.Length]);
            int experts = baseShape.Experts > 0 ? Dim() : 0;
            var shape = baseShape with
            {
                Vocab = Dim(), Hidden = Dim(), Layers = Dim(), Heads = Dim(), KvHeads = Dim(), HeadDim = Dim(), Intermediate = Dim(),
                KvLoraRank = Dim(), QkNopeHeadDim = Dim(), QkRopeHeadDim = Dim(), VHeadDim = Dim(),
                QLoraRank = baseShape.QLoraRank is null ? null : Dim(),
                Experts = experts, SharedExperts = baseShape.SharedExperts > 0 ? Dim() : 0,
                ExpertsPerToken = experts > 0 ? random.Next(1, experts + 1) : 0, MoeIntermediate = Dim(),
                FirstDenseLayers = Dim(), MoeLayerFrequency = Dim(),
            };
            var request = new PlanRequest(Context: Dim(), Batch: Dim(), GpuMemoryBytes: long.MaxValue, PrefillChunk: Dim());
            var format = (WeightQuantization)(i % 3);
            tally.Run(i, shape.ToString(), () =>
            {
                var inventory = ParameterInventory.Of(shape);
                foreach (var g in inventory.Groups)
                    Assert.Equal((Int128)g.Rows * g.Cols * g.Count, g.Parameters);
                Assert.Equal(inventory.Groups.Aggregate(Int128.Zero, (sum, g) => sum + g.Parameters), inventory.Total);
                var plan = MemoryPlan.Compute(inventory, format, request);
                Assert.All(plan.Lines, l => Assert.True(l.Bytes >= 0, $"{l.Item}: {l.Bytes}"));
                Assert.Equal(plan.Lines.Aggregate(Int128.Zero, (sum, l) => sum + l.Bytes), plan.Total);
                // whole pages for every sequence, plus the page tables
                var kv = request.KvLayout(shape);
                Assert.Equal(kv.Bytes - kv.AttentionWorkspaceBytes, plan.Lines.Single(l => l.Item == "KV cache").Bytes);
                Assert.Equal(kv.AttentionWorkspaceBytes, plan.Lines.Single(l => l.Item == "attention workspace").Bytes);
                Assert.InRange((Int128)kv.PoolBytes, (Int128)plan.KvBytesPerToken * request.Context * request.Batch,
                    (Int128)plan.KvBytesPerToken * (request.Context + kv.PageSize - 1L) * request.Batch);
                Assert.InRange(plan.MaxContext, 0, shape.MaxPositions);
            }, e => e is OverflowException o && o.Message.StartsWith("the ", StringComparison.Ordinal)
                && (o.Message.Contains(" is 2^63") || o.Message.Contains(", the most a 32-bit index addresses")));
        }
        tally.AssertClean();
    }
}
