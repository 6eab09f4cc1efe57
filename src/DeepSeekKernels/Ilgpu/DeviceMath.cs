using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Ilgpu;

/// <summary>Math for kernels where ILGPU's portable form costs more than the hand kernels pay.</summary>
internal static class DeviceMath
{
    /// <summary>
    /// 1 / sqrt(x). On CUDA the hardware approximation (rsqrt.approx.f32, one MUFU.RSQ, at most 2 ulp off in
    /// fp32), which is what the hand kernels' rsqrtf compiles to; ILGPU's XMath.Rsqrt is a correctly rounded
    /// sqrt followed by a correctly rounded reciprocal, two slow-path sequences on a one-row kernel's critical
    /// path. Elsewhere (the CPU accelerator) XMath.Rsqrt.
    /// </summary>
    public static float Rsqrt(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("rsqrt.approx.f32 %0, %1;", out float result, x);
            return result;
        }
        return XMath.Rsqrt(x);
    }
}
