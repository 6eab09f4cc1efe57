namespace DeepSeekKernels;

/// <summary>Which implementation of the ops runs.</summary>
public enum Backend
{
    /// <summary>Plain C# on the CPU (System.Numerics.Tensors): the specification, and the CPU fallback.</summary>
    Reference,
    /// <summary>Kernels written in C# with ILGPU, on the runtime's accelerator (CUDA, or ILGPU's CPU accelerator).</summary>
    Ilgpu,
    /// <summary>
    /// The fast CPU backend: SIMD kernels (System.Runtime.Intrinsics) on a fixed thread pool over host memory, weights read
    /// in place from the mapped checkpoint; the reference's host code for the ops it has no kernel of its own for. Runs on
    /// ILGPU's CPU accelerator's runtime; the runner's default where no GPU is found.
    /// </summary>
    Cpu,
    /// <summary>The hand-written CUDA kernels of libdeepseek_kernels.so (needs a CUDA GPU).</summary>
    Native,
}
