using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>The ILGPU kernels behind the op API, on one runtime's accelerator and stream.</summary>
internal sealed class IlgpuBackend(DeviceRuntime runtime) : KernelBackend
{
    readonly RmsNormIlgpu _rmsNorm = new(runtime);

    public override Backend Kind => Backend.Ilgpu;

    /// <summary>RMSNorm and the fused add + RMSNorm only, for now; every other op throws (or falls back to the reference, see Ops.WithReferenceFallback).</summary>
    public override bool Implements(string op) => op is nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm);

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        _rmsNorm.Run(x, residual, w, y, r, rows, cols, eps);
}
