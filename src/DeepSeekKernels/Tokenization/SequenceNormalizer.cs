namespace DeepSeekKernels.Tokenization;

/// <summary>Hugging Face's "Sequence" normalizer: its steps in order (none: the text unchanged, as DeepSeek-V3's).</summary>
internal sealed class SequenceNormalizer(IReadOnlyList<TextNormalizer> steps) : TextNormalizer
{
    /// <inheritdoc />
    public override string Normalize(string text)
    {
        foreach (var step in steps)
            text = step.Normalize(text);
        return text;
    }
}
