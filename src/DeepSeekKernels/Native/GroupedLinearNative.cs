using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// GroupedLinear and GroupedLinearSiluMul through the hand-CUDA kernels (dsk_grouped_linear, kernels/grouped_linear.cu: the
/// same kernel families as dsk_linear, one matrix per expert, each block finding its expert's rows from the offsets) on
/// the runtime's stream: every weight form dsk_linear takes, f32 or bf16 rows in and out (x and y may differ), strided rows.
/// The offsets are device data: a bad one (outside [0, m], or decreasing) leaves y as it was and is recorded in the
/// runtime's error word under <see cref="DeviceErrorSite.GroupedLinearOffsets"/> (or
/// <see cref="DeviceErrorSite.GroupedLinearSiluMulOffsets"/>), which the next synchronisation throws as a
/// <see cref="DeviceIndexException"/>, as on every backend.
/// </summary>
internal static class GroupedLinearNative
{
    /// <summary>y [m, w.Rows] (rank 2, rows strided) = x [m * w.Cols] (dense rows) @ w[e]^T over each expert e's rows offsets[e] .. offsets[e + 1].</summary>
    public static void GroupedLinear(DeviceRuntime runtime, DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        Run(runtime, x, offsets, w, y, m, DskLinearEpilogue.None, DeviceErrorSite.GroupedLinearOffsets);

    /// <summary>y [m, w.Rows / 2] = silu(x @ gate[e]^T) * (x @ up[e]^T) per expert, in dsk_grouped_linear's epilogue.</summary>
    public static void GroupedLinearSiluMul(DeviceRuntime runtime, DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        Run(runtime, x, offsets, w, y, m, DskLinearEpilogue.SiluMul, DeviceErrorSite.GroupedLinearSiluMulOffsets);

    /// <summary>The params of one call (for tests: what the kernels are told).</summary>
    internal static DskGroupedLinearParams Params(DeviceRuntime runtime, DeviceTensor x, DeviceView<int> offsets, WeightMatrix w,
        DeviceTensor y, int m, DskLinearEpilogue epilogue, DeviceErrorSite site) => new()
    {
        X = x.Pointer,
        ExpertOffsets = offsets.Pointer,
        W = LinearNative.For(w),
        Y = y.Pointer,
        ErrorWord = runtime.Errors.Word.View.Pointer,
        M = m,
        XRowStride = w.Cols, // x is [m * w.Cols], dense (the op API flattens it)
        YRowStride = LinearNative.RowStride(m, y.Stride(0), y.Dim(1)),
        XDType = (int)x.ElementType,
        YDType = (int)y.ElementType,
        Epilogue = (int)epilogue,
        Path = (int)DskLinearPath.Auto,
        ErrorSite = site.Id,
        Stream = runtime.CudaStreamHandle,
    };

    static void Run(DeviceRuntime runtime, DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m,
        DskLinearEpilogue epilogue, DeviceErrorSite site)
    {
        var p = Params(runtime, x, offsets, w, y, m, epilogue, site);
        runtime.Bind();
        DskNative.GroupedLinear(p);
    }
}
