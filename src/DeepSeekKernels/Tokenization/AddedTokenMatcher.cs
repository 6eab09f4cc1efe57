using System.Globalization;
using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Finds added tokens in text as Hugging Face's AddedVocabulary does: leftmost-longest matches, taken one after
/// another without overlap; a <see cref="AddedToken.SingleWord"/> token glued to a word character is passed over
/// (and the search goes on after it); <see cref="AddedToken.LStrip"/> / <see cref="AddedToken.RStrip"/> widen a
/// match over the whitespace before / after it.
/// </summary>
internal sealed class AddedTokenMatcher
{
    sealed class Node
    {
        public Dictionary<char, Node>? Next;
        public AddedToken? Token;
    }

    readonly Node _root = new();

    /// <summary>A matcher for <paramref name="entries"/>: each token with the string to look for (its content, or its
    /// normalised content); when two tokens look for the same string, the first one wins.</summary>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> entries)
    {
        foreach (var (pattern, token) in entries)
        {
            if (pattern.Length == 0)
                continue;
            var node = _root;
            foreach (char c in pattern)
            {
                node.Next ??= new Dictionary<char, Node>();
                if (!node.Next.TryGetValue(c, out var next))
                    node.Next[c] = next = new Node();
                node = next;
            }
            node.Token ??= token;
            IsEmpty = false;
        }
    }

    /// <summary>Whether there is nothing to look for.</summary>
    public bool IsEmpty { get; } = true;

    /// <summary>Splits <paramref name="text"/> into added tokens and the (non-empty) text between them.</summary>
    public void Split(string text, List<TextPiece> output)
    {
        if (IsEmpty)
        {
            if (text.Length > 0)
                output.Add(TextPiece.OfText(text));
            return;
        }

        int emitted = 0; // end of what has been written to output
        int searchFrom = 0;
        while (FindLeftmostLongest(text, searchFrom, out int start, out int stop, out var token))
        {
            searchFrom = stop;
            if (token.SingleWord)
            {
                bool spaceBefore = start == 0 || !IsWordCharacter(Rune.GetRuneAt(text, PreviousRuneStart(text, start)));
                bool spaceAfter = stop == text.Length || !IsWordCharacter(Rune.GetRuneAt(text, stop));
                if (!spaceBefore || !spaceAfter)
                    continue;
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0 && char.IsWhiteSpace(text[newStart - 1]))
                    newStart--;
                start = Math.Max(newStart, emitted);
            }
            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                    stop++;
            }
            if (emitted < start)
                output.Add(TextPiece.OfText(text[emitted..start]));
            output.Add(TextPiece.OfToken(token.Id));
            emitted = stop;
        }
        if (emitted < text.Length)
            output.Add(TextPiece.OfText(text[emitted..]));
    }

    bool FindLeftmostLongest(string text, int from, out int start, out int stop, out AddedToken token)
    {
        var first = _root.Next!;
        for (int i = from; i < text.Length; i++)
        {
            if (!first.ContainsKey(text[i]))
                continue;
            var node = _root;
            AddedToken? best = null;
            int bestEnd = -1;
            for (int j = i; j < text.Length && node.Next is not null && node.Next.TryGetValue(text[j], out var next); j++)
            {
                node = next;
                if (node.Token is not null)
                {
                    best = node.Token;
                    bestEnd = j + 1;
                }
            }
            if (best is not null)
            {
                start = i;
                stop = bestEnd;
                token = best;
                return true;
            }
        }
        start = stop = -1;
        token = null!;
        return false;
    }

    static int PreviousRuneStart(string text, int index) =>
        index >= 2 && char.IsLowSurrogate(text[index - 1]) && char.IsHighSurrogate(text[index - 2]) ? index - 2 : index - 1;

    /// <summary>Rust regex's <c>\w</c>: Alphabetic, marks, decimal digits, connector punctuation, join controls.</summary>
    static bool IsWordCharacter(Rune rune)
    {
        switch (Rune.GetUnicodeCategory(rune))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
            case UnicodeCategory.NonSpacingMark:
            case UnicodeCategory.SpacingCombiningMark:
            case UnicodeCategory.EnclosingMark:
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.ConnectorPunctuation:
                return true;
            default:
                // Join_Control, and the circled letters (So, but Alphabetic)
                return rune.Value is 0x200C or 0x200D or (>= 0x24B6 and <= 0x24E9);
        }
    }
}
