namespace DeepSeekKernels.Tokenization;

/// <summary>
/// One entry of tokenizer.json's "added_tokens": a string matched in the input before normalisation and
/// pre-tokenisation and encoded as one id.
/// </summary>
/// <param name="Id">Its id (the model vocabulary's id when the model has the same string, as in Hugging Face).</param>
/// <param name="Content">The text it stands for.</param>
/// <param name="Special">Skipped by <c>Decode(..., skipSpecialTokens: true)</c>.</param>
/// <param name="LStrip">Also takes the whitespace before it.</param>
/// <param name="RStrip">Also takes the whitespace after it.</param>
/// <param name="SingleWord">Matches only where it is not glued to a word character on either side.</param>
/// <param name="Normalized">Matched against the normalised text (else against the raw text).</param>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool SingleWord, bool Normalized);
