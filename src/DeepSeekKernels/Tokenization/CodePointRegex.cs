using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// A Hugging Face split regex run with .NET's engine so that it matches as Hugging Face's (Oniguruma) does.
/// </summary>
/// <remarks>
/// Oniguruma matches whole code points: <c>\p{L}</c> matches U+20000 (a CJK letter outside the BMP) and
/// <c>\p{N}{1,3}</c> takes three mathematical digits U+1D7CE... . .NET's engine works on UTF-16 units and sees
/// such a character as two surrogates, which no <c>\p{..}</c> class matches (a negated one matches each half).
/// So before matching, each supplementary code point is replaced by one BMP "stand-in" character of the same
/// Unicode general category, chosen so that no literal character or range written in the pattern (nor a case
/// variant of one) matches it; the matches are then mapped back to the original UTF-16 positions. Every
/// construct in these patterns decides on a character only through its general category (<c>\p{X}</c>,
/// negated classes of them), through <c>\s</c> (no supplementary character is whitespace) or through
/// literals (which the stand-ins avoid), and a stand-in is one unit as the code point is one character to
/// Oniguruma, so the stand-in text matches exactly where Oniguruma matches the original.
/// </remarks>
internal sealed class CodePointRegex
{
    // Candidate stand-ins per UnicodeCategory (in enum order); the first one of the right category (in this
    // runtime's Unicode data) that the pattern does not name is used.
    static readonly string[] Candidates =
    [
        "\u0531\u10A0\u2C00\u0391", // UppercaseLetter: Armenian, Georgian, Glagolitic, Greek capitals
        "\u0561\u2D00\u2C30\u03B1", // LowercaseLetter
        "\u01C5\u1F88\u01C8",       // TitlecaseLetter
        "\u02B0\uA015\u02B1",       // ModifierLetter
        "\u05D0\u0E01\uA000",       // OtherLetter: Hebrew alef, Thai ko kai, Yi syllable
        "\u0300\u0591\u20D0",       // NonSpacingMark
        "\u0903\u09BE\u0B3E",       // SpacingCombiningMark
        "\u20DD\u0488\u20DE",       // EnclosingMark
        "\u0660\u06F0\u0966",       // DecimalDigitNumber: Arabic-Indic, Extended Arabic-Indic, Devanagari
        "\u2160\u3007\u16EE",       // LetterNumber
        "\u00B2\u2460\u00BD",       // OtherNumber
        "\u2000\u2001\u3000",       // SpaceSeparator (no supplementary character has it)
        "\u2028",                   // LineSeparator (idem)
        "\u2029",                   // ParagraphSeparator (idem)
        "\u0080\u0081",             // Control (idem)
        "\u00AD\u2060\u061C",       // Format: tag characters U+E0020.. in flag sequences
        "",                         // Surrogate: never a whole code point
        "\uE000\uF8FF\uE001",       // PrivateUse: planes 15 and 16
        "\u203F\u2040\u2054",       // ConnectorPunctuation
        "\u2010\u058A\u2011",       // DashPunctuation
        "\u2045\u0F3A\u2329",       // OpenPunctuation
        "\u2046\u0F3B\u232A",       // ClosePunctuation
        "\u00AB\u2039\u201C",       // InitialQuotePunctuation
        "\u00BB\u203A\u201D",       // FinalQuotePunctuation
        "\u00A1\u055C\u00BF",       // OtherPunctuation
        "\u2200\u00AC\u2201",       // MathSymbol
        "\u20AC\u00A2\u00A3",       // CurrencySymbol
        "\u02C2\u00B4\u02C3",       // ModifierSymbol: the emoji skin-tone modifiers U+1F3FB.. are Sk
        "\u00A9\u2600\u00AE",       // OtherSymbol: most emoji
        "\u0378\u0379\u0380",       // OtherNotAssigned
    ];

    readonly Regex _regex;
    readonly char[] _standIns;

    /// <summary>Compiles <paramref name="pattern"/> (Oniguruma syntax, as in tokenizer.json).</summary>
    /// <exception cref="ArgumentException">.NET's engine rejects the pattern.</exception>
    /// <exception cref="NotSupportedException">No stand-in is left for some category (the pattern names them all).</exception>
    public CodePointRegex(string pattern)
    {
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
        var named = LiteralCharacters(pattern);
        _standIns = new char[Candidates.Length];
        for (int category = 0; category < Candidates.Length; category++)
        {
            foreach (char candidate in Candidates[category])
            {
                if ((int)CharUnicodeInfo.GetUnicodeCategory(candidate) != category)
                    continue;
                if (named.Contains(candidate) || named.Contains(char.ToUpperInvariant(candidate)) || named.Contains(char.ToLowerInvariant(candidate)))
                    continue;
                _standIns[category] = candidate;
                break;
            }
            if (_standIns[category] == '\0' && category != (int)UnicodeCategory.Surrogate)
                throw new NotSupportedException($"the pattern names every stand-in for {(UnicodeCategory)category} characters: {pattern}");
        }
    }

    /// <summary>Appends the [Start, End) UTF-16 spans of the successive matches in <paramref name="text"/>.</summary>
    public void Matches(string text, List<(int Start, int End)> matches)
    {
        int firstSurrogate = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (firstSurrogate < 0)
        {
            for (var m = _regex.Match(text); m.Success; m = m.NextMatch())
                matches.Add((m.Index, m.Index + m.Length));
            return;
        }

        // origin[i]: where stand-in text unit i starts in text; origin[length] = text.Length.
        var substitute = new StringBuilder(text.Length);
        var origin = new List<int>(text.Length + 1);
        substitute.Append(text, 0, firstSurrogate);
        for (int i = 0; i < firstSurrogate; i++)
            origin.Add(i);
        for (int i = firstSurrogate; i < text.Length; i++)
        {
            origin.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                substitute.Append(_standIns[(int)category]);
                i++;
            }
            else
            {
                substitute.Append(text[i]); // a lone surrogate: matched as .NET matches it
            }
        }
        origin.Add(text.Length);
        for (var m = _regex.Match(substitute.ToString()); m.Success; m = m.NextMatch())
            matches.Add((origin[m.Index], origin[m.Index + m.Length]));
    }

    /// <summary>
    /// Every character the pattern writes literally, alone or as a range bound or inside a range, outside the
    /// <c>\p{..}</c> / <c>\P{..}</c> escapes (metacharacters count too: over-excluding only costs a candidate).
    /// </summary>
    static HashSet<char> LiteralCharacters(string pattern)
    {
        var named = new HashSet<char>();
        bool inClass = false;
        int previousLiteral = -1; // last literal inside a class, for ranges
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            int literal = -1;
            if (c == '\\' && i + 1 < pattern.Length)
            {
                char e = pattern[++i];
                switch (e)
                {
                    case 'p' or 'P':
                        int close = pattern.IndexOf('}', i);
                        i = close < 0 ? pattern.Length : close;
                        break;
                    case 's' or 'S' or 'd' or 'D' or 'w' or 'W' or 'b' or 'B' or 'A' or 'z' or 'Z' or 'G':
                        break;
                    case 't': literal = '\t'; break;
                    case 'n': literal = '\n'; break;
                    case 'r': literal = '\r'; break;
                    case 'f': literal = '\f'; break;
                    case 'v': literal = '\v'; break;
                    case 'e': literal = '\u001B'; break;
                    case 'a': literal = '\u0007'; break;
                    case 'x' when i + 2 < pattern.Length && IsHex(pattern.AsSpan(i + 1, 2)):
                        literal = int.Parse(pattern.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                        i += 2;
                        break;
                    case 'u' when i + 4 < pattern.Length && IsHex(pattern.AsSpan(i + 1, 4)):
                        literal = int.Parse(pattern.AsSpan(i + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                        i += 4;
                        break;
                    default: literal = e; break;
                }
            }
            else if (c == '[' && !inClass)
            {
                inClass = true;
                previousLiteral = -1;
                continue;
            }
            else if (c == ']' && inClass)
            {
                inClass = false;
                continue;
            }
            else if (c == '-' && inClass && previousLiteral >= 0 && i + 1 < pattern.Length && pattern[i + 1] != ']')
            {
                // a range: the bound after '-' is read next; mark everything from previousLiteral to it.
                int upperAt = i + 1;
                int upper = pattern[upperAt];
                if (upper == '\\' && upperAt + 1 < pattern.Length)
                {
                    char e = pattern[upperAt + 1];
                    upper = e switch
                    {
                        'u' when upperAt + 5 < pattern.Length && IsHex(pattern.AsSpan(upperAt + 2, 4)) =>
                            int.Parse(pattern.AsSpan(upperAt + 2, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                        'x' when upperAt + 3 < pattern.Length && IsHex(pattern.AsSpan(upperAt + 2, 2)) =>
                            int.Parse(pattern.AsSpan(upperAt + 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                        _ => e,
                    };
                }
                for (int r = previousLiteral; r <= upper && r <= char.MaxValue; r++)
                    named.Add((char)r);
                named.Add('-');
                previousLiteral = -1;
                continue;
            }
            else
            {
                literal = c;
            }

            if (literal >= 0)
            {
                named.Add((char)literal);
                previousLiteral = inClass ? literal : -1;
            }
            else
            {
                previousLiteral = -1;
            }
        }
        return named;
    }

    static bool IsHex(ReadOnlySpan<char> text)
    {
        foreach (char c in text)
        {
            if (!char.IsAsciiHexDigit(c))
                return false;
        }
        return true;
    }
}
