using System.Diagnostics;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Generation;

/// <summary>
/// Prefill then decode with a KV cache: the prompt runs once (in chunks), then one token per step, each
/// sampled from the last position's logits. Text streams out as it completes (never half a UTF-8
/// character), stop strings are held back until they can be ruled out, and the cache can be kept between
/// calls so a chat only runs each turn's new tokens.
/// </summary>
public sealed class TextGenerator : IDisposable
{
    readonly CausalLanguageModel _model;
    readonly HfTokenizer? _tokenizer;
    readonly float[] _logits;
    KvCache? _cache;
    readonly List<int> _cached = [];

    /// <summary>A generator over <paramref name="model"/>; without a tokenizer it works on ids only (no text, no stop strings).</summary>
    public TextGenerator(CausalLanguageModel model, HfTokenizer? tokenizer, int contextLength)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _tokenizer = tokenizer;
        ContextLength = contextLength;
        _cache = model.CreateCache(contextLength);
        _logits = new float[model.Shape.Vocab];
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

        var eos = new HashSet<int>(options.ExtraEosIds);
        if (_tokenizer != null)
            foreach (int id in _tokenizer.EosIds)
                eos.Add(id);

        // Reuse the cached prefix.
        int reuse = 0;
        while (reuse < _cached.Count && reuse < promptIds.Count - 1 && _cached[reuse] == promptIds[reuse])
            reuse++;
        if (reuse < _cached.Count)
        {
            cache.Length = reuse;
            _cached.RemoveRange(reuse, _cached.Count - reuse);
        }
        var newPrompt = promptIds.Skip(reuse).ToArray();

        var sampler = new Sampler(options.Sampling);
        var seen = new List<int>(promptIds);
        var generated = new List<int>();
        var text = new StreamingText(_tokenizer, options.StopStrings);
        var finish = FinishReason.Length;

        var clock = Stopwatch.StartNew();
        _model.Forward(newPrompt, cache, _logits);
        CheckLogits(cache, reuse, promptIds.Count - 1, generatedIndex: 0);
        _cached.AddRange(newPrompt);
        var prefill = clock.Elapsed;
        clock.Restart();

        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                finish = FinishReason.Cancelled;
                break;
            }
            int next = sampler.Sample(_logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(seen));
            if (options.StopAtEos && eos.Contains(next))
            {
                finish = FinishReason.EndOfSequence;
                break;
            }
            generated.Add(next);
            seen.Add(next);
            var (piece, stopped) = text.Append(next);
            onToken?.Invoke(new GeneratedToken(next, piece));
            if (stopped)
            {
                finish = FinishReason.StopString;
                break;
            }
            if (step == options.MaxNewTokens - 1)
                break;
            if (cache.Length >= cache.Capacity)
            {
                finish = FinishReason.ContextFull;
                break;
            }
            int position = cache.Length;
            _model.Forward([next], cache, _logits);
            CheckLogits(cache, position, position, generated.Count);
            _cached.Add(next);
        }
        if (finish != FinishReason.StopString)
        {
            string rest = text.Flush();
            if (rest.Length > 0)
                onToken?.Invoke(new GeneratedToken(-1, rest));
        }
        return new GenerationResult(promptIds.ToArray(), generated, text.Text, finish, prefill, clock.Elapsed);
    }

    /// <summary>
    /// Refuses logits that hold NaN or ±Inf (<see cref="NonFiniteLogitsException"/>) before anything is sampled
    /// from them; the step's positions are dropped from the cache (back to <paramref name="cachedBefore"/>) so a
    /// later call does not reuse keys and values computed with them.
    /// </summary>
    void CheckLogits(KvCache cache, int cachedBefore, int position, int generatedIndex)
    {
        if (NonFiniteLogitsException.Check(_logits, position, generatedIndex) is { } error)
        {
            cache.Length = cachedBefore;
            throw error;
        }
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _cache = null;
    }

    /// <summary>Turns ids into text pieces, holding back any tail that could still become a stop string.</summary>
    sealed class StreamingText(HfTokenizer? tokenizer, IReadOnlyList<string> stopStrings)
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
}
