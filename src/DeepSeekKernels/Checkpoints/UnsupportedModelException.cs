namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// A well-formed config.json that asks for something the runner does not implement: another model_type, a
/// hidden_act other than silu, a RoPE scaling type other than default/linear/yarn/llama3, a quantisation
/// other than block-scaled FP8, sliding-window attention. The message names the key and the value, and lists
/// what is supported.
/// </summary>
public class UnsupportedModelException : CheckpointException
{
    /// <summary>An unsupported <paramref name="key"/> = <paramref name="value"/> in <paramref name="filePath"/>.</summary>
    public UnsupportedModelException(string message, string? filePath, string key, string? value)
        : base(message, filePath, tensorName: null)
    {
        Key = key;
        Value = value;
    }

    /// <summary>The config.json key at fault (<c>model_type</c>, <c>rope_scaling.rope_type</c>, ...).</summary>
    public string Key { get; }

    /// <summary>The value it had, as written.</summary>
    public string? Value { get; }
}
