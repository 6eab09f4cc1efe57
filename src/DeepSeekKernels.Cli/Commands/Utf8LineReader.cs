using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// Reads a byte stream line by line ("\n" or "\r\n"; a UTF-8 byte-order mark at the start is dropped) and
/// decodes each line as UTF-8, saying where a line is not valid UTF-8 instead of replacing its bytes silently
/// (which StreamReader does). Reads only what is available, so it works on an interactive terminal too.
/// </summary>
internal sealed class Utf8LineReader(Stream stream)
{
    readonly byte[] _buffer = new byte[64 * 1024];
    readonly ArrayBufferWriter<byte> _line = new();
    int _start, _end;
    bool _ended;

    /// <summary>The 1-based number of the line last returned.</summary>
    public int LineNumber { get; private set; }

    /// <summary>
    /// The next line without its line break, or null at the end of the stream. <paramref name="invalidByte"/>
    /// is the 1-based position in the line of its first byte that is not valid UTF-8 (then each invalid
    /// sequence is read as U+FFFD), or 0 when the line is valid.
    /// </summary>
    public string? ReadLine(out int invalidByte)
    {
        invalidByte = 0;
        _line.ResetWrittenCount();
        while (true)
        {
            if (_start == _end)
            {
                if (_ended || !Fill())
                {
                    _ended = true;
                    if (_line.WrittenCount == 0)
                        return null;
                    break; // the last line has no line break
                }
            }
            int newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            int stop = newline < 0 ? _end : newline;
            _line.Write(_buffer.AsSpan(_start, stop - _start));
            _start = newline < 0 ? _end : newline + 1;
            if (newline >= 0)
                break;
        }
        LineNumber++;
        var bytes = _line.WrittenSpan;
        if (bytes.Length > 0 && bytes[^1] == (byte)'\r')
            bytes = bytes[..^1];
        if (LineNumber == 1 && bytes.StartsWith("\uFEFF"u8))
            bytes = bytes[3..];
        return Decode(bytes, out invalidByte);
    }

    /// <summary>Decodes UTF-8; <paramref name="invalidByte"/> is the 1-based position of the first invalid byte, or 0.</summary>
    internal static string Decode(ReadOnlySpan<byte> bytes, out int invalidByte)
    {
        invalidByte = 0;
        var chars = new char[bytes.Length]; // UTF-16 never needs more code units than UTF-8 has bytes
        if (Utf8.ToUtf16(bytes, chars, out int read, out int written, replaceInvalidSequences: false) == OperationStatus.Done)
            return new string(chars, 0, written);
        invalidByte = read + 1;
        return Encoding.UTF8.GetString(bytes);
    }

    bool Fill()
    {
        _start = 0;
        _end = stream.Read(_buffer, 0, _buffer.Length);
        return _end > 0;
    }
}
