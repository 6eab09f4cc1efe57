using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// One implementation of every op, on device views. The op API (<see cref="Ops"/>) validates arguments once
/// and then calls a backend, so backends assume valid, non-overlapping (or exactly aliased) arguments.
/// Optional operands are passed as <c>default</c> views.
/// </summary>
internal abstract class KernelBackend
{
    public abstract Backend Kind { get; }

    /// <summary>RMSNorm of [rows, cols] x into y; when residual is set, also r = x + residual (see RmsNormReference).</summary>
    public abstract void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps)
        where T : unmanaged where TW : unmanaged;
}
