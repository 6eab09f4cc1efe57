using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Tests.Checkpoints;

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
}
