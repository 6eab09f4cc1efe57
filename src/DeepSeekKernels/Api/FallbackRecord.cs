namespace DeepSeekKernels;

/// <summary>
/// One line of <see cref="Ops.FallbackReport"/>: calls of <paramref name="Signature"/> that ran on the reference
/// because the backend does not support them, and the bytes the reference copied between device and host memory to
/// run them (0 on ILGPU's CPU accelerator, whose buffers the reference uses in place).
/// </summary>
/// <param name="Signature">The op call that fell back.</param>
/// <param name="Calls">How many times it ran on the reference.</param>
/// <param name="StagedBytes">Bytes copied device to host plus host to device over those calls.</param>
public readonly record struct FallbackRecord(OpSignature Signature, long Calls, long StagedBytes);
