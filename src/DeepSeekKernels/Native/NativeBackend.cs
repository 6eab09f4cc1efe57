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

    /// <summary>RMSNorm and the fused add + RMSNorm only, for now; every other op throws (or falls back to the reference, see Ops.WithReferenceFallback).</summary>
    public override bool Implements(string op) => op is nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm);

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        RmsNormNative.Run(_runtime, x, residual, w, y, r, rows, cols, eps);
}
