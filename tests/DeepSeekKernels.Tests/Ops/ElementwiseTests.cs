using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// CopyColumns, SiluAndMul, Softmax, Add and Scale against float64 loops, in place where allowed: written once,
/// run per backend by the subclasses at the bottom.
/// </summary>
[Collection(nameof(DeviceCollection))]
public abstract class ElementwiseTests
{
    /// <summary>The ops under test; skips the test where the backend cannot run.</summary>
    protected abstract DeepSeekKernels.Ops CreateOps();

    DeepSeekKernels.Ops? _ops;
    DeepSeekKernels.Ops Ops => _ops ??= CreateOps();

    DeviceBuffer<float> Upload(float[] values) => Ops.Runtime!.Upload<float>(values);

    DeviceBuffer<float> Poisoned(long length) => Ops.Runtime!.Upload<float>(Nan(length));

    [DeviceTheory]
    [InlineData(1, 1, 0, 1, 0, 1)]
    [InlineData(7, 576, 512, 64, 0, 64)]    // k_pe out of kv_a's [latent | rope]
    [InlineData(5, 33, 3, 40, 17, 20)]      // into the middle of wider rows
    public void CopyColumnsCopiesTheBlockAndNothingElse(int rows, int sourceColumns, int sourceOffset, int destinationColumns,
        int destinationOffset, int width)
    {
        var source = RandomValues(rows * sourceColumns, 1);
        using var ds = Upload(source);
        using var dd = Poisoned(rows * destinationColumns + 3);
        Ops.CopyColumns(ds.View, sourceColumns, sourceOffset, dd.View, destinationColumns, destinationOffset, width, rows);
        var actual = dd.ToArray();
        for (int i = 0; i < actual.Length; i++)
        {
            int r = i / destinationColumns, c = i % destinationColumns - destinationOffset;
            if (r < rows && c >= 0 && c < width)
                Assert.Equal(source[r * sourceColumns + sourceOffset + c], actual[i]);
            else
                Assert.True(float.IsNaN(actual[i]), $"element {i} outside the copied block was written");
        }
    }

    [DeviceTheory]
    [InlineData(1, 1), InlineData(3, 7), InlineData(2, 1407), InlineData(33, 18)]
    public void SiluAndMulMatchesFloat64(int rows, int intermediate)
    {
        var x = RandomValues(rows * 2 * intermediate, 2, 4f); // gates to ±12: both tails of the sigmoid
        using var dx = Upload(x);
        using var dy = Poisoned(rows * intermediate + 2);
        Ops.SiluAndMul(dx.View, dy.View, intermediate);
        var expected = new double[rows * intermediate];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < intermediate; i++)
            {
                double g = x[r * 2 * intermediate + i], u = x[r * 2 * intermediate + intermediate + i];
                expected[r * intermediate + i] = g / (1 + Math.Exp(-g)) * u;
            }
        var actual = dy.ToArray();
        Close(expected, actual.AsSpan(0, expected.Length), "silu * up", relative: 2e-6, absolute: 1e-7);
        AllNaN(actual.AsSpan(expected.Length), "guard");
    }

    [DeviceTheory]
    [InlineData(1, 1, false), InlineData(4, 7, false), InlineData(3, 129, true), InlineData(2, 1000, true)]
    public void SoftmaxMatchesFloat64(int rows, int rowLength, bool inPlace)
    {
        var x = RandomValues(rows * rowLength, 3, 30f); // large logits: the maximum must be subtracted
        using var dx = Upload(x);
        using var other = Poisoned(x.Length);
        var destination = inPlace ? dx.View : other.View;
        Ops.Softmax(dx.View, destination, rowLength);
        var expected = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * rowLength, rowLength).ToArray().Select(v => (double)v).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            for (int i = 0; i < rowLength; i++)
                expected[r * rowLength + i] = Math.Exp(row[i] - max) / sum;
        }
        Close(expected, destination.ToArray(), "softmax", relative: 1e-5, absolute: 1e-9);
    }

    [DeviceTheory]
    [InlineData(0), InlineData(1), InlineData(2)]
    public void AddIsExactInAnyPlace(int alias)
    {
        const int n = 77;
        var x = RandomValues(n, 4);
        var y = RandomValues(n, 5);
        using var dx = Upload(x);
        using var dy = Upload(y);
        using var dz = Poisoned(n);
        var destination = alias switch { 0 => dz.View, 1 => dx.View, _ => dy.View };
        Ops.Add(dx.View, dy.View, destination);
        Exact(x.Zip(y, (a, b) => a + b).ToArray(), destination.ToArray(), "x + y"); // one rounding: exact
    }

    [DeviceTheory]
    [InlineData(false), InlineData(true)]
    public void ScaleIsExact(bool inPlace)
    {
        var x = RandomValues(33, 6);
        using var dx = Upload(x);
        using var dz = Poisoned(33);
        var destination = inPlace ? dx.View : dz.View;
        Ops.Scale(dx.View, 0.3f, destination);
        Exact(x.Select(v => v * 0.3f).ToArray(), destination.ToArray(), "x * 0.3");
    }
}

/// <summary>The reference, on ILGPU's CPU accelerator's buffers.</summary>
public sealed class ElementwiseReferenceTests : ElementwiseTests
{
    protected override DeepSeekKernels.Ops CreateOps() => DeepSeekKernels.Ops.Create(TestDevices.Cpu, Backend.Reference);
}

/// <summary>The ILGPU kernels on ILGPU's CPU accelerator (runs everywhere, CI included).</summary>
public sealed class ElementwiseIlgpuCpuTests : ElementwiseTests
{
    protected override DeepSeekKernels.Ops CreateOps() => DeepSeekKernels.Ops.Create(TestDevices.Cpu, Backend.Ilgpu);
}

/// <summary>The ILGPU kernels on a CUDA GPU.</summary>
[NeedsCudaGpu]
public sealed class ElementwiseIlgpuCudaTests : ElementwiseTests
{
    protected override DeepSeekKernels.Ops CreateOps() => DeepSeekKernels.Ops.Create(TestDevices.RequireCuda(), Backend.Ilgpu);
}
