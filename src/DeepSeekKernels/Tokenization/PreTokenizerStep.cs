namespace DeepSeekKernels.Tokenization;

/// <summary>One of tokenizer.json's "pre_tokenizer" steps: cuts a piece of normalised text into smaller pieces.</summary>
internal abstract class PreTokenizerStep
{
    /// <summary>Appends the non-empty pieces of <paramref name="piece"/> to <paramref name="output"/>.</summary>
    public abstract void Split(string piece, List<string> output);
}
