using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// bf16 activations, the specification: an op on bf16 tensors computes in float32 on the exactly widened inputs and
/// rounds each output once to bf16 (nearest even). On the reference that is bit for bit the float32 op on the widened
/// inputs, rounded; every op that takes activations is checked so here, and refuses other element types.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class Bf16ActivationTests
{
    static DeepSeekKernels.Ops Ref => ReferenceOps;

    static BFloat16[] Bf16(float[] values) => values.Select(BFloat16.FromSingle).ToArray();

    static float[] Widen(BFloat16[] values) => values.Select(v => v.ToSingle()).ToArray();

    /// <summary>Runs <paramref name="op"/> on bf16 inputs and on their widened f32 copies; the bf16 outputs must be the f32 outputs rounded.</summary>
    static void Check(string what, float[][] inputs, int[] outputLengths, Action<DeviceTensor[], DeviceTensor[]> op)
    {
        var rounded = inputs.Select(Bf16).ToArray();
        var bfIn = rounded.Select(r => Upload(r)).ToArray();
        var bfOut = outputLengths.Select(n => Upload(Enumerable.Repeat(BFloat16.FromSingle(float.NaN), n).ToArray())).ToArray();
        var f32In = rounded.Select(r => Upload(Widen(r))).ToArray();
        var f32Out = outputLengths.Select(n => Poisoned(n)).ToArray();
        try
        {
            op([.. bfIn.Select(b => (DeviceTensor)b)], [.. bfOut.Select(b => (DeviceTensor)b)]);
            op([.. f32In.Select(b => (DeviceTensor)b)], [.. f32Out.Select(b => (DeviceTensor)b)]);
            for (int o = 0; o < outputLengths.Length; o++)
            {
                var expected = f32Out[o].ToArray().Select(v => BFloat16.FromSingle(v).Bits).ToArray();
                var actual = bfOut[o].ToArray().Select(v => v.Bits).ToArray();
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{what}: output {o} is not the float32 result rounded once to bf16");
            }
        }
        finally
        {
            foreach (var b in bfIn.Concat(bfOut)) b.Dispose();
            foreach (var b in f32In.Concat(f32Out)) b.Dispose();
        }
    }

    [Fact]
    public void ElementwiseOps()
    {
        var x = RandomValues(6 * 16, 1);
        var y = RandomValues(6 * 16, 2);
        Check("Add", [x, y], [x.Length], (i, o) => Ref.Add(i[0], i[1], o[0]));
        Check("Scale", [x], [x.Length], (i, o) => Ref.Scale(i[0], 0.37f, o[0]));
        Check("SiluAndMul", [x], [x.Length / 2], (i, o) => Ref.SiluAndMul(i[0], o[0], 8));
        Check("Softmax", [x], [x.Length], (i, o) => Ref.Softmax(i[0], o[0], 16));
        Check("CopyColumns", [x], [6 * 5], (i, o) => Ref.CopyColumns(i[0], 16, 3, o[0], 5, 0, 5, 6));
    }

    [Fact]
    public void LinearHeadwiseAndEmbedding()
    {
        using var w = new TestWeight("bf16", 1, 24, 40, seed: 3);
        var x = RandomValues(5 * 40, 4);
        Check("Linear", [x], [5 * 24], (i, o) => Ref.Linear(i[0], w.Matrix, default, o[0]));
        using var heads = new TestWeight("f32", 3, 8, 12, seed: 5);
        var hx = RandomValues(2 * 3 * 12, 6);
        Check("HeadwiseLinear", [hx], [2 * 3 * 8], (i, o) => Ref.HeadwiseLinear(i[0], heads.Matrix, o[0]));
        using var ids = Upload(new[] { 3, 0, 23 });
        Check("Embedding", [], [3 * 40], (_, o) => Ref.Embedding(ids.View, w.Matrix, o[0]));
    }

    [Fact]
    public void RopeAttentionAndRouting()
    {
        using var table = RopeTable.Create(TestDevices.Cpu, RopeScaling.Plain(10000), 8, 32);
        using var positions = Upload(new[] { 0, 5, 31 });
        var q = RandomValues(3 * 2 * 8, 7);
        Check("Rope", [q], [q.Length], (i, o) =>
        {
            i[0].AsViewCopyTo(o[0]);
            Ref.Rope(o[0], positions.View, table, 2, 8, 0, RopeLayout.HalfSplit);
        });
        var k = RandomValues(4 * 1 * 8, 8);
        var v = RandomValues(4 * 1 * 8, 9);
        var q2 = RandomValues(2 * 2 * 8, 10);
        Check("Attention", [q2, k, v], [2 * 2 * 8], (i, o) => Ref.Attention(i[0], i[1], i[2], o[0], 2, 1, 8, 8, 4, 2, 0.3f));
        var logits = RandomValues(3 * 8, 11);
        var routing = new MoeRouting { Experts = 8, TopK = 2, Scoring = MoeScoring.Softmax, Method = MoeTopKMethod.Greedy };
        using var idsOut = Upload(new int[6]);
        using var weightsOut = Poisoned(6);
        using var idsF32 = Upload(new int[6]);
        using var weightsF32 = Poisoned(6);
        var rounded = Bf16(logits);
        using var bf = Upload(rounded);
        using var f32 = Upload(Widen(rounded));
        Ref.MoeRoute(bf.View, default, idsOut.View, weightsOut.View, routing);
        Ref.MoeRoute(f32.View, default, idsF32.View, weightsF32.View, routing);
        Assert.Equal(idsF32.ToArray(), idsOut.ToArray());
        Assert.Equal(weightsF32.ToArray(), weightsOut.ToArray()); // routing weights stay float32
    }

    [Fact]
    public void OtherElementTypesAreRefusedByName()
    {
        using var ints = Upload(new int[16]);
        using var y = Poisoned(16);
        var e = Assert.Throws<NotSupportedException>(() => Ref.Add(ints.View, ints.View, y.View));
        Assert.Equal("Add: x holds i32; activations are f32 or bf16.", e.Message);
    }
}

/// <summary>A helper for in-place ops: copy one activation tensor's elements into another of the same type.</summary>
file static class TensorCopy
{
    public static void AsViewCopyTo(this DeviceTensor from, DeviceTensor to)
    {
        if (from.ElementType == ElementType.BF16)
            from.AsView<BFloat16>().CopyTo(to.AsView<BFloat16>());
        else
            from.AsView<float>().CopyTo(to.AsView<float>());
    }
}
