using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>The ILGPU kernels behind the op API, on one runtime's accelerator and stream.</summary>
internal sealed class IlgpuBackend(DeviceRuntime runtime) : KernelBackend
{
    readonly RmsNormIlgpu _rmsNorm = new(runtime);
    readonly ElementwiseIlgpu _elementwise = new(runtime);

    public override Backend Kind => Backend.Ilgpu;

    /// <summary>
    /// What the kernels here do, for now: RMSNorm and add + RMSNorm over f32 or bf16 activations and f32 or bf16
    /// weights (all four pairs), and the small ops (CopyColumns, SiluAndMul, Softmax, Add, Scale) on f32; all on
    /// dense rows. Every other signature is refused (or falls back to the reference, see Ops.WithReferenceFallback).
    /// </summary>
    public override bool Supports(in OpSignature op, out string? reason)
    {
        switch (op.Op)
        {
            case nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm):
                reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the RMSNorm kernels take f32 or bf16 activations, not {op.X.Name()}"
                    : op.Weight is not (ElementType.F32 or ElementType.BF16) || op.Scheme != null ? "the RMSNorm kernels take an f32 or bf16 weight vector"
                    : op.StridedRows ? "the RMSNorm kernels read dense rows"
                    : null;
                break;
            case nameof(Ops.CopyColumns) or nameof(Ops.SiluAndMul) or nameof(Ops.Softmax) or nameof(Ops.Add) or nameof(Ops.Scale):
                reason = op.X != ElementType.F32 ? $"the {op.Op} kernel takes f32, not {op.X.Name()}"
                    : op.Weight != null ? $"{op.Op} takes no weight"
                    : op.StridedRows ? $"the {op.Op} kernel reads dense rows"
                    : null;
                break;
            default:
                reason = $"no {op.Op} kernel yet";
                break;
        }
        return reason == null;
    }

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
