using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>The hand-CUDA kernels behind the op API, launched on the runtime's CUDA stream with ILGPU buffers' pointers.</summary>
internal sealed class NativeBackend : KernelBackend
{
    readonly DeviceRuntime _runtime;

    public NativeBackend(DeviceRuntime runtime)
    {
        if (!runtime.IsNativeAvailable(out string reason))
            throw new NotSupportedException("The native backend is not available: " + reason);
        _runtime = runtime;
    }

    public override Backend Kind => Backend.Native;

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        RmsNormNative.Run(_runtime, x, residual, w, y, r, rows, cols, eps);
}
