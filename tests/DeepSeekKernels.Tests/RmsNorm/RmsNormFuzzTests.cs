using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.RmsNorm;

/// <summary>
/// Seeded random calls of the host-span AddRmsNorm, well-formed and not: operands cut from one shared array
/// (so they overlap in every way: apart, exactly, shifted) or from their own arrays, random lengths, row
/// lengths and epsilons. The reference and ILGPU (CPU accelerator) must agree on every call: both refuse it
/// with the same exception type and parameter, writing nothing, or both compute the same result.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class RmsNormFuzzTests
{
    const int Cases = 400;
    const int Shared = 48;

    sealed record Operand(float[] Array, int Start, int Length)
    {
        public Span<float> Span => Array.AsSpan(Start, Length);
    }

    [Fact]
    public void TheReferenceAndIlgpuAgreeOnEveryCallAndARefusedCallWritesNothing()
    {
        var ilgpu = Ops.Create(TestDevices.Cpu, Backend.Ilgpu);
        var random = new Random(20261123);
        int computed = 0, refused = 0;
        for (int i = 0; i < Cases; i++)
        {
            int rowLength = random.Next(-1, 9);
            float eps = random.Next(8) switch { 0 => 0f, 1 => -1e-6f, 2 => float.NaN, _ => 1e-6f };
            int rows = random.Next(0, 4);
            var shared = TestData.Activations(Shared, i);

            Operand Pick(int wanted)
            {
                int length = Math.Max(0, wanted + (random.Next(4) == 0 ? random.Next(-2, 3) : 0));
                if (random.Next(2) == 0 && length <= Shared)
                    return new Operand(shared, random.Next(Shared - length + 1), length);
                return new Operand(TestData.Activations(length + 2, 1000 + i), 1, length);
            }
            int n = rows * Math.Max(rowLength, 1);
            var x = Pick(n);
            var residual = Pick(n);
            var w = Pick(Math.Max(rowLength, 0));
            var residualOut = Pick(n);
            var destination = Pick(n);
            string call = $"case {i}: rows {rows}, rowLength {rowLength}, eps {eps}, x {Show(x, shared)}, residual {Show(residual, shared)}, " +
                $"weight {Show(w, shared)}, residualOut {Show(residualOut, shared)}, destination {Show(destination, shared)}";

            var arrays = new[] { x.Array, residual.Array, w.Array, residualOut.Array, destination.Array }.Distinct().ToArray();
            var before = arrays.Select(a => a.ToArray()).ToArray();
            var referenceError = Run(Ops.Reference, x, residual, w, residualOut, destination, rowLength, eps);
            var afterReference = arrays.Select(a => a.ToArray()).ToArray();
            for (int k = 0; k < arrays.Length; k++)
                before[k].CopyTo(arrays[k], 0);
            var ilgpuError = Run(ilgpu, x, residual, w, residualOut, destination, rowLength, eps);

            Assert.True(referenceError?.GetType() == ilgpuError?.GetType(),
                $"{call}: reference {referenceError?.GetType().Name ?? "computed"}, ILGPU {ilgpuError?.GetType().Name ?? "computed"} ({ilgpuError?.Message ?? referenceError?.Message})");
            if (referenceError != null)
            {
                Assert.Equal((referenceError as ArgumentException)?.ParamName, (ilgpuError as ArgumentException)?.ParamName);
                Assert.Contains("AddRmsNorm", referenceError.Message);
                for (int k = 0; k < arrays.Length; k++)
                {
                    Assert.Equal(before[k], afterReference[k]); // the refused reference call wrote nothing
                    Assert.Equal(before[k], arrays[k]);         // nor did the refused ILGPU call
                }
                refused++;
            }
            else
            {
                for (int k = 0; k < arrays.Length; k++)
                    Compare.Close<float>(afterReference[k], arrays[k], $"{call}: array {k}");
                computed++;
            }
        }
        Assert.True(computed > 20 && refused > 20, $"{computed} computed, {refused} refused");
    }

    static Exception? Run(Ops ops, Operand x, Operand residual, Operand w, Operand residualOut, Operand destination, int rowLength, float eps)
    {
        try
        {
            ops.AddRmsNorm<float, float>(x.Span, residual.Span, w.Span, residualOut.Span, destination.Span, rowLength, eps);
            return null;
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            return e;
        }
    }

    static string Show(Operand o, float[] shared) => o.Array == shared ? $"shared[{o.Start}..{o.Start + o.Length})" : $"own[{o.Length}]";
}
