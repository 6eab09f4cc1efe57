using System.Buffers;
using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// UTF-8 to text as Rust's <c>String::from_utf8_lossy</c> (and so Hugging Face's decoders) does it: each maximal
/// invalid subsequence becomes one U+FFFD.
/// </summary>
internal static class Utf8Lossy
{
    /// <summary>
    /// Decodes <paramref name="bytes"/> into <paramref name="text"/>. When <paramref name="final"/> is false, a
    /// sequence at the end that is incomplete but valid so far is left undecoded; returns how many bytes were
    /// decoded (the rest must be decoded again with what follows).
    /// </summary>
    public static int Decode(ReadOnlySpan<byte> bytes, StringBuilder text, bool final)
    {
        Span<char> units = stackalloc char[2];
        int at = 0;
        while (at < bytes.Length)
        {
            var status = Rune.DecodeFromUtf8(bytes[at..], out var rune, out int consumed);
            if (status == OperationStatus.NeedMoreData && !final)
                break;
            if (status == OperationStatus.Done)
                text.Append(units[..rune.EncodeToUtf16(units)]);
            else
                text.Append('\uFFFD');
            at += consumed;
        }
        return at;
    }
}
