namespace DeepSeekKernels;

/// <summary>Which implementation of the ops runs.</summary>
public enum Backend
{
    /// <summary>Plain C# on the CPU (System.Numerics.Tensors): the specification, and the CPU fallback.</summary>
    Reference,
    /// <summary>Kernels written in C# with ILGPU, on the runtime's accelerator (CUDA, or ILGPU's CPU accelerator).</summary>
    Ilgpu,
    /// <summary>The hand-written CUDA kernels of libdeepseek_kernels.so (needs a CUDA GPU).</summary>
    Native,
}
