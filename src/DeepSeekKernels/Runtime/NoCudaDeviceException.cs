namespace DeepSeekKernels.Runtime;

/// <summary>
/// A CUDA GPU was asked for (<see cref="DevicePreference.Cuda"/>, or DSK_DEVICE=cuda) and none is visible. A
/// host can catch it and fall back to <see cref="DevicePreference.Cpu"/>, or tell its user which setting to change.
/// </summary>
public sealed class NoCudaDeviceException(string message) : InvalidOperationException(message);
