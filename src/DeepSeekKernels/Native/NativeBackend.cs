using DeepSeekKernels.Numerics;
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

    /// <summary>
    /// RMSNorm and the fused add + RMSNorm only, for now: dsk_rms_norm takes f32 or bf16 activations with an f32 or
    /// bf16 weight (all four pairs), and row strides, which the plain RMSNorm's strided form passes through (MLA norms the
    /// latent part of each kv_a row in place). Every other signature is refused (or falls back to the reference, see
    /// Ops.WithReferenceFallback).
    /// </summary>
    public override bool Supports(in OpSignature op, out string? reason)
    {
        if (op.Op is nameof(Ops.QuantizeFp8Activations) or nameof(Ops.LinearW8A8))
        {
            // dsk_quantize_fp8_act and dsk_linear_fp8_w8a8: f32 or bf16 activations, rows strided; W8A8 needs sm_89+
            reason = op.X is not (ElementType.F32 or ElementType.BF16) ? $"the {op.Op} kernel takes f32 or bf16 activations, not {op.X.Name()}"
                : (op.Op == nameof(Ops.LinearW8A8)) != (op.Scheme == WeightScheme.Fp8Block) ? $"{op.Op} takes {(op.Op == nameof(Ops.LinearW8A8) ? "an FP8 block weight" : "no weight")}"
                : op.Op == nameof(Ops.LinearW8A8) ? Fp8ActivationNative.W8A8Unavailable(_runtime)
                : null;
            return reason == null;
        }
        reason = op.Op is not (nameof(Ops.RmsNorm) or nameof(Ops.AddRmsNorm)) ? $"no {op.Op} kernel yet"
            : op.X is not (ElementType.F32 or ElementType.BF16) ? $"dsk_rms_norm takes f32 or bf16 activations, not {op.X.Name()}"
            : op.Weight is not (ElementType.F32 or ElementType.BF16) || op.Scheme != null ? "dsk_rms_norm takes an f32 or bf16 weight vector"
            : op.StridedRows && op.Op == nameof(Ops.AddRmsNorm) ? "the fused add + RMSNorm has no strided form in the op API"
            : null;
        return reason == null;
    }

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps) =>
        RmsNormNative.Run(_runtime, x, residual, w, y, r, rows, cols, eps);

    public override void RmsNormRows<TW>(DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps) =>
        RmsNormNative.RunRows(_runtime, x, w, y, eps);

    public override void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales) =>
        Fp8ActivationNative.Quantize(_runtime, x, q, scales);

    public override void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        Fp8ActivationNative.Linear(_runtime, qx, xScales, w, bias, y);
}
