namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// A checkpoint file or folder that cannot be read as it stands: a malformed safetensors file, a shard index
/// that names a missing shard, a config.json that contradicts itself or the tensors. The message names the
/// file (full path) and, where there is one, the tensor or config key at fault.
/// </summary>
public class CheckpointException : Exception
{
    /// <summary>An error with a message that already names the file.</summary>
    public CheckpointException(string message) : base(message) { }

    /// <summary>An error caused by <paramref name="innerException"/> (an I/O or JSON error).</summary>
    public CheckpointException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>An error in <paramref name="filePath"/>, about <paramref name="tensorName"/> when not null.</summary>
    public CheckpointException(string message, string? filePath, string? tensorName, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file or folder at fault, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor at fault, when there is one.</summary>
    public string? TensorName { get; }
}
