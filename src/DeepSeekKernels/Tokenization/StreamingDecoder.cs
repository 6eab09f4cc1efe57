using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Decodes ids as they are generated, one at a time, into text that can be shown at once: a token may end in the
/// middle of a UTF-8 character (an emoji or a CJK character is often split over two or three byte-level tokens),
/// so bytes that do not yet form whole characters are held back until the ids that complete them arrive.
/// Concatenating every <see cref="Append"/> result and the final <see cref="Flush"/> gives exactly
/// <see cref="HfTokenizer.Decode"/> of all the ids. Made by <see cref="HfTokenizer.CreateStreamingDecoder"/>;
/// not for use from several threads at once.
/// </summary>
public sealed class StreamingDecoder
{
    readonly HfTokenizer _tokenizer;
    readonly bool _skipSpecialTokens;
    byte[] _pending = new byte[16];
    int _count;

    internal StreamingDecoder(HfTokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Whether special added tokens are left out (as <c>Decode(ids, skipSpecialTokens: true)</c>).</summary>
    public bool SkipSpecialTokens => _skipSpecialTokens;

    /// <summary>
    /// Adds <paramref name="id"/> and returns the text it completes: never part of a UTF-8 character; empty while
    /// a character is unfinished. An invalid byte sequence comes out as U+FFFD as soon as it is known to be invalid.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No token has this id (nothing is added).</exception>
    public string Append(int id)
    {
        _tokenizer.CheckId(id, -1, "StreamingDecoder.Append", nameof(id));
        if (_skipSpecialTokens && _tokenizer.IsSpecial(id))
            return "";
        var bytes = _tokenizer.TokenBytes(id);
        if (_count + bytes.Length > _pending.Length)
            Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _count + bytes.Length));
        bytes.CopyTo(_pending.AsSpan(_count));
        _count += bytes.Length;
        return Take(final: false);
    }

    /// <summary>Returns what is held back (an unfinished UTF-8 sequence comes out as U+FFFD) and starts afresh.</summary>
    public string Flush() => Take(final: true);

    string Take(bool final)
    {
        if (_count == 0)
            return "";
        var text = new StringBuilder(_count);
        int decoded = Utf8Lossy.Decode(_pending.AsSpan(0, _count), text, final);
        _pending.AsSpan(decoded, _count - decoded).CopyTo(_pending);
        _count -= decoded;
        return text.ToString();
    }
}
