using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// A native RMSNorm ready to be captured by a graph capture that is meant to fail: run once (its kernel
/// loaded), its output then poisoned, so <see cref="AssertNothingRanAndTheStreamWorks"/> can tell that the
/// failed capture ran nothing and left the stream out of capture mode.
/// </summary>
internal sealed class CaptureFailureCase : IDisposable
{
    const float Eps = 1e-6f;
    readonly DeviceRuntime _runtime;
    readonly Ops _native;
    readonly int _cols;

    public CaptureFailureCase(DeviceRuntime runtime, int cols)
    {
        (_runtime, _cols) = (runtime, cols);
        _native = Ops.Create(runtime, Backend.Native);
        X = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Activations(cols, 4)));
        W = runtime.Upload<BFloat16>(TestData.As<BFloat16>(TestData.Weights(cols, 5)));
        Y = runtime.Allocate<BFloat16>(cols);
        Enqueue();
        runtime.Synchronize();
        Y.CopyFromHost(TestData.Poison<BFloat16>(cols));
    }

    public DeviceBuffer<BFloat16> X { get; }
    public DeviceBuffer<BFloat16> W { get; }
    public DeviceBuffer<BFloat16> Y { get; }
    public Ops Native => _native;

    /// <summary>Enqueues y = RMSNorm(x) * w.</summary>
    public void Enqueue() => _native.RmsNorm(X.View, W.View, Y.View, _cols, Eps);

    /// <summary>y is still poison (the capture ran nothing), and the op enqueued now runs and matches the reference.</summary>
    public void AssertNothingRanAndTheStreamWorks()
    {
        _runtime.Synchronize();
        Assert.All(Y.ToArray(), v => Assert.True(float.IsNaN(v.ToSingle()), "the failed capture ran an op"));
        Enqueue();
        var expected = new BFloat16[_cols];
        Ops.Reference.RmsNorm<BFloat16, BFloat16>(X.ToArray(), W.ToArray(), expected, _cols, Eps);
        Compare.Close<BFloat16>(expected, Y.ToArray(), "y after the failed capture");
    }

    public void Dispose()
    {
        X.Dispose();
        W.Dispose();
        Y.Dispose();
    }
}
