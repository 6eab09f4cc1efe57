using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.RmsNorm;

/// <summary>
/// Bad input gets a clear error naming the op and the parameter, and loses nothing: a rejected call leaves
/// every output as it was. The host form is checked on the reference, the device form on ILGPU's CPU
/// accelerator (validation runs before any backend, so these hold for every backend).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class RmsNormValidationTests
{
    const float Eps = 1e-6f;

    static T Throws<T>(Action call, string parameter, string fragment) where T : ArgumentException
    {
        var e = Assert.Throws<T>(call);
        Assert.Equal(parameter, e.ParamName);
        Assert.Contains(fragment, e.Message);
        return e;
    }

    [Fact]
    public void HostErrorsNameTheParameter()
    {
        var x = TestData.Activations(12, 1);
        var w = TestData.Weights(4, 2);
        var y = TestData.Poison<float>(12);
        var ops = Ops.Reference;

        Throws<ArgumentOutOfRangeException>(() => ops.RmsNorm<float, float>(x, w, y, 0, Eps), "rowLength", "at least 1");
        Throws<ArgumentOutOfRangeException>(() => ops.RmsNorm<float, float>(x, w, y, -4, Eps), "rowLength", "at least 1");
        Throws<ArgumentOutOfRangeException>(() => ops.RmsNorm<float, float>(x, w, y, 4, 0f), "epsilon", "greater than 0");
        Throws<ArgumentOutOfRangeException>(() => ops.RmsNorm<float, float>(x, w, y, 4, -1e-6f), "epsilon", "greater than 0");
        Throws<ArgumentOutOfRangeException>(() => ops.RmsNorm<float, float>(x, w, y, 4, float.NaN), "epsilon", "finite");
        Throws<ArgumentOutOfRangeException>(() => ops.RmsNorm<float, float>(x, w, y, 4, float.PositiveInfinity), "epsilon", "finite");
        Throws<ArgumentException>(() => ops.RmsNorm<float, float>(x, w.AsSpan(0, 3), y, 4, Eps), "weight", "needs rowLength = 4");
        Throws<ArgumentException>(() => ops.RmsNorm<float, float>(x.AsSpan(0, 10), w, y, 4, Eps), "x", "whole number of rows");
        Throws<ArgumentException>(() => ops.RmsNorm<float, float>(ReadOnlySpan<float>.Empty, w, y, 4, Eps), "x", "zero rows");
        Throws<ArgumentException>(() => ops.RmsNorm<float, float>(x, w, y.AsSpan(0, 11), 4, Eps), "destination", "too short");
        Assert.All(y, v => Assert.True(float.IsNaN(v))); // nothing was written
    }

    [Fact]
    public void UnsupportedElementTypesAreRefusedByName()
    {
        var x = new Half[8];
        var y = new Half[8];
        var w = new float[8];
        var e = Assert.Throws<NotSupportedException>(() => Ops.Reference.RmsNorm<Half, float>(x, w, y, 8, Eps));
        Assert.Contains("RmsNorm: x has element type Half", e.Message);
        var fw = new Float8E4M3[8];
        e = Assert.Throws<NotSupportedException>(() => Ops.Reference.RmsNorm<float, Float8E4M3>(new float[8], fw, new float[8], 8, Eps));
        Assert.Contains("weight has element type Float8E4M3", e.Message);
    }

    [Fact]
    public void ValidationOrderIsFixed()
    {
        // Several faults at once: the first in the documented order is reported.
        var x = new float[10];
        var y = new float[3];
        Throws<ArgumentOutOfRangeException>(() => Ops.Reference.RmsNorm<float, float>(x, new float[2], y, 0, -1f), "rowLength", "at least 1");
        Throws<ArgumentOutOfRangeException>(() => Ops.Reference.RmsNorm<float, float>(x, new float[2], y, 4, -1f), "epsilon", "greater than 0");
        Throws<ArgumentException>(() => Ops.Reference.RmsNorm<float, float>(x, new float[2], y, 4, Eps), "weight", "needs rowLength");
        Throws<ArgumentException>(() => Ops.Reference.RmsNorm<float, float>(x, new float[4], y, 4, Eps), "x", "whole number");
        Throws<ArgumentException>(() => Ops.Reference.RmsNorm<float, float>(x.AsSpan(0, 8), new float[4], y, 4, Eps), "destination", "too short");
    }

    [Fact]
    public void OverlapsAreRefusedExceptExactInPlace()
    {
        var buffer = TestData.Activations(40, 3);
        var w = TestData.Weights(4, 4);
        var snapshot = buffer.ToArray();
        var ops = Ops.Reference;

        // destination shifted by one element over x
        Throws<ArgumentException>(() => ops.RmsNorm<float, float>(buffer.AsSpan(0, 8), w, buffer.AsSpan(1, 8), 4, Eps), "destination", "partially overlaps x");
        // destination over the weight
        Throws<ArgumentException>(() => ops.RmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(10, 4), buffer.AsSpan(8, 8), 4, Eps), "destination", "overlaps weight");
        // a bf16 destination partly over a bf16 x reinterpreted: overlap is by bytes, whatever the types
        var bf = TestData.As<BFloat16>(TestData.Activations(16, 5));
        Throws<ArgumentException>(() => ops.RmsNorm<BFloat16, BFloat16>(bf.AsSpan(0, 8), bf.AsSpan(12, 4), bf.AsSpan(4, 8), 4, Eps), "destination", "partially overlaps x");
        Assert.Equal(snapshot, buffer);

        // fused: two outputs over each other, or one over the weight, or partial over an input
        Throws<ArgumentException>(() => ops.AddRmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), w, buffer.AsSpan(16, 8), buffer.AsSpan(16, 8), 4, Eps), "destination", "overlaps residualOut");
        Throws<ArgumentException>(() => ops.AddRmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), buffer.AsSpan(16, 4), buffer.AsSpan(14, 8), buffer.AsSpan(24, 8), 4, Eps), "residualOut", "overlaps weight");
        Throws<ArgumentException>(() => ops.AddRmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), w, buffer.AsSpan(4, 8), buffer.AsSpan(24, 8), 4, Eps), "residualOut", "partially overlaps x");
        Throws<ArgumentException>(() => ops.AddRmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), w, buffer.AsSpan(24, 8), buffer.AsSpan(10, 8), 4, Eps), "destination", "partially overlaps residual");
        Throws<ArgumentException>(() => ops.AddRmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 7), w, buffer.AsSpan(24, 8), buffer.AsSpan(32, 8), 4, Eps), "residual", "must match x");
        Throws<ArgumentException>(() => ops.AddRmsNorm<float, float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), w, buffer.AsSpan(24, 7), buffer.AsSpan(32, 8), 4, Eps), "residualOut", "too short");
        Assert.Equal(snapshot, buffer);

        // exact in place is fine
        ops.RmsNorm<float, float>(buffer.AsSpan(0, 8), w, buffer.AsSpan(0, 8), 4, Eps);
        ops.AddRmsNorm<float, float>(buffer.AsSpan(8, 8), buffer.AsSpan(16, 8), w, buffer.AsSpan(16, 8), buffer.AsSpan(8, 8), 4, Eps);
    }

    [Fact]
    public void DeviceErrorsNameTheParameterAndLoseNothing()
    {
        var runtime = TestDevices.Cpu;
        var ops = Ops.Create(runtime, Backend.Ilgpu);
        using var buffer = runtime.Upload<float>(TestData.Activations(64, 7));
        using var w = runtime.Upload<float>(TestData.Weights(8, 8));
        var before = buffer.ToArray();

        Throws<ArgumentException>(() => ops.RmsNorm(default, w.View, buffer.Slice(0, 16), 8, Eps), "x", "default DeviceView");
        Throws<ArgumentException>(() => ops.RmsNorm(buffer.Slice(0, 16), w.View, default, 8, Eps), "destination", "default DeviceView");
        Throws<ArgumentException>(() => ops.RmsNorm(buffer.Slice(0, 16), w.View, buffer.Slice(4, 16), 8, Eps), "destination", "partially overlaps x");
        Throws<ArgumentException>(() => ops.RmsNorm(buffer.Slice(0, 16), buffer.Slice(20, 8), buffer.Slice(16, 16), 8, Eps), "destination", "overlaps weight");
        Throws<ArgumentException>(() => ops.RmsNorm(buffer.Slice(0, 16), w.View, buffer.Slice(16, 15), 8, Eps), "destination", "too short");
        Throws<ArgumentException>(() => ops.RmsNorm(buffer.Slice(0, 0), w.View, buffer.Slice(16, 16), 8, Eps), "x", "zero rows");
        Throws<ArgumentException>(() => ops.AddRmsNorm(buffer.Slice(0, 16), buffer.Slice(16, 16), w.View, buffer.Slice(32, 16), buffer.Slice(40, 16), 8, Eps), "destination", "overlaps residualOut");
        Assert.Equal(before, buffer.ToArray());

        // exact in place on the device
        ops.AddRmsNorm(buffer.Slice(0, 16), buffer.Slice(16, 16), w.View, buffer.Slice(16, 16), buffer.Slice(0, 16), 8, Eps);
    }

    [Fact]
    public void ViewsOfAnotherRuntimeAreRefused()
    {
        using var other = DeviceRuntime.Create(DevicePreference.Cpu);
        var ops = Ops.Create(TestDevices.Cpu, Backend.Ilgpu);
        using var x = other.Upload<float>(TestData.Activations(8, 1));
        using var w = TestDevices.Cpu.Upload<float>(TestData.Weights(8, 2));
        using var y = TestDevices.Cpu.Allocate<float>(8);
        Throws<ArgumentException>(() => ops.RmsNorm(x.View, w.View, y.View, 8, Eps), "x", "different DeviceRuntime");
        Throws<ArgumentException>(() => Ops.Reference.RmsNorm(y.View, w.View, x.View, 8, Eps), "destination", "different DeviceRuntime");
    }

    [Fact]
    public void NativeBackendOnTheCpuAcceleratorSaysWhyNot()
    {
        var e = Assert.Throws<NotSupportedException>(() => Ops.Create(TestDevices.Cpu, Backend.Native));
        Assert.Contains("native kernels need a CUDA GPU", e.Message);
    }
}
