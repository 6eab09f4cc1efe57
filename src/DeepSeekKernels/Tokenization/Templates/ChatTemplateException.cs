namespace DeepSeekKernels.Tokenization.Templates;

/// <summary>
/// A chat template that cannot be parsed or rendered: syntax this engine does not implement (named, with its line and
/// column), a use of an undefined value, a type error, or the template's own <c>raise_exception</c>.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    /// <summary>An error at <paramref name="position"/> (a character index into the template; -1 when unknown).</summary>
    public ChatTemplateException(string message, int position, Exception? innerException = null)
        : base(message, innerException)
    {
        Position = position;
    }

    /// <summary>Where in the template the error is (a character index), or -1.</summary>
    public int Position { get; }
}
