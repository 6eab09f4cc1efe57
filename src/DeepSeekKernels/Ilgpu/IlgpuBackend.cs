using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>The ILGPU kernels behind the op API, on one runtime's accelerator and stream.</summary>
internal sealed class IlgpuBackend(DeviceRuntime runtime) : KernelBackend
{
    readonly RmsNormIlgpu _rmsNorm = new(runtime);

    public override Backend Kind => Backend.Ilgpu;

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        _rmsNorm.Run(x, residual, w, y, r, rows, cols, eps);
}
