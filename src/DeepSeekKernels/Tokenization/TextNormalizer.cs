namespace DeepSeekKernels.Tokenization;

/// <summary>One of tokenizer.json's "normalizer" steps: rewrites a piece of text before pre-tokenisation.</summary>
internal abstract class TextNormalizer
{
    /// <summary>The normalised form of <paramref name="text"/>.</summary>
    public abstract string Normalize(string text);
}
