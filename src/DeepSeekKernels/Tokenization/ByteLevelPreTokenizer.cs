namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Hugging Face's "ByteLevel" pre-tokenizer: with add_prefix_space, a space before every piece that does not
/// start with one; with use_regex, GPT-2's split. (Writing each UTF-8 byte as its <see cref="ByteLevelAlphabet"/>
/// character is left to the BPE model, which is built with ByteLevel = true.)
/// </summary>
internal sealed class ByteLevelPreTokenizer : PreTokenizerStep
{
    /// <summary>GPT-2's pre-tokenizer pattern, which use_regex stands for.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    static readonly Lazy<RegexSplitPreTokenizer> Gpt2 =
        new(() => new RegexSplitPreTokenizer(new CodePointRegex(Gpt2Pattern), SplitBehavior.Isolated, invert: false));

    readonly bool _addPrefixSpace;
    readonly bool _useRegex;

    public ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex)
    {
        _addPrefixSpace = addPrefixSpace;
        _useRegex = useRegex;
    }

    /// <inheritdoc />
    public override void Split(string piece, List<string> output)
    {
        if (_addPrefixSpace && piece.Length > 0 && piece[0] != ' ')
            piece = " " + piece;
        if (_useRegex)
            Gpt2.Value.Split(piece, output);
        else if (piece.Length > 0)
            output.Add(piece);
    }
}
