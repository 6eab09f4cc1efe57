namespace DeepSeekKernels.Tokenization;

/// <summary>
/// A tokenizer file that cannot be used as it stands: malformed JSON, a missing or mistyped field, or a component
/// (model, normalizer, pre-tokenizer, post-processor, decoder) of a type this tokenizer does not implement. The
/// message names the file (full path), the JSON path of the field and the value at fault.
/// </summary>
public class TokenizerException : Exception
{
    /// <summary>An error in <paramref name="filePath"/>.</summary>
    public TokenizerException(string message, string filePath, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }
}
