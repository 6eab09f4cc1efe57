using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Generation;

/// <summary>Turns ids into text pieces, holding back any tail that could still become a stop string.</summary>
internal sealed class StreamingText(HfTokenizer? tokenizer, IReadOnlyList<string> stopStrings)
{
    readonly StreamingDecoder? _decoder = tokenizer?.CreateStreamingDecoder();
    readonly System.Text.StringBuilder _all = new();
    int _emitted;

    /// <summary>All text so far (without a stop string and what followed it).</summary>
    public string Text => _all.ToString(0, _emitted);

    public (string Piece, bool Stopped) Append(int id)
    {
        if (_decoder is null)
            return ("", false);
        _all.Append(_decoder.Append(id));
        string all = _all.ToString();
        foreach (var stop in stopStrings)
        {
            int at = all.IndexOf(stop, Math.Max(0, _emitted - stop.Length + 1), StringComparison.Ordinal);
            if (at >= 0)
            {
                string piece = all.Substring(_emitted, Math.Max(0, at - _emitted));
                _all.Length = at;
                _emitted = at;
                return (piece, true);
            }
        }
        // Hold back the longest tail that is a prefix of some stop string.
        int hold = 0;
        foreach (var stop in stopStrings)
            for (int n = Math.Min(stop.Length - 1, all.Length - _emitted); n > hold; n--)
                if (all.AsSpan(all.Length - n).SequenceEqual(stop.AsSpan(0, n)))
                {
                    hold = n;
                    break;
                }
        int end = all.Length - hold;
        string emit = all.Substring(_emitted, end - _emitted);
        _emitted = end;
        return (emit, false);
    }

    public string Flush()
    {
        if (_decoder is null)
            return "";
        _all.Append(_decoder.Flush());
        string rest = _all.ToString(_emitted, _all.Length - _emitted);
        _emitted = _all.Length;
        return rest;
    }
}
