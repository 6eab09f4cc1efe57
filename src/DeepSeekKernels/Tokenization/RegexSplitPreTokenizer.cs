namespace DeepSeekKernels.Tokenization;

/// <summary>Hugging Face's "Split" pre-tokenizer with a {"Regex": ...} pattern (see <see cref="CodePointRegex"/>).</summary>
internal sealed class RegexSplitPreTokenizer(CodePointRegex regex, SplitBehavior behavior, bool invert) : PreTokenizerStep
{
    /// <inheritdoc />
    public override void Split(string piece, List<string> output)
    {
        var matches = new List<(int Start, int End)>();
        regex.Matches(piece, matches);
        var segments = new List<SplitSegments.Segment>(matches.Count * 2 + 1);
        SplitSegments.FromMatches(matches, piece.Length, invert, segments);
        SplitSegments.Apply(piece, segments, behavior, output);
    }
}
