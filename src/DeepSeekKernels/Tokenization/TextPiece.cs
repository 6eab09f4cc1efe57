namespace DeepSeekKernels.Tokenization;

/// <summary>A part of the input on its way through the encoder: text still to encode, or one added token's id.</summary>
internal readonly record struct TextPiece(string? Text, int TokenId)
{
    /// <summary>Text to normalise, pre-tokenise and encode.</summary>
    public static TextPiece OfText(string text) => new(text, -1);

    /// <summary>An added token, already encoded.</summary>
    public static TextPiece OfToken(int id) => new(null, id);

    /// <summary>Whether this piece is an added token.</summary>
    public bool IsToken => Text is null;
}
