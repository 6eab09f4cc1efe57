using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Runtime;

[Collection(nameof(DeviceCollection))]
public class DeviceRuntimeTests
{
    [Fact]
    public void TheCpuAcceleratorIsAlwaysThere()
    {
        var runtime = TestDevices.Cpu;
        Assert.False(runtime.IsCuda);
        Assert.Throws<InvalidOperationException>(() => runtime.CudaStreamHandle);
        Assert.False(runtime.IsNativeAvailable(out string reason));
        Assert.Contains("CUDA GPU", reason);
    }

    [Fact]
    public void BuffersOfEveryElementTypeRoundTrip()
    {
        var runtime = TestDevices.Cpu;
        RoundTrip(runtime, TestData.Activations(33, 1));
        RoundTrip(runtime, TestData.As<BFloat16>(TestData.Activations(33, 2)));
        RoundTrip(runtime, TestData.Activations(33, 3).Select(v => (Half)v).ToArray());
        RoundTrip(runtime, TestData.Activations(33, 4).Select(Float8E4M3.FromSingle).ToArray());
        RoundTrip(runtime, Enumerable.Range(0, 33).Select(i => Int4x2.FromBits((byte)(i * 7))).ToArray());
    }

    static void RoundTrip<T>(DeviceRuntime runtime, T[] values) where T : unmanaged
    {
        using var buffer = runtime.Upload<T>(values);
        Assert.Equal(ElementTypes.Of<T>(), buffer.ElementType);
        Assert.Equal(values, buffer.ToArray());
        Assert.Equal(values[5..9], buffer.Slice(5, 4).ToArray());
    }

    [Fact]
    public void SlicesOutsideTheBufferAreRefused()
    {
        using var buffer = TestDevices.Cpu.Allocate<float>(10);
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(8, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(-1, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(11, 0));
        Assert.Equal(0, buffer.Slice(10, 0).Length);
        Assert.Throws<ArgumentException>(() => buffer.View.CopyFromHost(new float[9]));
    }

    [Fact]
    public void UnknownElementTypesAreRefused()
    {
        var e = Assert.Throws<NotSupportedException>(() => TestDevices.Cpu.Allocate<long>(4));
        Assert.Contains("Int64 is not a DeepSeekKernels element type", e.Message);
    }
}
