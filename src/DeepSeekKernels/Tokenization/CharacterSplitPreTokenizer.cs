using System.Globalization;
using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Hugging Face's "Digits" and "Punctuation" pre-tokenizers: every code point the predicate accepts is a
/// delimiter of its own (Rust's <c>char::is_numeric</c>: categories Nd, Nl, No; punctuation: ASCII punctuation
/// or categories Pc, Pd, Ps, Pe, Pi, Pf, Po).
/// </summary>
internal sealed class CharacterSplitPreTokenizer(Func<Rune, bool> isDelimiter, SplitBehavior behavior) : PreTokenizerStep
{
    /// <summary>"Digits": runs of digits together (Contiguous), or each digit alone.</summary>
    public static CharacterSplitPreTokenizer Digits(bool individualDigits) =>
        new(IsNumeric, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous);

    /// <summary>"Punctuation" with its behaviour.</summary>
    public static CharacterSplitPreTokenizer Punctuation(SplitBehavior behavior) => new(IsPunctuation, behavior);

    /// <inheritdoc />
    public override void Split(string piece, List<string> output)
    {
        var matches = new List<(int Start, int End)>();
        int at = 0;
        foreach (var rune in piece.EnumerateRunes())
        {
            if (isDelimiter(rune))
                matches.Add((at, at + rune.Utf16SequenceLength));
            at += rune.Utf16SequenceLength;
        }
        var segments = new List<SplitSegments.Segment>(matches.Count * 2 + 1);
        SplitSegments.FromMatches(matches, piece.Length, invert: false, segments);
        SplitSegments.Apply(piece, segments, behavior, output);
    }

    static bool IsNumeric(Rune rune) => Rune.GetUnicodeCategory(rune) is
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    static bool IsPunctuation(Rune rune) =>
        (rune.Value is > 0x20 and < 0x7F && !char.IsAsciiLetterOrDigit((char)rune.Value)) ||
        Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
}
