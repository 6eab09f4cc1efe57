using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The small ops' operands share one element type (what their kernels and the C ABI take): a call that mixes f32 and bf16 is
/// refused at the op API, before any backend is asked, naming both operands, and writes nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class ElementwiseOneTypeTests
{
    [Fact]
    public void MixedF32AndBf16OperandsAreRefusedByName()
    {
        var ops = ReferenceOps;
        using var f = Upload(RandomValues(32, 1));
        using var b = Upload(RandomValues(32, 2).Select(BFloat16.FromSingle).ToArray());
        using var outF = Poisoned(32);
        void Refused(Action call, string message)
        {
            var e = Assert.ThrowsAny<NotSupportedException>(call);
            Assert.Equal(message, e.Message);
            Assert.All(outF.ToArray(), v => Assert.True(float.IsNaN(v)));
        }
        Refused(() => ops.Add(f.View, b.View, outF.View), "Add: x holds f32 but y holds bf16; Add's operands share one element type.");
        Refused(() => ops.Add(b.View, b.View, outF.View), "Add: x holds bf16 but destination holds f32; Add's operands share one element type.");
        Refused(() => ops.Scale(b.View, 2f, outF.View), "Scale: x holds bf16 but destination holds f32; Scale's operands share one element type.");
        Refused(() => ops.SiluAndMul(b.View, outF.View, 4), "SiluAndMul: x holds bf16 but destination holds f32; SiluAndMul's operands share one element type.");
        Refused(() => ops.Softmax(b.View, outF.View, 8), "Softmax: x holds bf16 but destination holds f32; Softmax's operands share one element type.");
        Refused(() => ops.CopyColumns(b.View, 8, 0, outF.View, 8, 0, 8, 4),
            "CopyColumns: source holds bf16 but destination holds f32; CopyColumns's operands share one element type.");
    }
}
