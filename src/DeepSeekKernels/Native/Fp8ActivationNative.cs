using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Native;

/// <summary>
/// FP8 activations for prefill through the hand-CUDA kernels (dsk_quantize_fp8_act, dsk_linear_fp8_w8a8,
/// dsk_grouped_linear_fp8_w8a8), on the runtime's
/// stream. The op API has validated everything; the library checks again and reports its own errors.
/// </summary>
internal static class Fp8ActivationNative
{
    /// <summary>
    /// The first architecture dsk_linear_fp8_w8a8 runs on: bf16 tensor cores (sm_80), where e4m3 is widened exactly to bf16;
    /// FP8 mma.sync (sm_89+) where the library was built with a toolkit that has it; on a cc 9.0 GPU with a library built
    /// for sm_90a, Hopper's warpgroup FP8 tensor cores (wgmma: the only path at the FP8 rate there). The call leaves the
    /// choice to the library (path Auto).
    /// </summary>
    static readonly CudaArchitecture TensorCores = new(8, 0);

    /// <summary>Why dsk_linear_fp8_w8a8 cannot run on <paramref name="runtime"/>'s GPU, or null when it can (sm_80 and later).</summary>
    public static string? W8A8Unavailable(DeviceRuntime runtime) =>
        runtime.Accelerator is CudaAccelerator cuda && cuda.Architecture < TensorCores
            ? $"dsk_linear_fp8_w8a8 needs tensor cores (sm_80 or later); this GPU is {cuda.Architecture}"
            : null;

    /// <summary>Enqueues q [m, cols], scales [m, ceil(cols / 128)] = the per-token FP8 quantisation of x [m, cols] (rows strided).</summary>
    public static void Quantize(DeviceRuntime runtime, DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales)
    {
        var p = new DskQuantizeFp8ActParams
        {
            X = x.Pointer,
            Q = q.Pointer,
            Scale = scales.Pointer,
            M = x.Dim(0),
            Cols = x.Dim(1),
            XRowStride = x.Stride(0),
            ActDType = (int)x.ElementType,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.QuantizeFp8Act(p);
    }

    /// <summary>Enqueues y [m, w.Rows] (rows strided) = the W8A8 product of qx [m, w.Cols], its scales and the FP8 128 x 128 weight w.</summary>
    public static void Linear(DeviceRuntime runtime, DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        var p = new DskLinearFp8W8A8Params
        {
            Qx = qx.Pointer,
            XScale = xScales.Pointer,
            W = LinearNative.For(w),
            Bias = bias.IsNull ? IntPtr.Zero : bias.Pointer,
            Y = y.Pointer,
            M = y.Dim(0),
            YRowStride = y.Stride(0),
            ActDType = (int)y.ElementType,
            Path = (int)DskW8A8Path.Auto,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.LinearFp8W8A8(p);
    }

    /// <summary>
    /// Enqueues y [m, w.Rows] (rows strided) = the W8A8 product of each expert e's rows offsets[e] .. offsets[e + 1] of qx
    /// [m, w.Cols] (and their scales) with matrix e of the FP8 128 x 128 stack w. The offsets are device data: a bad one
    /// leaves y as it was and is recorded in the runtime's error word under <see cref="DeviceErrorSite.GroupedLinearW8A8Offsets"/>.
    /// </summary>
    public static void GroupedLinear(DeviceRuntime runtime, DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets,
        WeightMatrix w, DeviceTensor y, int m)
    {
        var p = GroupedParams(runtime, qx, xScales, offsets, w, y, m);
        runtime.Bind();
        DskNative.GroupedLinearFp8W8A8(p);
    }

    /// <summary>The params of one grouped call (for tests: what the kernels are told).</summary>
    internal static DskGroupedLinearFp8W8A8Params GroupedParams(DeviceRuntime runtime, DeviceView<Float8E4M3> qx, DeviceView<float> xScales,
        DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) => new()
    {
        Qx = qx.Pointer,
        XScale = xScales.Pointer,
        ExpertOffsets = offsets.Pointer,
        W = LinearNative.For(w),
        Y = y.Pointer,
        ErrorWord = runtime.Errors.Word.View.Pointer,
        M = m,
        YRowStride = LinearNative.RowStride(m, y.Stride(0), w.Rows),
        ActDType = (int)y.ElementType,
        Path = (int)DskW8A8Path.Auto,
        ErrorSite = DeviceErrorSite.GroupedLinearW8A8Offsets.Id,
        Stream = runtime.CudaStreamHandle,
    };
}
