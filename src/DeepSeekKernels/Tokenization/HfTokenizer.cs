using System.Globalization;
using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// A Hugging Face byte-level BPE tokenizer (DeepSeek-V3/R1, Qwen2, Llama-3 and the like) read from a model folder,
/// giving the same ids as Hugging Face's own tokenizers library.
/// </summary>
/// <remarks>
/// <para>
/// Encoding runs Hugging Face's pipeline: added tokens are split off first (leftmost-longest, honouring special,
/// lstrip, rstrip, single_word and normalized), the rest is normalised (NFC/NFD), pre-tokenised (Split regexes,
/// ByteLevel, Digits, Punctuation) and each word is encoded by the BPE merges (Microsoft.ML.Tokenizers'
/// BpeTokenizer); then BOS/EOS are added as transformers does. Split regexes match whole code points as
/// Hugging Face's engine does, also outside the BMP (emoji, CJK Extension B, mathematical letters): see
/// <see cref="CodePointRegex"/>. Unpaired surrogates in the input are read as U+FFFD, as they are when a .NET
/// or JavaScript string reaches Hugging Face's Rust code.
/// </para>
/// <para>
/// Decoding joins the tokens' bytes (byte-level tokens as the bytes they stand for, added tokens as their text)
/// and reads them as UTF-8 with each invalid sequence as U+FFFD, as Hugging Face's ByteLevel decoder does.
/// transformers' optional clean_up_tokenization_spaces is not applied.
/// </para>
/// <para>An instance does not change once read: Encode and Decode may run on several threads at once.</para>
/// </remarks>
public sealed class HfTokenizer
{
    readonly BpeModel _model;
    readonly TextNormalizer? _normalizer;
    readonly PreTokenizerStep? _preTokenizer;
    readonly AddedTokenMatcher _rawMatcher;
    readonly AddedTokenMatcher _normalizedMatcher;
    readonly Dictionary<string, int> _addedIds;
    readonly int[] _prefix;
    readonly int[] _suffix;

    // Per id: the token's text, the bytes it decodes to (in _bytes at _byteStart[id], _byteLength[id] long; -1 for
    // an id no token has) and whether it is a special added token.
    readonly string?[] _tokens;
    readonly byte[] _bytes;
    readonly int[] _byteStart;
    readonly int[] _byteLength;
    readonly bool[] _special;

    HfTokenizer(TokenizerDefinition definition)
    {
        _model = definition.Model;
        _normalizer = definition.Normalizer;
        _preTokenizer = definition.PreTokenizer;
        _prefix = definition.Prefix;
        _suffix = definition.Suffix;
        TokenizerPath = definition.TokenizerPath;
        BosToken = definition.Bos?.Token;
        BosId = definition.Bos?.Id;
        EosToken = definition.Eos?.Token;
        EosId = definition.Eos?.Id;
        EosIds = definition.EosIds;

        _addedIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in definition.AddedTokens)
            _addedIds[token.Content] = token.Id;
        _rawMatcher = new AddedTokenMatcher(definition.MatchOrder.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(definition.MatchOrder.Where(t => t.Normalized)
            .Select(t => (_normalizer?.Normalize(t.Content) ?? t.Content, t)));

        int maxId = _model.Vocabulary.Values.Max();
        foreach (var token in definition.AddedTokens)
            maxId = Math.Max(maxId, token.Id);
        VocabSize = maxId + 1;

        _tokens = new string?[VocabSize];
        _special = new bool[VocabSize];
        foreach (var (token, id) in _model.Vocabulary)
            _tokens[id] = token;
        foreach (var token in definition.AddedTokens)
        {
            _tokens[token.Id] = token.Content;
            _special[token.Id] = token.Special;
        }

        _byteStart = new int[VocabSize];
        _byteLength = new int[VocabSize];
        var bytes = new List<byte>(VocabSize * 8);
        for (int id = 0; id < VocabSize; id++)
        {
            if (_tokens[id] is not { } token)
            {
                _byteLength[id] = -1;
                continue;
            }
            var tokenBytes = ByteLevelAlphabet.DecodeToken(token);
            _byteStart[id] = bytes.Count;
            _byteLength[id] = tokenBytes.Length;
            bytes.AddRange(tokenBytes);
        }
        _bytes = bytes.ToArray();
    }

    /// <summary>
    /// Reads <c>tokenizer.json</c> from <paramref name="folder"/> and, when present, <c>tokenizer_config.json</c>
    /// (bos_token and eos_token, as strings or {"content": ...} objects; add_bos_token; add_eos_token).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder has no tokenizer.json.</exception>
    /// <exception cref="TokenizerException">A file is malformed or uses a model, normalizer, pre-tokenizer,
    /// post-processor or decoder type this class does not implement; the message names the file, field and value.</exception>
    public static HfTokenizer FromFolder(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return new HfTokenizer(TokenizerFileReader.Read(folder));
    }

    /// <summary>Full path of the tokenizer.json this tokenizer was read from.</summary>
    public string TokenizerPath { get; }

    /// <summary>
    /// Number of ids: one more than the largest id of the model's vocabulary and the added tokens (Hugging Face's
    /// <c>get_vocab_size(with_added_tokens=True)</c> when no id is skipped). The model's embedding table may be larger.
    /// </summary>
    public int VocabSize { get; }

    /// <summary>The beginning-of-sequence token (tokenizer_config.json's bos_token, else the one token a
    /// TemplateProcessing puts first), or null.</summary>
    public string? BosToken { get; }

    /// <summary>The id of <see cref="BosToken"/>, or null.</summary>
    public int? BosId { get; }

    /// <summary>The end-of-sequence token (tokenizer_config.json's eos_token), or null.</summary>
    public string? EosToken { get; }

    /// <summary>The id of <see cref="EosToken"/>, or null.</summary>
    public int? EosId { get; }

    /// <summary>
    /// Every id that ends generation: <see cref="EosId"/> (when known) and the model folder's generation_config.json
    /// eos_token_id (a number or a list; Llama-3 lists its end-of-turn token there too), without repeats.
    /// </summary>
    public IReadOnlyList<int> EosIds { get; }

    /// <summary>
    /// Encodes <paramref name="text"/>. With <paramref name="addSpecialTokens"/>, adds what transformers'
    /// <c>encode(text)</c> adds: BOS/EOS per tokenizer_config.json's add_bos_token / add_eos_token when it sets
    /// them (DeepSeek: BOS), else per tokenizer.json's TemplateProcessing (Llama-3: BOS), else nothing (Qwen2).
    /// Added tokens written in the text (e.g. "&lt;｜User｜&gt;") are encoded as their ids either way.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecialTokens)
            ids.AddRange(_prefix);
        var words = new List<string>();
        foreach (var piece in SplitAddedTokens(ReplaceLoneSurrogates(text)))
        {
            if (piece.IsToken)
            {
                ids.Add(piece.TokenId);
                continue;
            }
            words.Clear();
            PreTokenize(piece.Text!, words);
            foreach (var word in words)
                _model.Encode(word, ids);
        }
        if (addSpecialTokens)
            ids.AddRange(_suffix);
        return ids.ToArray();
    }

    /// <summary>
    /// The text of <paramref name="ids"/>: the tokens' bytes read as UTF-8 (an invalid or unfinished sequence as
    /// U+FFFD), added tokens as their text; with <paramref name="skipSpecialTokens"/>, special added tokens
    /// (BOS, EOS, ...) are left out.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative, not below <see cref="VocabSize"/>, or no token has it.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        int total = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            CheckId(ids[i], i, "Decode", nameof(ids));
            if (!(skipSpecialTokens && _special[ids[i]]))
                total += _byteLength[ids[i]];
        }
        var bytes = new byte[total];
        int at = 0;
        foreach (int id in ids)
        {
            if (skipSpecialTokens && _special[id])
                continue;
            _bytes.AsSpan(_byteStart[id], _byteLength[id]).CopyTo(bytes.AsSpan(at));
            at += _byteLength[id];
        }
        var text = new StringBuilder(total);
        Utf8Lossy.Decode(bytes, text, final: true);
        return text.ToString();
    }

    /// <summary>
    /// A decoder for ids that arrive one at a time (generation): each <see cref="StreamingDecoder.Append"/> returns
    /// the text completed by that id, holding back bytes of an unfinished UTF-8 character; all the pieces and
    /// <see cref="StreamingDecoder.Flush"/> together equal <see cref="Decode"/> of all the ids.
    /// </summary>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>The id of <paramref name="token"/> (an added token's text, or a vocabulary entry in its byte-level
    /// form such as "Ġthe"), or null.</summary>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_addedIds.TryGetValue(token, out int id))
            return id;
        return _model.Vocabulary.TryGetValue(token, out id) ? id : null;
    }

    /// <summary>The token with id <paramref name="id"/>: an added token's text or a vocabulary entry (byte-level form).</summary>
    /// <exception cref="ArgumentOutOfRangeException">No token has this id.</exception>
    public string IdToToken(int id)
    {
        CheckId(id, -1, "IdToToken", nameof(id));
        return _tokens[id]!;
    }

    /// <summary>Whether <paramref name="id"/> is a special added token (skipped by skipSpecialTokens).</summary>
    internal bool IsSpecial(int id) => _special[id];

    /// <summary>The bytes token <paramref name="id"/> decodes to (after <see cref="CheckId"/>).</summary>
    internal ReadOnlySpan<byte> TokenBytes(int id) => _bytes.AsSpan(_byteStart[id], _byteLength[id]);

    /// <summary>Throws unless <paramref name="id"/> names a token; <paramref name="position"/> (when &gt;= 0) says where
    /// in <paramref name="parameter"/> it is.</summary>
    internal void CheckId(int id, int position, string operation, string parameter)
    {
        if ((uint)id >= (uint)VocabSize || _byteLength[id] < 0)
        {
            string where = position >= 0 ? string.Create(CultureInfo.InvariantCulture, $" at position {position}") : "";
            string why = (uint)id >= (uint)VocabSize
                ? string.Create(CultureInfo.InvariantCulture, $"outside 0..{VocabSize - 1}")
                : "not assigned to any token";
            throw new ArgumentOutOfRangeException(parameter, id,
                string.Create(CultureInfo.InvariantCulture, $"HfTokenizer.{operation}: token id {id}{where} is {why} ({TokenizerPath})."));
        }
    }

    /// <summary>The pre-tokenizer alone on <paramref name="text"/> (no added tokens, no normalizer), as byte-level
    /// strings when the model is byte-level: what Hugging Face's <c>pre_tokenize_str</c> gives.</summary>
    internal List<string> PreTokenizeForTest(string text)
    {
        var words = new List<string>();
        PreTokenize(text, words);
        return _model.ByteLevel ? words.Select(ByteLevelAlphabet.Encode).ToList() : words;
    }

    /// <summary>The normalizer alone on <paramref name="text"/> (the text itself when there is none).</summary>
    internal string NormalizeForTest(string text) => _normalizer?.Normalize(text) ?? text;

    void PreTokenize(string text, List<string> words)
    {
        if (_preTokenizer is null)
        {
            if (text.Length > 0)
                words.Add(text);
            return;
        }
        _preTokenizer.Split(text, words);
    }

    /// <summary>Hugging Face's AddedVocabulary.extract_and_normalize: non-normalized added tokens on the raw text,
    /// then normalisation of the pieces between them, then normalized added tokens on those.</summary>
    List<TextPiece> SplitAddedTokens(string text)
    {
        var raw = new List<TextPiece>();
        _rawMatcher.Split(text, raw);
        var pieces = new List<TextPiece>(raw.Count);
        foreach (var piece in raw)
        {
            if (piece.IsToken)
            {
                pieces.Add(piece);
                continue;
            }
            string normalized = _normalizer?.Normalize(piece.Text!) ?? piece.Text!;
            _normalizedMatcher.Split(normalized, pieces);
        }
        return pieces;
    }

    static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0)
            return text;
        char[]? copy = null;
        for (int i = first; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            if (char.IsSurrogate(text[i]))
            {
                copy ??= text.ToCharArray();
                copy[i] = '\uFFFD';
            }
        }
        return copy is null ? text : new string(copy);
    }
}
