using Microsoft.ML.Tokenizers;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// tokenizer.json's "model" of type "BPE": the merges themselves are Microsoft.ML.Tokenizers' BpeTokenizer
/// (which applies them exactly as Hugging Face does, one pre-tokenised word at a time); this adds
/// Hugging Face's ignore_merges (Llama-3: a word that is itself in the vocabulary is one token).
/// </summary>
internal sealed class BpeModel
{
    readonly BpeTokenizer _bpe;
    readonly bool _ignoreMerges;

    /// <summary>A model over <paramref name="vocabulary"/> and <paramref name="merges"/> ("left right", by rank).</summary>
    public BpeModel(Dictionary<string, int> vocabulary, IReadOnlyList<string> merges, bool byteLevel, bool ignoreMerges, string? unknownToken, bool fuseUnknown)
    {
        Vocabulary = vocabulary;
        ByteLevel = byteLevel;
        _ignoreMerges = ignoreMerges;
        _bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = byteLevel,
            UnknownToken = unknownToken,
            FuseUnknownTokens = fuseUnknown,
        });
    }

    /// <summary>Token string to id (byte-level strings when <see cref="ByteLevel"/>).</summary>
    public Dictionary<string, int> Vocabulary { get; }

    /// <summary>Whether words are encoded as the byte-level characters of their UTF-8 bytes.</summary>
    public bool ByteLevel { get; }

    /// <summary>Appends the ids of one pre-tokenised word.</summary>
    public void Encode(string word, List<int> ids)
    {
        if (_ignoreMerges && Vocabulary.TryGetValue(ByteLevel ? ByteLevelAlphabet.Encode(word) : word, out int id))
        {
            ids.Add(id);
            return;
        }
        ids.AddRange(_bpe.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false));
    }
}
