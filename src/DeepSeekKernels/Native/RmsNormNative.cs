using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>RMSNorm through the hand-CUDA kernel (kernels/rms_norm.cu), on the runtime's stream.</summary>
internal static class RmsNormNative
{
    /// <summary>Enqueues the op. residual/r are default for the plain op.</summary>
    public static void Run<T, TW>(DeviceRuntime runtime, DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w,
        DeviceView<T> y, DeviceView<T> r, int rows, int cols, float eps)
        where T : unmanaged where TW : unmanaged
    {
        bool fused = !residual.IsNull;
        var p = new DskRmsNormParams
        {
            X = x.Pointer,
            Residual = fused ? residual.Pointer : IntPtr.Zero,
            W = w.Pointer,
            Y = y.Pointer,
            R = fused ? r.Pointer : IntPtr.Zero,
            Rows = rows,
            Cols = cols,
            XRowStride = cols,
            ResidualRowStride = cols,
            YRowStride = cols,
            RRowStride = cols,
            Eps = eps,
            XDType = (int)ElementTypes.Of<T>(),
            WDType = (int)ElementTypes.Of<TW>(),
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.RmsNorm(p);
    }

    /// <summary>Enqueues the plain op over [rows, cols] tensors with their own row strides (elements), as the C ABI takes them.</summary>
    public static void RunRows<TW>(DeviceRuntime runtime, DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps) where TW : unmanaged
    {
        var p = new DskRmsNormParams
        {
            X = x.Pointer,
            Residual = IntPtr.Zero,
            W = w.Pointer,
            Y = y.Pointer,
            R = IntPtr.Zero,
            Rows = x.Dim(0),
            Cols = x.Dim(1),
            XRowStride = x.Stride(0),
            ResidualRowStride = x.Dim(1),
            YRowStride = y.Stride(0),
            RRowStride = x.Dim(1),
            Eps = eps,
            XDType = (int)x.ElementType,
            WDType = (int)ElementTypes.Of<TW>(),
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.RmsNorm(p);
    }
}
