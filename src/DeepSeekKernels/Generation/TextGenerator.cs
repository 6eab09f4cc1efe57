using System.Diagnostics;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Generation;

/// <summary>
/// Prefill then decode with a KV cache, as one request on a <see cref="BatchScheduler"/>: the prompt runs once (in
/// chunks), then one token per step, each sampled from the last position's logits. Text streams out as it completes (never half a UTF-8
/// character), stop strings are held back until they can be ruled out, and the cache can be kept between
/// calls so a chat only runs each turn's new tokens.
/// </summary>
public sealed class TextGenerator : IDisposable
{
    readonly CausalLanguageModel _model;
    readonly HfTokenizer? _tokenizer;
    KvCache? _cache;
    readonly List<int> _cached = [];

    /// <summary>
    /// A generator over <paramref name="model"/> with a cache of <paramref name="contextLength"/> positions of
    /// <paramref name="kvType"/> (f32, the exact path, or bf16; default: the model's activation type); without a tokenizer it works on ids only (no text, no stop strings).
    /// </summary>
    public TextGenerator(CausalLanguageModel model, HfTokenizer? tokenizer, int contextLength, Numerics.ElementType? kvType = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _tokenizer = tokenizer;
        ContextLength = contextLength;
        _cache = model.CreateCache(contextLength, kvType);
    }

    /// <summary>Positions of context the generator's cache holds.</summary>
    public int ContextLength { get; }

    /// <summary>
    /// Generates a continuation of <paramref name="promptIds"/>. If the ids already in the cache (from the
    /// previous call) are a prefix of the prompt, only the rest is run.
    /// </summary>
    /// <exception cref="NonFiniteLogitsException">The logits of the prefill or of a decode step hold NaN or ±Inf (checked
    /// once per step, before sampling); the tokens generated before it were streamed.</exception>
    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options, Action<GeneratedToken>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (promptIds.Count == 0)
            throw new ArgumentException("The prompt is empty: there is nothing to continue.", nameof(promptIds));
        if (promptIds.Count >= ContextLength)
            throw new ArgumentException($"The prompt has {promptIds.Count} tokens; the context holds {ContextLength} " +
                "(a prompt must leave room for at least one generated token).", nameof(promptIds));
        if (options.StopStrings.Count > 0 && _tokenizer is null)
            throw new ArgumentException("Stop strings need a tokenizer.", nameof(options));
        var cache = _cache ?? throw new ObjectDisposedException(nameof(TextGenerator));

        // Reuse the cached prefix.
        int reuse = 0;
        while (reuse < _cached.Count && reuse < promptIds.Count - 1 && _cached[reuse] == promptIds[reuse])
            reuse++;
        if (reuse < _cached.Count)
        {
            cache.Length = reuse;
            _cached.RemoveRange(reuse, _cached.Count - reuse);
        }

        // One request on the batch scheduler, continuing this generator's sequence.
        var scheduler = new BatchScheduler(_model, _tokenizer, cache.Pool);
        var generated = new List<int>();
        GenerationResult? result = null;
        scheduler.Add(promptIds, options, token =>
        {
            if (token.Id >= 0)
                generated.Add(token.Id);
            onToken?.Invoke(token);
        }, r => result = r, cache.Sequence);
        try
        {
            scheduler.RunToCompletion(cancellationToken);
        }
        finally
        {
            // the ids whose keys and values the cache now holds, for the next call's prefix reuse
            var all = promptIds.Concat(generated).Take(cache.Length).ToList();
            _cached.Clear();
            _cached.AddRange(all);
        }
        return result!;
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _cache = null;
    }
}
