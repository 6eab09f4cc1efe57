using System.Globalization;
using System.Text;

namespace DeepSeekKernels.Tokenization.Templates;

/// <summary>What a <see cref="JinjaToken"/> is.</summary>
internal enum JinjaTokenKind
{
    /// <summary>Template text outside tags, whitespace control and trim_blocks / lstrip_blocks already applied.</summary>
    Text,
    /// <summary><c>{{</c>.</summary>
    VariableStart,
    /// <summary><c>}}</c>.</summary>
    VariableEnd,
    /// <summary><c>{%</c>.</summary>
    BlockStart,
    /// <summary><c>%}</c>.</summary>
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    /// <summary>An operator or punctuation: == != &lt;= &gt;= &lt; &gt; + - * / // % ** ~ = . , : | ( ) [ ] { }.</summary>
    Operator,
    End,
}

/// <summary>One token and where it starts in the template (for error messages).</summary>
internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Value, int Position);

/// <summary>
/// Splits a template into text and tag tokens as Jinja2 does with transformers' settings for chat templates
/// (<c>trim_blocks</c>: the first newline after a block or comment tag is dropped; <c>lstrip_blocks</c>: spaces and tabs
/// from a line's start to a block or comment tag are dropped), with <c>-</c> whitespace control on either side of a tag
/// and comments (<c>{# #}</c>) removed.
/// </summary>
internal static class JinjaLexer
{
    static readonly string[] Operators = ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}"];

    public static List<JinjaToken> Tokenize(string source)
    {
        var tokens = new List<JinjaToken>();
        int i = 0;
        bool stripNextLeading = false, trimNextNewline = false;
        while (i < source.Length)
        {
            int open = FindTagOpen(source, i);
            string text = source[i..(open < 0 ? source.Length : open)];
            if (trimNextNewline)
            {
                if (text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
                else if (text.StartsWith('\n')) text = text[1..];
            }
            if (stripNextLeading)
                text = text.TrimStart();
            trimNextNewline = stripNextLeading = false;
            if (open < 0)
            {
                Add(tokens, text, i);
                break;
            }
            char kind = source[open + 1];
            bool stripBefore = open + 2 < source.Length && source[open + 2] == '-';
            bool keepBefore = open + 2 < source.Length && source[open + 2] == '+';
            if (stripBefore)
                text = text.TrimEnd();
            else if (kind is '%' or '#' && !keepBefore)
                text = LstripBlock(text);
            Add(tokens, text, i);
            int inner = open + 2 + (stripBefore || keepBefore ? 1 : 0);
            if (kind == '#')
            {
                int close = source.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0)
                    throw new ChatTemplateException("a comment is not closed with #}", open);
                stripNextLeading = source[close - 1] == '-' && close - 1 >= inner;
                trimNextNewline = true;
                i = close + 2;
                continue;
            }
            tokens.Add(new(kind == '{' ? JinjaTokenKind.VariableStart : JinjaTokenKind.BlockStart, source.Substring(open, 2), open));
            i = TagBody(source, inner, kind == '{' ? '}' : '%', tokens, out bool stripAfter);
            tokens.Add(new(kind == '{' ? JinjaTokenKind.VariableEnd : JinjaTokenKind.BlockEnd, kind == '{' ? "}}" : "%}", i - 2));
            stripNextLeading = stripAfter;
            trimNextNewline = kind == '%';
        }
        tokens.Add(new(JinjaTokenKind.End, "", source.Length));
        return tokens;
    }

    static void Add(List<JinjaToken> tokens, string text, int position)
    {
        if (text.Length > 0)
            tokens.Add(new(JinjaTokenKind.Text, text, position));
    }

    /// <summary>lstrip_blocks: the text's last line, when it is only spaces and tabs, is dropped up to the tag.</summary>
    static string LstripBlock(string text)
    {
        int end = text.Length;
        while (end > 0 && text[end - 1] is ' ' or '\t')
            end--;
        return end == 0 || text[end - 1] == '\n' ? text[..end] : text;
    }

    static int FindTagOpen(string source, int from)
    {
        for (int i = from; i + 1 < source.Length; i++)
            if (source[i] == '{' && source[i + 1] is '{' or '%' or '#')
                return i;
        return -1;
    }

    /// <summary>Tokens of a tag's body up to its closing <c>}}</c> or <c>%}</c>; returns the index after the close.</summary>
    static int TagBody(string source, int i, char close, List<JinjaToken> tokens, out bool stripAfter)
    {
        int depth = 0; // brackets: a '}' inside {{ {'a': 1} }} is not the tag's end
        while (true)
        {
            while (i < source.Length && char.IsWhiteSpace(source[i]))
                i++;
            if (i >= source.Length)
                throw new ChatTemplateException($"a tag is not closed with {close}}}", i);
            if (depth == 0 && source[i] == '-' && i + 2 < source.Length && source[i + 1] == close && source[i + 2] == '}')
            {
                stripAfter = true;
                return i + 3;
            }
            if (depth == 0 && source[i] == close && i + 1 < source.Length && source[i + 1] == '}')
            {
                stripAfter = false;
                return i + 2;
            }
            char c = source[i];
            if (c is '\'' or '"')
            {
                i = ReadString(source, i, tokens);
                continue;
            }
            if (char.IsDigit(c))
            {
                int start = i;
                while (i < source.Length && (char.IsDigit(source[i]) || source[i] == '_'))
                    i++;
                bool isFloat = i + 1 < source.Length && source[i] == '.' && char.IsDigit(source[i + 1]);
                if (isFloat)
                {
                    i++;
                    while (i < source.Length && char.IsDigit(source[i]))
                        i++;
                }
                string digits = source[start..i].Replace("_", "", StringComparison.Ordinal);
                tokens.Add(new(isFloat ? JinjaTokenKind.Float : JinjaTokenKind.Integer, digits, start));
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                int start = i;
                while (i < source.Length && (char.IsLetterOrDigit(source[i]) || source[i] == '_'))
                    i++;
                tokens.Add(new(JinjaTokenKind.Name, source[start..i], start));
                continue;
            }
            string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(source, i, o, 0, o.Length) == 0);
            if (op is null)
                throw new ChatTemplateException($"unexpected character '{c}'", i);
            if (op is "(" or "[" or "{") depth++;
            else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
            tokens.Add(new(JinjaTokenKind.Operator, op, i));
            i += op.Length;
        }
    }

    static int ReadString(string source, int i, List<JinjaToken> tokens)
    {
        char quote = source[i];
        int start = i++;
        var value = new StringBuilder();
        while (true)
        {
            if (i >= source.Length)
                throw new ChatTemplateException("a string is not closed", start);
            char c = source[i++];
            if (c == quote)
                break;
            if (c != '\\')
            {
                value.Append(c);
                continue;
            }
            if (i >= source.Length)
                throw new ChatTemplateException("a string ends in a backslash", start);
            char e = source[i++];
            switch (e)
            {
                case 'n': value.Append('\n'); break;
                case 't': value.Append('\t'); break;
                case 'r': value.Append('\r'); break;
                case '\\': value.Append('\\'); break;
                case '\'': value.Append('\''); break;
                case '"': value.Append('"'); break;
                case 'u' when i + 4 <= source.Length:
                    value.Append((char)int.Parse(source.AsSpan(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    i += 4;
                    break;
                default: value.Append('\\').Append(e); break; // Python keeps unknown escapes as written
            }
        }
        tokens.Add(new(JinjaTokenKind.String, value.ToString(), start));
        return i;
    }
}
