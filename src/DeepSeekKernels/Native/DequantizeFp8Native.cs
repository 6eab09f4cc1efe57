using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>FP8 block-scaled weights to f32 through the hand-CUDA kernel (dsk_dequantize_fp8, kernels/dequantize_fp8.cu).</summary>
internal static class DequantizeFp8Native
{
    /// <summary>y [Count, Rows, Cols] = bf16(fp8 * scale) widened to f32, for every matrix of the stack.</summary>
    public static void Run(DeviceRuntime runtime, WeightMatrix w, DeviceView<float> y)
    {
        var p = new DskDequantizeFp8Params
        {
            W = LinearNative.For(w),
            Y = y.Pointer,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.DequantizeFp8(p);
    }
}
