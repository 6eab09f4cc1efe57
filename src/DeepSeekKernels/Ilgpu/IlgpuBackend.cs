using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>The ILGPU kernels behind the op API, on one runtime's accelerator and stream.</summary>
internal sealed class IlgpuBackend(DeviceRuntime runtime) : KernelBackend
{
    readonly RmsNormIlgpu _rmsNorm = new(runtime);
    readonly ElementwiseIlgpu _elementwise = new(runtime);

    public override Backend Kind => Backend.Ilgpu;

    /// <summary>
    /// RMSNorm, add + RMSNorm and the small ops (CopyColumns, SiluAndMul, Softmax, Add, Scale), for now; every
    /// other op throws (or falls back to the reference, see Ops.WithReferenceFallback).
    /// </summary>
    public override bool Implements(string op) => op is nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm)
        or nameof(Ops.CopyColumns) or nameof(Ops.SiluAndMul) or nameof(Ops.Softmax) or nameof(Ops.Add) or nameof(Ops.Scale);

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        _rmsNorm.Run(x, residual, w, y, r, rows, cols, eps);

    public override void CopyColumns(DeviceView<float> x, int xColumns, int xOffset, DeviceView<float> y, int yColumns,
        int yOffset, int width, int rows) =>
        _elementwise.CopyColumns(x, xColumns, xOffset, y, yColumns, yOffset, width, rows);

    public override void SiluAndMul(DeviceView<float> x, DeviceView<float> y, int rows, int intermediate) =>
        _elementwise.SiluAndMul(x, y, rows, intermediate);

    public override void Softmax(DeviceView<float> x, DeviceView<float> y, int rows, int rowLength) =>
        _elementwise.Softmax(x, y, rows, rowLength);

    public override void Add(DeviceView<float> x, DeviceView<float> y, DeviceView<float> z) => _elementwise.Add(x, y, z);

    public override void Scale(DeviceView<float> x, float factor, DeviceView<float> y) => _elementwise.Scale(x, factor, y);
}
