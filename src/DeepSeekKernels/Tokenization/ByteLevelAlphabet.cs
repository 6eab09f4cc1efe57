namespace DeepSeekKernels.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet, as Hugging Face's ByteLevel pre-tokenizer and decoder use it: every byte maps to
/// one printable character (printable Latin-1 bytes to themselves, the other 68 bytes to U+0100..U+0143 in byte
/// order), so that a byte-level BPE vocabulary is plain text (a space is 'Ġ', a newline 'Ċ').
/// </summary>
internal static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = BuildByteToChar();
    static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, each written as its byte-level character.</summary>
    public static string Encode(string text)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (chars, source) =>
        {
            for (int i = 0; i < source.Length; i++)
                chars[i] = ByteToChar[source[i]];
        });
    }

    /// <summary>
    /// The bytes a token stands for, as Hugging Face's ByteLevel decoder reads it: the byte of each character when
    /// every character is in the alphabet; otherwise (an added token such as "&lt;｜User｜&gt;") the token's own UTF-8.
    /// </summary>
    public static byte[] DecodeToken(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!CharToByte.TryGetValue(token[i], out byte value))
                return System.Text.Encoding.UTF8.GetBytes(token);
            bytes[i] = value;
        }
        return bytes;
    }

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        var printable = new bool[256];
        for (int b = '!'; b <= '~'; b++) printable[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = printable[b] ? (char)b : (char)(256 + next++);
        return map;
    }

    static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++)
            map[ByteToChar[b]] = (byte)b;
        return map;
    }
}
