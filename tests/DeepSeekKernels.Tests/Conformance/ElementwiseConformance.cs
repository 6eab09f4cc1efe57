using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.Conformance.ElementwiseBf16Cases;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// CopyColumns: one element, k_pe out of kv_a's [latent | rope] rows, into the middle of wider rows, odd widths; the
/// block exact, every other destination element still NaN (the guard after the rows included); f32 and bf16.
/// </summary>
public abstract class CopyColumnsConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(1, 1, 0, 1, 0, 1)]
    [InlineData(7, 576, 512, 64, 0, 64)]
    [InlineData(5, 33, 3, 40, 17, 20)]
    [InlineData(17, 129, 65, 65, 1, 63)]
    public void CopyColumnsCopiesTheBlockAndNothingElse(int rows, int sourceColumns, int sourceOffset, int destinationColumns,
        int destinationOffset, int width)
    {
        var source = RandomValues(rows * sourceColumns, 1);
        using var ds = Upload(source);
        using var dd = Poisoned(rows * destinationColumns + Guard);
        if (!Runs(new OpSignature("CopyColumns", ElementType.F32),
                ops => ops.CopyColumns(ds.View, sourceColumns, sourceOffset, dd.View, destinationColumns, destinationOffset, width, rows), dd))
            return;
        var actual = dd.ToArray();
        for (int i = 0; i < actual.Length; i++)
        {
            int r = i / destinationColumns, c = i % destinationColumns - destinationOffset;
            if (r < rows && c >= 0 && c < width)
                Assert.Equal(source[r * sourceColumns + sourceOffset + c], actual[i]);
            else
                Assert.True(float.IsNaN(actual[i]), $"element {i}, outside the copied block, was written");
        }
    }

    /// <summary>bf16 rows: the block copied bit for bit, every other destination element (and the guard) still NaN.</summary>
    [DeviceTheory]
    [InlineData(1, 1, 0, 1, 0, 1)]
    [InlineData(7, 576, 512, 64, 0, 64)]
    [InlineData(3, 192, 128, 576, 512, 64)]
    [InlineData(5, 33, 3, 40, 17, 20)]
    public void CopyColumnsCopiesBf16BitForBit(int rows, int sourceColumns, int sourceOffset, int destinationColumns,
        int destinationOffset, int width)
    {
        var source = Bf16(RandomValues(rows * sourceColumns, 11));
        using var ds = Upload(source);
        using var dd = PoisonedBf16(rows * destinationColumns + Guard);
        if (!Runs(new OpSignature("CopyColumns", ElementType.BF16),
                ops => ops.CopyColumns(ds.View, sourceColumns, sourceOffset, dd.View, destinationColumns, destinationOffset, width, rows), dd))
            return;
        var actual = dd.ToArray();
        for (int i = 0; i < actual.Length; i++)
        {
            int r = i / destinationColumns, c = i % destinationColumns - destinationOffset;
            if (r < rows && c >= 0 && c < width)
                Assert.Equal(source[r * sourceColumns + sourceOffset + c].Bits, actual[i].Bits);
            else
                Assert.True(actual[i].IsNaN, $"element {i}, outside the copied block, was written");
        }
    }
}

/// <summary>SiluAndMul against float64 at odd sizes, gates to ±12 (both tails of the sigmoid); a NaN guard after the output; f32 and bf16.</summary>
public abstract class SiluAndMulConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(1, 1), InlineData(3, 7), InlineData(2, 1407), InlineData(33, 18), InlineData(17, 65)]
    public void SiluAndMulMatchesFloat64(int rows, int intermediate)
    {
        var x = RandomValues(rows * 2 * intermediate, 2, 4f);
        using var dx = Upload(x);
        using var dy = Poisoned(rows * intermediate + Guard);
        if (!Runs(new OpSignature("SiluAndMul", ElementType.F32), ops => ops.SiluAndMul(dx.View, dy.View, intermediate), dy))
            return;
        var expected = new double[rows * intermediate];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < intermediate; i++)
            {
                double g = x[r * 2 * intermediate + i], u = x[r * 2 * intermediate + intermediate + i];
                expected[r * intermediate + i] = g / (1 + Math.Exp(-g)) * u;
            }
        var actual = dy.ToArray();
        Close(expected, actual.AsSpan(0, expected.Length), "silu(gate) * up", ConformanceTolerance.F32, ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    /// <summary>bf16 x and destination: float64 on the bf16 inputs, within one bf16 rounding of the result; the guard untouched.</summary>
    [DeviceTheory]
    [InlineData(1, 1), InlineData(3, 7), InlineData(2, 1407), InlineData(17, 64)]
    public void SiluAndMulOfBf16RoundsOnce(int rows, int intermediate)
    {
        var x = Bf16(RandomValues(rows * 2 * intermediate, 12, 4f));
        using var dx = Upload(x);
        using var dy = PoisonedBf16(rows * intermediate + Guard);
        if (!Runs(new OpSignature("SiluAndMul", ElementType.BF16), ops => ops.SiluAndMul(dx.View, dy.View, intermediate), dy))
            return;
        var expected = new double[rows * intermediate];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < intermediate; i++)
            {
                double g = x[r * 2 * intermediate + i].ToSingle(), u = x[r * 2 * intermediate + intermediate + i].ToSingle();
                expected[r * intermediate + i] = g / (1 + Math.Exp(-g)) * u;
            }
        var actual = Widen(dy.ToArray());
        Close(expected, actual.AsSpan(0, expected.Length), "silu(gate) * up, bf16", OneBf16Rounding, ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }
}

/// <summary>Softmax against float64, logits to ±90 (the maximum must be subtracted), odd row lengths, in place and not; f32 and bf16.</summary>
public abstract class SoftmaxConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(1, 1, false), InlineData(4, 7, false), InlineData(3, 129, true), InlineData(2, 1000, true), InlineData(17, 33, false)]
    public void SoftmaxMatchesFloat64(int rows, int rowLength, bool inPlace)
    {
        var x = RandomValues(rows * rowLength, 3, 30f);
        using var dx = Upload(x);
        using var other = Poisoned(x.Length + Guard);
        var destination = inPlace ? dx.View : other.Slice(0, x.Length);
        if (!Runs(new OpSignature("Softmax", ElementType.F32), ops => ops.Softmax(dx.View, destination, rowLength), dx, other))
            return;
        var expected = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * rowLength, rowLength).ToArray().Select(v => (double)v).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            for (int i = 0; i < rowLength; i++)
                expected[r * rowLength + i] = Math.Exp(row[i] - max) / sum;
        }
        Close(expected, destination.ToArray(), "softmax", ConformanceTolerance.F32, absolute: 1e-9);
        if (inPlace)
            AllNaN(other.ToArray(), "an unused buffer");
        else
        {
            Exact(x, dx.ToArray(), "x (not in place)");
            AllNaN(other.ToArray().AsSpan(x.Length), "guard after the output");
        }
    }

    /// <summary>bf16 logits to ±90: float64 on the bf16 inputs, within one bf16 rounding; in place and not.</summary>
    [DeviceTheory]
    [InlineData(1, 1, false), InlineData(4, 7, true), InlineData(3, 129, false), InlineData(2, 1000, true)]
    public void SoftmaxOfBf16RoundsOnce(int rows, int rowLength, bool inPlace)
    {
        var x = Bf16(RandomValues(rows * rowLength, 13, 30f));
        using var dx = Upload(x);
        using var other = PoisonedBf16(x.Length + Guard);
        var destination = inPlace ? dx.View : other.Slice(0, x.Length);
        if (!Runs(new OpSignature("Softmax", ElementType.BF16), ops => ops.Softmax(dx.View, destination, rowLength), dx, other))
            return;
        var wide = Widen(x);
        var expected = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            var row = wide.AsSpan(r * rowLength, rowLength).ToArray().Select(v => (double)v).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            for (int i = 0; i < rowLength; i++)
                expected[r * rowLength + i] = Math.Exp(row[i] - max) / sum;
        }
        Close(expected, Widen(destination.ToArray()), "softmax, bf16", OneBf16Rounding, absolute: 1e-9);
        if (inPlace)
            Assert.All(other.ToArray(), v => Assert.True(v.IsNaN, "an unused buffer was written"));
        else
        {
            Assert.Equal(x.Select(v => v.Bits), dx.ToArray().Select(v => v.Bits)); // x not in place: unchanged
            Assert.All(other.ToArray().AsSpan(x.Length).ToArray(), v => Assert.True(v.IsNaN, "guard after the output was written"));
        }
    }
}

/// <summary>Add: exact (one rounding), at odd lengths, into a third buffer or in place over either input; f32 and bf16.</summary>
public abstract class AddConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(1, 0), InlineData(77, 0), InlineData(77, 1), InlineData(77, 2), InlineData(4099, 0), InlineData(4099, 2)]
    public void AddIsExactInAnyPlace(int n, int alias)
    {
        var x = RandomValues(n, 4);
        var y = RandomValues(n, 5);
        using var dx = Upload(x);
        using var dy = Upload(y);
        using var dz = Poisoned(n + Guard);
        var destination = alias switch { 0 => dz.Slice(0, n), 1 => dx.View, _ => dy.View };
        if (!Runs(new OpSignature("Add", ElementType.F32), ops => ops.Add(dx.View, dy.View, destination), dx, dy, dz))
            return;
        Exact(x.Zip(y, (a, b) => a + b).ToArray(), destination.ToArray(), "x + y");
        AllNaN(dz.ToArray().AsSpan(alias == 0 ? n : 0), "guard after the output");
    }

    /// <summary>bf16: the float32 sum of the widened inputs rounded once to bf16, bit for bit; apart or in place over either input.</summary>
    [DeviceTheory]
    [InlineData(1, 0), InlineData(77, 0), InlineData(77, 1), InlineData(4099, 2)]
    public void AddOfBf16RoundsOnce(int n, int alias)
    {
        var x = Bf16(RandomValues(n, 14));
        var y = Bf16(RandomValues(n, 15));
        using var dx = Upload(x);
        using var dy = Upload(y);
        using var dz = PoisonedBf16(n + Guard);
        var destination = alias switch { 0 => dz.Slice(0, n), 1 => dx.View, _ => dy.View };
        if (!Runs(new OpSignature("Add", ElementType.BF16), ops => ops.Add(dx.View, dy.View, destination), dx, dy, dz))
            return;
        Assert.Equal(x.Zip(y, (a, b) => BFloat16.FromSingle(a.ToSingle() + b.ToSingle()).Bits), destination.ToArray().Select(v => v.Bits));
        Assert.All(dz.ToArray().AsSpan(alias == 0 ? n : 0).ToArray(), v => Assert.True(v.IsNaN, "guard after the output was written"));
    }
}

/// <summary>Scale: exact (one rounding), at odd lengths, in place and not; f32 and bf16.</summary>
public abstract class ScaleConformance : ConformanceTest
{
    [DeviceTheory]
    [InlineData(1, false), InlineData(33, false), InlineData(33, true), InlineData(1025, true)]
    public void ScaleIsExact(int n, bool inPlace)
    {
        var x = RandomValues(n, 6);
        using var dx = Upload(x);
        using var dz = Poisoned(n + Guard);
        var destination = inPlace ? dx.View : dz.Slice(0, n);
        if (!Runs(new OpSignature("Scale", ElementType.F32), ops => ops.Scale(dx.View, 0.3f, destination), dx, dz))
            return;
        Exact(x.Select(v => v * 0.3f).ToArray(), destination.ToArray(), "x * 0.3");
        AllNaN(dz.ToArray().AsSpan(inPlace ? 0 : n), "guard after the output");
    }

    /// <summary>bf16: the float32 product rounded once to bf16, bit for bit; in place and not.</summary>
    [DeviceTheory]
    [InlineData(1, false), InlineData(33, true), InlineData(1025, false)]
    public void ScaleOfBf16RoundsOnce(int n, bool inPlace)
    {
        var x = Bf16(RandomValues(n, 16));
        using var dx = Upload(x);
        using var dz = PoisonedBf16(n + Guard);
        var destination = inPlace ? dx.View : dz.Slice(0, n);
        if (!Runs(new OpSignature("Scale", ElementType.BF16), ops => ops.Scale(dx.View, 0.3f, destination), dx, dz))
            return;
        Assert.Equal(x.Select(v => BFloat16.FromSingle(v.ToSingle() * 0.3f).Bits), destination.ToArray().Select(v => v.Bits));
        Assert.All(dz.ToArray().AsSpan(inPlace ? 0 : n).ToArray(), v => Assert.True(v.IsNaN, "guard after the output was written"));
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class CopyColumnsReferenceConformance : CopyColumnsConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class CopyColumnsIlgpuCpuConformance : CopyColumnsConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class CopyColumnsCpuConformance : CopyColumnsConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class CopyColumnsIlgpuCudaConformance : CopyColumnsConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class CopyColumnsNativeConformance : CopyColumnsConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class SiluAndMulReferenceConformance : SiluAndMulConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class SiluAndMulIlgpuCpuConformance : SiluAndMulConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class SiluAndMulCpuConformance : SiluAndMulConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class SiluAndMulIlgpuCudaConformance : SiluAndMulConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class SiluAndMulNativeConformance : SiluAndMulConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class SoftmaxReferenceConformance : SoftmaxConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class SoftmaxIlgpuCpuConformance : SoftmaxConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class SoftmaxCpuConformance : SoftmaxConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class SoftmaxIlgpuCudaConformance : SoftmaxConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class SoftmaxNativeConformance : SoftmaxConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class AddReferenceConformance : AddConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class AddIlgpuCpuConformance : AddConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class AddCpuConformance : AddConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class AddIlgpuCudaConformance : AddConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class AddNativeConformance : AddConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class ScaleReferenceConformance : ScaleConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class ScaleIlgpuCpuConformance : ScaleConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class ScaleCpuConformance : ScaleConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class ScaleIlgpuCudaConformance : ScaleConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class ScaleNativeConformance : ScaleConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>What the small ops' bf16 cases share.</summary>
internal static class ElementwiseBf16Cases
{
    /// <summary>One rounding of the float32 result to bf16 (2^-8 of its size), plus float32's own error.</summary>
    public const double OneBf16Rounding = 1.0 / 256 + ConformanceTolerance.F32;

    public static BFloat16[] Bf16(float[] values) => values.Select(BFloat16.FromSingle).ToArray();

    public static float[] Widen(BFloat16[] values) => values.Select(v => v.ToSingle()).ToArray();
}
