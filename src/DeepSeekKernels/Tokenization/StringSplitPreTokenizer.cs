namespace DeepSeekKernels.Tokenization;

/// <summary>Hugging Face's "Split" pre-tokenizer with a {"String": ...} pattern: the literal text, found left to right.</summary>
internal sealed class StringSplitPreTokenizer(string delimiter, SplitBehavior behavior, bool invert) : PreTokenizerStep
{
    /// <inheritdoc />
    public override void Split(string piece, List<string> output)
    {
        var matches = new List<(int Start, int End)>();
        if (delimiter.Length > 0)
        {
            for (int at = piece.IndexOf(delimiter, StringComparison.Ordinal); at >= 0;
                 at = piece.IndexOf(delimiter, at + delimiter.Length, StringComparison.Ordinal))
                matches.Add((at, at + delimiter.Length));
        }
        var segments = new List<SplitSegments.Segment>(matches.Count * 2 + 1);
        SplitSegments.FromMatches(matches, piece.Length, invert, segments);
        SplitSegments.Apply(piece, segments, behavior, output);
    }
}
