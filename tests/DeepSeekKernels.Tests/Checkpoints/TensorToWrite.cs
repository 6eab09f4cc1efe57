namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>One tensor to write: its header dtype name, shape and raw little-endian bytes.</summary>
public sealed record TensorToWrite(string Name, string DType, long[] Shape, byte[] Data);
