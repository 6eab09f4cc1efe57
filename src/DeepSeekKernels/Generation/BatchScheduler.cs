using System.Diagnostics;
using DeepSeekKernels.Caching;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Generation;

/// <summary>
/// Continuous batching (as vLLM and SGLang schedule): requests are added at any time, admitted when the page pool can
/// hold their whole context, and run together, one forward step at a time: every running request contributes either
/// one decode token or a chunk of its prompt (chunked prefill), up to the model's tokens per step; a request leaves as
/// soon as it finishes and its pages go back to the pool. Each request has its own sampling options, stop conditions
/// and token stream. A request's logits do not depend on the other requests in its steps (batch invariance), so it
/// generates exactly what it would alone.
/// </summary>
public sealed class BatchScheduler
{
    readonly CausalLanguageModel _model;
    readonly HfTokenizer? _tokenizer;
    readonly PagedKvCache _cache;
    readonly List<Request> _waiting = [], _running = [];
    readonly float[] _logits;
    int _nextId;

    /// <summary>A scheduler over <paramref name="model"/> whose requests share <paramref name="cache"/> (made by the same model).</summary>
    public BatchScheduler(CausalLanguageModel model, HfTokenizer? tokenizer, PagedKvCache cache)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(cache);
        if (!ReferenceEquals(cache.Owner, model))
            throw new ArgumentException("The cache was created by another model.", nameof(cache));
        _model = model;
        _tokenizer = tokenizer;
        _cache = cache;
        _logits = new float[(long)cache.Layout.MaxBatch * model.Shape.Vocab];
    }

    /// <summary>Whether any request is waiting or running.</summary>
    public bool HasWork => _waiting.Count > 0 || _running.Count > 0;

    /// <summary>Requests running now (admitted, not finished).</summary>
    public int Running => _running.Count;

    /// <summary>Forward steps run so far.</summary>
    public int Steps { get; private set; }

    /// <summary>
    /// Queues a request; returns its id. <paramref name="onToken"/> streams its tokens (text pieces never split a
    /// UTF-8 character; stop strings are held back until ruled out); <paramref name="onFinished"/> receives its result.
    /// </summary>
    /// <param name="promptIds">The prompt (at least one id, each in the vocabulary).</param>
    /// <param name="options">Sampling, limits and stop conditions of this request.</param>
    /// <param name="onToken">Called once per generated token, and once more with the held-back text at the end (id -1).</param>
    /// <param name="onFinished">Called when the request finishes.</param>
    /// <param name="sequence">An existing sequence of the cache to continue (its cached positions are kept and only the
    /// prompt's remaining ids run); null to start a new one, which is freed when the request finishes.</param>
    /// <exception cref="ArgumentException">The prompt is empty, holds an id outside the vocabulary, or cannot fit the context
    /// with at least one generated token; stop strings without a tokenizer.</exception>
    public int Add(IReadOnlyList<int> promptIds, GenerationOptions options, Action<GeneratedToken>? onToken = null,
        Action<GenerationResult>? onFinished = null, int? sequence = null)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (promptIds.Count == 0)
            throw new ArgumentException("The prompt is empty: there is nothing to continue.", nameof(promptIds));
        int context = _cache.Layout.MaxSequenceLength;
        if (promptIds.Count >= context)
            throw new ArgumentException($"The prompt has {promptIds.Count} tokens; the context holds {context} " +
                "(a prompt must leave room for at least one generated token).", nameof(promptIds));
        for (int i = 0; i < promptIds.Count; i++)
            if ((uint)promptIds[i] >= (uint)_model.Shape.Vocab)
                throw new ArgumentOutOfRangeException(nameof(promptIds), promptIds[i], $"Token id {promptIds[i]} at index {i} is outside the vocabulary of {_model.Shape.Vocab}.");
        if (options.StopStrings.Count > 0 && _tokenizer is null)
            throw new ArgumentException("Stop strings need a tokenizer.", nameof(options));
        int cached = sequence is int s ? _cache.Length(s) : 0;
        if (cached >= promptIds.Count)
            throw new ArgumentException($"Sequence {sequence} already holds {cached} positions; the prompt must extend it.", nameof(sequence));
        var eos = new HashSet<int>(options.StopAtEos ? options.ExtraEosIds : []);
        if (_tokenizer != null && options.StopAtEos)
            eos.UnionWith(_tokenizer.EosIds);
        var request = new Request(_nextId++, promptIds.ToArray(), options, new Sampler(options.Sampling), eos,
            new StreamingText(_tokenizer, options.StopStrings), onToken, onFinished, sequence, cached);
        _waiting.Add(request);
        return request.Id;
    }

    /// <summary>
    /// Stops request <paramref name="id"/> (waiting or running) between steps: its held-back text is flushed to its token
    /// stream, its pages go back to the pool, and it finishes with <see cref="FinishReason.Cancelled"/> and what it generated
    /// so far. False when no such request is waiting or running (unknown, or already finished).
    /// </summary>
    public bool Cancel(int id)
    {
        var r = _running.Find(r => r.Id == id) ?? _waiting.Find(r => r.Id == id);
        if (r is null)
            return false;
        Finish(r, FinishReason.Cancelled);
        return true;
    }

    /// <summary>Runs steps until every request has finished.</summary>
    public void RunToCompletion(CancellationToken cancellationToken = default)
    {
        while (HasWork)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                foreach (var r in _running.Concat(_waiting).ToArray())
                    Finish(r, FinishReason.Cancelled);
                return;
            }
            Step();
        }
    }

    /// <summary>
    /// Admits what fits, then runs one forward step over the running requests: decode tokens first, then prompt chunks
    /// in arrival order, up to the model's tokens per step and the cache's sequences per step.
    /// </summary>
    /// <exception cref="InvalidOperationException">A waiting request can never be admitted: the pool is empty and still too small for it.</exception>
    /// <exception cref="NonFiniteLogitsException">A request's logits held NaN or ±Inf; every running request is stopped.</exception>
    public void Step()
    {
        Admit();
        if (_running.Count == 0)
            return;
        int budget = _model.ChunkTokens, maxBatch = _cache.Layout.MaxBatch;
        var step = new List<(Request Request, int Count)>();
        foreach (var r in _running.Where(r => r.Decoding))
        {
            if (step.Count == maxBatch || budget == 0)
                break;
            step.Add((r, 1));
            budget--;
        }
        foreach (var r in _running.Where(r => !r.Decoding))
        {
            if (step.Count == maxBatch || budget == 0)
                break;
            int count = Math.Min(budget, r.Prompt.Length - r.Fed);
            step.Add((r, count));
            budget -= count;
        }
        var sequences = new StepSequence[step.Count];
        var tokens = new List<int>();
        for (int b = 0; b < step.Count; b++)
        {
            var (r, count) = step[b];
            sequences[b] = new StepSequence(r.Sequence, count);
            r.LengthBefore = _cache.Length(r.Sequence);
            if (r.Decoding)
                tokens.Add(r.Next);
            else
                tokens.AddRange(r.Prompt.AsSpan(r.Fed, count));
        }
        _model.Step(_cache, sequences, tokens.ToArray(), _logits);
        Steps++;

        int vocab = _model.Shape.Vocab;
        for (int b = 0; b < step.Count; b++)
        {
            var (r, count) = step[b];
            if (!r.Decoding)
            {
                r.Fed += count;
                if (r.Fed < r.Prompt.Length)
                    continue; // a prompt chunk that is not the last: nothing to sample yet
                r.PrefillTime = r.Clock.Elapsed;
                r.Clock.Restart();
                r.Decoding = true;
            }
            var logits = _logits.AsSpan(b * vocab, vocab);
            int position = _cache.Length(r.Sequence) - 1;
            if (NonFiniteLogitsException.Check(logits, position, r.Generated.Count) is { } error)
            {
                // nothing is sampled from these logits; the positions they came from are dropped, so a continued sequence
                // never reuses keys and values computed with them (a prompt's from where the request started)
                if (r.Existing is int existing)
                    _cache.Truncate(existing, r.Generated.Count == 0 ? r.Cached : r.LengthBefore);
                foreach (var other in _running.ToArray())
                    Release(other);
                throw error;
            }
            Sample(r, logits);
        }
    }

    void Admit()
    {
        while (_waiting.Count > 0)
        {
            var r = _waiting[0];
            if (_running.Count >= _cache.Layout.MaxBatch)
                return;
            if (r.Sequence < 0)
                r.Sequence = r.Existing ?? _cache.AddSequence();
            int context = _cache.Layout.MaxSequenceLength;
            int need = (int)Math.Min(context, (long)r.Prompt.Length + r.Options.MaxNewTokens);
            if (!_cache.Blocks.TryReserve(r.Sequence, need))
            {
                if (_running.Count == 0)
                    throw new InvalidOperationException(
                        $"Request {r.Id} needs {_cache.Blocks.PagesNeeded(need)} pages for {need} positions; the pool has {_cache.Blocks.PageCount} in all.");
                return; // wait for running requests to free pages
            }
            _waiting.RemoveAt(0);
            r.Fed = r.Cached;
            r.Clock.Start();
            _running.Add(r);
        }
    }

    /// <summary>The generation rules of one token, as <see cref="TextGenerator"/> has them.</summary>
    void Sample(Request r, ReadOnlySpan<float> logits)
    {
        int next = r.Sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(r.Seen));
        if (r.Eos.Contains(next))
        {
            Finish(r, FinishReason.EndOfSequence);
            return;
        }
        r.Generated.Add(next);
        r.Seen.Add(next);
        var (piece, stopped) = r.Text.Append(next);
        r.OnToken?.Invoke(new GeneratedToken(next, piece));
        if (stopped)
            Finish(r, FinishReason.StopString);
        else if (r.Generated.Count == r.Options.MaxNewTokens)
            Finish(r, FinishReason.Length);
        else if (_cache.Length(r.Sequence) >= _cache.Layout.MaxSequenceLength)
            Finish(r, FinishReason.ContextFull);
        else
            r.Next = next;
    }

    void Finish(Request r, FinishReason reason)
    {
        if (reason != FinishReason.StopString)
        {
            string rest = r.Text.Flush();
            if (rest.Length > 0)
                r.OnToken?.Invoke(new GeneratedToken(-1, rest));
        }
        var decode = r.Decoding ? r.Clock.Elapsed : TimeSpan.Zero;
        Release(r);
        _waiting.Remove(r);
        r.OnFinished?.Invoke(new GenerationResult(r.Prompt, r.Generated, r.Text.Text, reason, r.PrefillTime, decode));
    }

    /// <summary>Takes a request out of the running set; a sequence the scheduler started is freed.</summary>
    void Release(Request r)
    {
        _running.Remove(r);
        if (r.Existing is null && r.Sequence >= 0)
        {
            _cache.Free(r.Sequence);
            r.Sequence = -1;
        }
    }

    sealed class Request(int id, int[] prompt, GenerationOptions options, Sampler sampler, HashSet<int> eos, StreamingText text,
        Action<GeneratedToken>? onToken, Action<GenerationResult>? onFinished, int? existing, int cached)
    {
        public int Id { get; } = id;
        public int[] Prompt { get; } = prompt;
        public GenerationOptions Options { get; } = options;
        public Sampler Sampler { get; } = sampler;
        public HashSet<int> Eos { get; } = eos;
        public StreamingText Text { get; } = text;
        public Action<GeneratedToken>? OnToken { get; } = onToken;
        public Action<GenerationResult>? OnFinished { get; } = onFinished;
        public int? Existing { get; } = existing;
        public int Cached { get; } = cached;
        public int Sequence { get; set; } = -1;
        public int Fed { get; set; }
        public int LengthBefore { get; set; }
        public bool Decoding { get; set; }
        public int Next { get; set; }
        public List<int> Seen { get; } = [.. prompt];
        public List<int> Generated { get; } = [];
        public Stopwatch Clock { get; } = new();
        public TimeSpan PrefillTime { get; set; }
    }
}
