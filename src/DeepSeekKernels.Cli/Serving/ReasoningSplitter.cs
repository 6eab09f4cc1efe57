namespace DeepSeekKernels.Cli.Serving;

/// <summary>
/// A reasoning model's reply (DeepSeek-R1 and its distills, whose chat template opens the turn with "&lt;think&gt;\n") split
/// as DeepSeek's API and vLLM's deepseek_r1 parser return it: what comes before "&lt;/think&gt;" is the reasoning
/// ("reasoning_content"), what follows it the answer ("content", its leading line breaks dropped); a reply cut off before
/// "&lt;/think&gt;" is all reasoning. Fed piece by piece as tokens stream (a piece that may be the start of the tag is held
/// back until the next one says), or whole with <see cref="Split"/>.
/// </summary>
internal sealed class ReasoningSplitter
{
    const string End = "</think>";

    string _held = "";
    bool _answering, _answerStarted;

    /// <summary>The reasoning and the answer text this piece completes (either may be empty).</summary>
    public (string Reasoning, string Content) Append(string piece)
    {
        if (_answering)
            return ("", Answer(piece));
        string text = _held + piece;
        _held = "";
        int at = text.IndexOf(End, StringComparison.Ordinal);
        if (at >= 0)
        {
            _answering = true;
            return (text[..at], Answer(text[(at + End.Length)..]));
        }
        int keep = HeldBack(text);
        _held = text[^keep..];
        return (text[..^keep], "");
    }

    /// <summary>What was held back at the end of the reply (a "&lt;/thi" that never finished: reasoning).</summary>
    public (string Reasoning, string Content) Flush()
    {
        string held = _held;
        _held = "";
        return (held, "");
    }

    /// <summary>A whole reply: (reasoning, answer); the answer is null when the reply ended before "&lt;/think&gt;".</summary>
    public static (string Reasoning, string? Content) Split(string reply)
    {
        var splitter = new ReasoningSplitter();
        var (reasoning, content) = splitter.Append(reply);
        reasoning += splitter.Flush().Reasoning;
        return (reasoning, splitter._answering ? content : null);
    }

    /// <summary>The answer's text, without the line breaks between "&lt;/think&gt;" and its first character.</summary>
    string Answer(string text)
    {
        if (_answerStarted)
            return text;
        text = text.TrimStart('\n', '\r');
        _answerStarted = text.Length > 0;
        return text;
    }

    /// <summary>The longest end of <paramref name="text"/> that "&lt;/think&gt;" starts with (held until the next piece says).</summary>
    static int HeldBack(string text)
    {
        for (int n = Math.Min(End.Length - 1, text.Length); n > 0; n--)
            if (text.EndsWith(End[..n], StringComparison.Ordinal))
                return n;
        return 0;
    }
}
