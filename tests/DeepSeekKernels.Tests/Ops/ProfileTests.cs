using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// <see cref="DeepSeekKernels.Ops.WithProfiling"/>: every call counted once under its signature and weight shape, with its
/// time in the backend; results unchanged; a reset clears it; Ops without profiling report nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class ProfileTests
{
    [Theory]
    [InlineData(Backend.Cpu)]
    [InlineData(Backend.Reference)]
    [InlineData(Backend.Ilgpu)]
    public void EveryCallIsCountedUnderItsSignatureAndWeightShape(Backend backend)
    {
        var plain = DeepSeekKernels.Ops.Create(CpuRuntime, backend);
        var ops = plain.WithProfiling();
        Assert.True(ops.Profiling);
        Assert.False(plain.Profiling);
        Assert.Equal(backend, ops.Backend);
        using var wide = new TestWeight("bf16", 1, 40, 24, seed: 3);
        using var narrow = new TestWeight("bf16", 1, 8, 24, seed: 4);
        using var norm = Upload(RandomValues(24, 5, 0.3f));
        using var x = Upload(RandomValues(2 * 24, 6));
        using var h = Poisoned(2 * 24);
        using var y = Poisoned(2 * 40);
        using var z = Poisoned(2 * 8);
        using var expected = Poisoned(2 * 40);

        ops.RmsNorm(x.View, norm.View, h.View, 24, 1e-6f);
        ops.Linear(h.View, wide.Matrix, default, y.View);
        ops.Linear(h.View, wide.Matrix, default, y.View);
        ops.Linear(h.View, narrow.Matrix, default, z.View);

        var profile = ops.Profile;
        Assert.Equal(3, profile.Count);
        var linear = new OpSignature("Linear", ElementType.F32) { Scheme = WeightScheme.Dense, Weight = ElementType.BF16 };
        var wideRecord = Assert.Single(profile, r => r.WeightRows == 40);
        Assert.Equal((linear, 24, 1, 2L), (wideRecord.Signature, wideRecord.WeightCols, wideRecord.WeightCount, wideRecord.Calls));
        Assert.Equal("Linear(x=f32, w=bf16 dense) [40x24]", wideRecord.Label);
        var narrowRecord = Assert.Single(profile, r => r.WeightRows == 8);
        Assert.Equal(1L, narrowRecord.Calls);
        var normRecord = Assert.Single(profile, r => r.Signature.Op == "RmsNorm");
        Assert.Equal((0, 0, 1L), (normRecord.WeightRows, normRecord.WeightCount, normRecord.Calls));
        Assert.Equal(normRecord.Signature.ToString(), normRecord.Label);
        Assert.All(profile, r => Assert.True(r.Seconds > 0 && r.Seconds < 60, $"{r.Label}: {r.Seconds} s"));
        for (int i = 1; i < profile.Count; i++)
            Assert.True(profile[i - 1].Seconds >= profile[i].Seconds, "the longest first");

        // the profiled ops compute what the plain ones do
        plain.Linear(h.View, wide.Matrix, default, expected.View);
        Exact(expected.ToArray(), y.ToArray(), "profiled Linear");
        Assert.Empty(plain.Profile);

        ops.ResetProfile();
        Assert.Empty(ops.Profile);
        ops.Linear(h.View, narrow.Matrix, default, z.View);
        Assert.Equal(1L, Assert.Single(ops.Profile).Calls);
    }

    [Fact]
    public void ProfilingKeepsTheFallbackAndTheExclusions()
    {
        var ops = DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Cpu, referenceFallback: true).Excluding("Scale").WithProfiling();
        Assert.True(ops.ReferenceFallback);
        Assert.Equal(["Scale"], ops.ExcludedOps);
        using var x = Upload(RandomValues(16, 7));
        using var y = Poisoned(16);
        ops.Scale(x.View, 2f, y.View);
        Assert.Equal(1L, Assert.Single(ops.FallbackReport).Calls);
        Assert.Equal("Scale", Assert.Single(ops.Profile).Signature.Op);
        // Ops derived from profiled ops add to the same profile
        var more = ops.Excluding("Add");
        Assert.True(more.Profiling);
        more.Add(x.View, x.View, y.View);
        Assert.Equal(["Add", "Scale"], ops.Profile.Select(r => r.Signature.Op).Order(StringComparer.Ordinal));
    }
}
