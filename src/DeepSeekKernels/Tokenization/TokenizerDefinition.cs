namespace DeepSeekKernels.Tokenization;

/// <summary>What <see cref="TokenizerFileReader"/> read from a tokenizer folder, ready to build an <see cref="HfTokenizer"/>.</summary>
internal sealed class TokenizerDefinition
{
    /// <summary>Full path of tokenizer.json.</summary>
    public required string TokenizerPath { get; init; }

    /// <summary>The BPE model.</summary>
    public required BpeModel Model { get; init; }

    /// <summary>The normalizer, or null.</summary>
    public TextNormalizer? Normalizer { get; init; }

    /// <summary>The pre-tokenizer, or null (each piece of text is one word).</summary>
    public PreTokenizerStep? PreTokenizer { get; init; }

    /// <summary>The added tokens, with the ids Hugging Face gives them, in tokenizer.json's order.</summary>
    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }

    /// <summary>The added tokens in the order Hugging Face matches them (special ones first).</summary>
    public required IReadOnlyList<AddedToken> MatchOrder { get; init; }

    /// <summary>Ids put before the text when special tokens are added (BOS).</summary>
    public required int[] Prefix { get; init; }

    /// <summary>Ids put after the text when special tokens are added (EOS).</summary>
    public required int[] Suffix { get; init; }

    /// <summary>The beginning-of-sequence token and its id, when known.</summary>
    public (string Token, int Id)? Bos { get; init; }

    /// <summary>The end-of-sequence token and its id, when known.</summary>
    public (string Token, int Id)? Eos { get; init; }

    /// <summary>Every id that ends generation: <see cref="Eos"/>'s and generation_config.json's eos_token_id.</summary>
    public required int[] EosIds { get; init; }
}
