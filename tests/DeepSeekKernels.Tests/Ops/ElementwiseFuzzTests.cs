using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Seeded random device-view calls of the small ops (CopyColumns, SiluAndMul, Softmax, Add, Scale), well-formed
/// and not: views cut from one shared buffer (apart, exactly aliased, shifted, empty) or their own buffers,
/// sizes and offsets from -2 to 12, factors infinite or NaN. The reference and ILGPU (CPU accelerator) must
/// agree on every call: both refuse it with the same exception type and parameter, writing nothing, or both
/// leave every buffer the same (within float32 tolerance).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class ElementwiseFuzzTests
{
    const int Cases = 500;
    const int Shared = 64;

    [Fact]
    public void TheReferenceAndIlgpuAgreeOnEveryCallAndARefusedCallWritesNothing()
    {
        var runtime = TestDevices.Cpu;
        var reference = DeepSeekKernels.Ops.Create(runtime, Backend.Reference);
        var ilgpu = DeepSeekKernels.Ops.Create(runtime, Backend.Ilgpu);
        var random = new Random(20261123);
        var tally = new Dictionary<string, (int Computed, int Refused)>();
        for (int i = 0; i < Cases; i++)
        {
            using var shared = runtime.Upload<float>(TestData.Activations(Shared, i));
            using var own = runtime.Upload<float>(TestData.Activations(Shared, 1000 + i));
            var buffers = new[] { shared, own };
            var initial = buffers.Select(b => b.ToArray()).ToArray();

            // Half the cases give the three views one length (so Add can be well-formed), the others any lengths.
            int? sameLength = random.Next(2) == 0 ? random.Next(1, 25) : null;
            DeviceView<float> View()
            {
                var buffer = buffers[random.Next(2)];
                int length = sameLength ?? random.Next(0, 25), start = random.Next(0, Shared - length + 1);
                return buffer.Slice(start, length);
            }
            int Size() => random.Next(-2, 13);
            var (x, y, z) = (View(), View(), View());
            var ints = Enumerable.Range(0, 6).Select(_ => Size()).ToArray();
            float factor = random.Next(6) switch { 0 => float.PositiveInfinity, 1 => float.NaN, _ => random.NextSingle() * 4 - 2 };
            string op = new[] { "CopyColumns", "SiluAndMul", "Softmax", "Add", "Scale" }[random.Next(5)];
            if (op == "CopyColumns" && random.Next(2) == 0)
            {
                // a well-formed block (six random sizes rarely are), with the views of just the right length,
                // the destination in the other buffer or, now and then, over the source
                int rows = random.Next(1, 4), xColumns = random.Next(1, 9), xOffset = random.Next(xColumns);
                int width = random.Next(1, xColumns - xOffset + 1), yColumns = random.Next(width, 9), yOffset = random.Next(yColumns - width + 1);
                ints = [xColumns, xOffset, yColumns, yOffset, width, rows];
                x = shared.Slice(random.Next(Shared - rows * xColumns + 1), rows * xColumns);
                var target = random.Next(4) == 0 ? shared : own;
                y = target.Slice(random.Next(Shared - rows * yColumns + 1), rows * yColumns);
            }
            void Call(DeepSeekKernels.Ops ops)
            {
                switch (op)
                {
                    case "CopyColumns": ops.CopyColumns(x, ints[0], ints[1], y, ints[2], ints[3], ints[4], ints[5]); break;
                    case "SiluAndMul": ops.SiluAndMul(x, y, ints[0]); break;
                    case "Softmax": ops.Softmax(x, y, ints[0]); break;
                    case "Add": ops.Add(x, y, z); break;
                    default: ops.Scale(x, factor, y); break;
                }
            }
            string call = $"case {i}: {op}({string.Join(", ", ints)}, factor {factor})";

            var referenceError = Attempt(() => Call(reference));
            var afterReference = buffers.Select(b => b.ToArray()).ToArray();
            for (int k = 0; k < buffers.Length; k++)
                buffers[k].CopyFromHost(initial[k]);
            var ilgpuError = Attempt(() => Call(ilgpu));
            var afterIlgpu = buffers.Select(b => b.ToArray()).ToArray();

            Assert.True(referenceError?.GetType() == ilgpuError?.GetType(),
                $"{call}: reference {referenceError?.GetType().Name ?? "computed"}, ILGPU {ilgpuError?.GetType().Name ?? "computed"} ({ilgpuError?.Message ?? referenceError?.Message})");
            var counts = tally.GetValueOrDefault(op);
            if (referenceError != null)
            {
                Assert.Equal((referenceError as ArgumentException)?.ParamName, (ilgpuError as ArgumentException)?.ParamName);
                Assert.StartsWith(op + ":", referenceError.Message);
                for (int k = 0; k < buffers.Length; k++)
                {
                    Assert.Equal(initial[k], afterReference[k]);
                    Assert.Equal(initial[k], afterIlgpu[k]);
                }
                counts.Refused++;
            }
            else
            {
                for (int k = 0; k < buffers.Length; k++)
                    Compare.Close<float>(afterReference[k], afterIlgpu[k], $"{call}: buffer {k}");
                counts.Computed++;
            }
            tally[op] = counts;
        }
        foreach (var (op, (computed, refused)) in tally)
            Assert.True(computed > 3 && refused > 3, $"{op}: {computed} computed, {refused} refused");
    }

    static Exception? Attempt(Action call)
    {
        try
        {
            call();
            return null;
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            return e;
        }
    }
}
