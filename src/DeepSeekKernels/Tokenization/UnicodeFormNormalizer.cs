namespace DeepSeekKernels.Tokenization;

/// <summary>Hugging Face's "NFC" (Qwen2) or "NFD" normalizer.</summary>
internal sealed class UnicodeFormNormalizer(bool compose) : TextNormalizer
{
    /// <inheritdoc />
    public override string Normalize(string text) =>
        compose ? UnicodeNormalization.ToNfc(text) : UnicodeNormalization.ToNfd(text);
}
