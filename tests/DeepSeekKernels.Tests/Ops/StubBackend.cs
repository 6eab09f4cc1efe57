using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// A test backend (made into Ops with <c>Ops.Over</c>) that supports exactly what <c>supports</c> says, so strict and
/// fallback behaviour can be tested without depending on what a real backend happens to lack. Its RmsNorm runs
/// <c>inner</c>'s (e.g. the real ILGPU kernels), its Linear <c>inner</c>'s or the reference's, and each is counted;
/// every signature it is asked about is recorded. Other ops it does not implement: Supports must say no to them.
/// </summary>
internal sealed class StubBackend(Func<OpSignature, bool> supports, KernelBackend? inner = null) : KernelBackend
{
    public const string Reason = "the stub's Supports says no";

    public List<OpSignature> Asked { get; } = [];

    public int RmsNormCalls { get; private set; }

    public int LinearCalls { get; private set; }

    public override Backend Kind => Backend.Ilgpu;

    public override bool Supports(in OpSignature op, out string? reason)
    {
        Asked.Add(op);
        bool yes = supports(op);
        reason = yes ? null : Reason;
        return yes;
    }

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps)
    {
        RmsNormCalls++;
        (inner ?? throw new InvalidOperationException("this stub has no RmsNorm")).RmsNorm(x, residual, w, y, r, rows, cols, eps);
    }

    public override void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        LinearCalls++;
        (inner ?? ReferenceBackend.Instance).Linear(x, w, bias, y);
    }
}
