namespace DeepSeekKernels.Runtime;

/// <summary>Device memory could not be allocated (out of memory on the GPU, or the host for the CPU accelerator).</summary>
public sealed class DeviceMemoryException(string message, Exception? inner = null) : Exception(message, inner);
