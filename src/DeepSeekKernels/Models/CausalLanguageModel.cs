using DeepSeekKernels.Caching;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>One sequence's share of a <see cref="CausalLanguageModel.Step"/>: its id in the cache and how many tokens it runs.</summary>
public readonly record struct StepSequence(int Sequence, int Tokens);

/// <summary>
/// A decoder-only transformer loaded from a checkpoint: embeddings, layers of (RMSNorm, attention, RMSNorm,
/// MLP) with the residual adds fused into the norms, final norm, lm_head. Every computation goes through
/// <see cref="Ops"/>, so the backend is a choice made when loading, not in this code. Prompts longer than
/// the workspace are run in chunks (chunked prefill); keys and values accumulate in a paged cache (<see cref="PagedKvCache"/>),
/// and one step can run many sequences (<see cref="Step"/>).
/// </summary>
public sealed class CausalLanguageModel : IDisposable
{
    readonly WeightMatrix _embed, _lmHead;
    readonly DeviceBuffer<float>[] _inputNorms, _postNorms;
    readonly DeviceBuffer<float> _finalNorm;
    readonly IAttentionBlock[] _attention;
    readonly IMlpBlock[] _mlp;
    readonly Workspace _workspace;
    readonly List<IDisposable> _owned;
    WeightMatrix? _normedTable;
    KvBatchEntry[] _entries = new KvBatchEntry[1]; // a step's entries, kept between steps (a decode step allocates nothing)
    bool _decodeGraphs;
    PagedKvCache? _graphCache;                      // the cache the captured graphs read (its buffers are in them)
    readonly Dictionary<int, DeviceGraph> _graphs = []; // decode step of `batch` sequences -> its captured graph
    readonly HashSet<int> _ranOnce = [];             // batch sizes whose decode step ran once directly (kernels loaded)

    internal CausalLanguageModel(ModelShape shape, Ops ops, DeviceRuntime runtime, WeightMatrix embed, WeightMatrix lmHead,
        DeviceBuffer<float>[] inputNorms, DeviceBuffer<float>[] postNorms, DeviceBuffer<float> finalNorm,
        IAttentionBlock[] attention, IMlpBlock[] mlp, int chunkTokens, RopeTable rope, List<IDisposable> owned, long weightBytes,
        ElementType activations = ElementType.F32, bool fp8Activations = false)
    {
        Shape = shape;
        Ops = ops;
        Runtime = runtime;
        (_embed, _lmHead, _inputNorms, _postNorms, _finalNorm, _attention, _mlp, _owned) =
            (embed, lmHead, inputNorms, postNorms, finalNorm, attention, mlp, owned);
        WeightBytes = weightBytes;
        ContextLimit = rope.MaxPositions;
        RopeTableBytes = (rope.Cos.Length + rope.Sin.Length) * sizeof(float);
        _workspace = new Workspace(runtime, shape, chunkTokens, activations, fp8Activations);
    }

    /// <summary>The activation type: f32 (the exact path) or bf16, with f32 accumulation in every op either way.</summary>
    public ElementType Activations => _workspace.Activations;

    /// <summary>
    /// Whether forward passes of at least <see cref="Projection.Fp8MinRows"/> tokens (prefill) run their FP8-block linear
    /// layers as W8A8 (DeepSeek-V3's and DeepGEMM's recipe: the activations quantised per token and 128 features to e4m3,
    /// <see cref="Ops.LinearW8A8"/>) where the backend runs it; decode steps and other weights keep <see cref="Ops.Linear"/>.
    /// Chosen at load (<see cref="ModelLoader.Load(string, Ops, int, long?, int?, Quantization.WeightQuantization, ElementType, bool, KvCacheRequest?)"/>).
    /// </summary>
    public bool Fp8Activations => _workspace.Fp8Activations;

    /// <summary>Dimensions of the model.</summary>
    public ModelShape Shape { get; }

    /// <summary>The ops every layer runs through.</summary>
    public Ops Ops { get; }

    /// <summary>The device the weights, caches and activations live on.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>Bytes of weights held on the device (quantised weights with their scales and zero points).</summary>
    public long WeightBytes { get; }

    /// <summary>
    /// What the quantisation asked of <see cref="ModelLoader.Load(string, Ops, int, long?, int?, Quantization.WeightQuantization, ElementType, bool, KvCacheRequest?)"/>
    /// did: weight tensors quantised, already FP8, kept dense (<see cref="QuantizationReport.None"/> when none was asked).
    /// </summary>
    public QuantizationReport Quantization { get; internal init; } = QuantizationReport.None;

    /// <summary>
    /// Bytes of <see cref="WeightBytes"/> read in place from the checkpoint's memory mapping (on the CPU: shared page-cache
    /// pages, no private copy); the rest are the model's own buffers.
    /// </summary>
    public long MappedWeightBytes { get; internal init; }

    /// <summary>
    /// Checkpoint bytes the loader copied into the model's own memory and then released from the process's resident set
    /// (they stay in the page cache): copied expert stacks, kv_b_proj, quantised weights, and every weight on a GPU.
    /// </summary>
    public long ReleasedCheckpointBytes { get; internal init; }

    /// <summary>
    /// Whether decode steps (every sequence of the step one token, last-token logits) replay a CUDA graph instead of launching
    /// each kernel: the first decode step of a batch size runs directly (every kernel loaded, every workspace sized), the
    /// second is captured (<see cref="DeviceRuntime.CaptureGraph"/>) and replayed, and later ones replay it, with only the
    /// step's metadata (token ids, positions, slots, block table, lengths) copied into their fixed device buffers first.
    /// Graphs are kept per batch size for one cache (a step on another cache drops them). If a capture fails (an op that
    /// synchronises, such as a fallback to the reference), the model says why in <see cref="DecodeGraphFailure"/> and
    /// launches directly from then on. Off by default.
    /// </summary>
    /// <exception cref="NotSupportedException">Set to true on a runtime without a CUDA GPU.</exception>
    public bool DecodeGraphs
    {
        get => _decodeGraphs;
        set
        {
            if (value && !Runtime.IsCuda)
                throw new NotSupportedException("Decode graphs are CUDA graphs: this model runs on ILGPU's CPU accelerator, not a CUDA GPU.");
            if (value == _decodeGraphs)
                return;
            DropGraphs();
            DecodeGraphFailure = null; // switched on again: try capturing again
            _decodeGraphs = value;
        }
    }

    /// <summary>Decode steps replayed from a captured graph so far.</summary>
    public long DecodeGraphReplays { get; private set; }

    /// <summary>Why capturing a decode step failed (the model then launches directly until <see cref="DecodeGraphs"/> is switched
    /// off and on again), or null.</summary>
    public string? DecodeGraphFailure { get; private set; }

    /// <summary>Bytes of the RoPE cos/sin tables ([<see cref="ContextLimit"/>, rotary dim / 2] float32 each).</summary>
    public long RopeTableBytes { get; }

    /// <summary>Bytes of activation workspace.</summary>
    public long WorkspaceBytes => _workspace.Bytes;

    /// <summary>Bytes the workspace's buffers took from its arena (tests hold it equal to <see cref="WorkspaceBytes"/>).</summary>
    internal long WorkspaceUsedBytes => _workspace.UsedBytes;

    /// <summary>Most positions one forward pass runs; longer inputs are split.</summary>
    public int ChunkTokens => _workspace.Tokens;

    /// <summary>
    /// Positions the model was loaded for (its RoPE tables cover [0, ContextLimit)): the contextLength given to
    /// <see cref="ModelLoader.Load(string, Ops, int, long?, int?, Quantization.WeightQuantization, ElementType, bool, KvCacheRequest?)"/>, else max_position_embeddings.
    /// </summary>
    public int ContextLimit { get; }

    /// <summary>
    /// A cache for one sequence of up to <paramref name="capacity"/> positions (at most <see cref="ContextLimit"/>): a
    /// private page pool with room for exactly that sequence (<see cref="KvCacheLayout.For"/> with one sequence).
    /// </summary>
    /// <param name="capacity">Positions the sequence may reach.</param>
    /// <param name="elementType">f32 (the exact path) or bf16; default: the model's activation type.</param>
    /// <param name="pageSize">Positions per page (16..256; default <see cref="KvCacheLayout.DefaultPageSize"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not in 1..<see cref="ContextLimit"/>.</exception>
    public KvCache CreateCache(int capacity, ElementType? elementType = null, int? pageSize = null)
    {
        CheckContext(capacity, nameof(capacity));
        var pool = CreatePagedCache(CacheLayout(capacity, 1, elementType, pageSize));
        return new KvCache(pool, pool.AddSequence(), capacity);
    }

    /// <summary>
    /// The layout of a page pool for <paramref name="sequences"/> sequences of up to <paramref name="context"/> positions
    /// each, stepped together (as many per step as the workspace has tokens): what <see cref="CreatePagedCache"/> allocates
    /// and `dsk plan` counts.
    /// </summary>
    public KvCacheLayout CacheLayout(int context, int sequences, ElementType? elementType = null, int? pageSize = null)
    {
        CheckContext(context, nameof(context));
        return PlannedCacheLayout(Shape, ChunkTokens, Ops.TakesKernelWorkspaces, context, sequences, elementType ?? Activations, pageSize);
    }

    /// <summary>
    /// <see cref="CacheLayout"/>'s rule, from what is known before the weights load (the loader counts the cache a caller
    /// announces in its fit check with it, so the check and the allocation cannot differ).
    /// </summary>
    internal static KvCacheLayout PlannedCacheLayout(ModelShape shape, int chunkTokens, bool kernelWorkspaces, int context, int sequences,
        ElementType type, int? pageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        if (type is not (ElementType.F32 or ElementType.BF16))
            throw new ArgumentOutOfRangeException("elementType", type, "The KV cache holds f32 or bf16.");
        return KvCacheLayout.For(shape, context, sequences, pageSize ?? KvCacheLayout.DefaultPageSize(shape), type,
            Math.Min(sequences, chunkTokens), attentionWorkspace: kernelWorkspaces);
    }

    /// <summary>A page pool shared by many sequences (continuous batching): add sequences, step them, free them.</summary>
    public PagedKvCache CreatePagedCache(KvCacheLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var (keyWidth, valueWidth) = KvCacheLayout.Widths(Shape);
        if (layout.Layers != Shape.Layers || layout.KeyWidth != keyWidth || layout.ValueWidth != valueWidth)
            throw new ArgumentException($"The layout is for {layout.Layers} layers of {layout.KeyWidth} + {layout.ValueWidth} elements; this model caches {Shape.Layers} layers of {keyWidth} + {valueWidth}.", nameof(layout));
        CheckContext(layout.MaxSequenceLength, nameof(layout));
        if (layout.MaxBatch < 1 || layout.MaxBatch > ChunkTokens)
            throw new ArgumentOutOfRangeException(nameof(layout), layout.MaxBatch, $"A step holds 1..{ChunkTokens} sequences (one token each at least).");
        return new PagedKvCache(this, Runtime, layout);
    }

    void CheckContext(int context, string name)
    {
        if (context < 1 || context > ContextLimit)
            throw new ArgumentOutOfRangeException(name, context, ContextLimit < Shape.MaxPositions
                ? $"The cache capacity must be between 1 and {ContextLimit}, the context the model was loaded for; " +
                  $"load it with a larger contextLength (up to max_position_embeddings, {Shape.MaxPositions}) for more."
                : $"The cache capacity must be between 1 and the model's max_position_embeddings ({Shape.MaxPositions}).");
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions cache.Length onwards, appends their keys and values to
    /// <paramref name="cache"/>, and writes the logits: of every position ([tokens, vocab]) when
    /// <paramref name="allPositions"/>, else of the last one ([vocab]). Prompts longer than <see cref="ChunkTokens"/> run in chunks.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, bool allPositions = false)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (!ReferenceEquals(cache.Pool.Owner, this))
            throw new ArgumentException("The cache was created by another model.", nameof(cache));
        if (tokens.IsEmpty)
            throw new ArgumentException("There are no tokens to run.", nameof(tokens));
        if (cache.Length + tokens.Length > cache.Capacity)
            throw new ArgumentException(
                $"{cache.Length} cached + {tokens.Length} new tokens exceed the context of {cache.Capacity} positions.", nameof(tokens));
        long needed = (long)(allPositions ? tokens.Length : 1) * Shape.Vocab;
        if (logits.Length < needed)
            throw new ArgumentException($"logits has {logits.Length} elements; {needed} are needed.", nameof(logits));
        CheckIds(tokens, nameof(tokens));
        for (int done = 0; done < tokens.Length;)
        {
            int count = Math.Min(ChunkTokens, tokens.Length - done);
            bool last = done + count == tokens.Length;
            Span<float> destination = allPositions ? logits.Slice(done * Shape.Vocab, count * Shape.Vocab) : last ? logits[..Shape.Vocab] : default;
            RunStep(cache.Pool, [new StepSequence(cache.Sequence, count)], tokens.Slice(done, count), destination, allPositions);
            done += count;
        }
    }

    /// <summary>
    /// One forward step of several sequences at once (continuous batching: prefill chunks and decode tokens mixed).
    /// Sequence b contributes sequences[b].Tokens tokens, taken in order from <paramref name="tokens"/>, at its next
    /// positions; their keys and values are appended to <paramref name="cache"/>; <paramref name="logits"/> receives the
    /// logits of each sequence's last token, [batch, vocab], in order. A sequence's logits do not depend on which other
    /// sequences share the step (batch invariance: every op computes each row on its own).
    /// </summary>
    /// <exception cref="Caching.KvCacheFullException">The pool has too few free pages for the step.</exception>
    public void Step(PagedKvCache cache, ReadOnlySpan<StepSequence> sequences, ReadOnlySpan<int> tokens, Span<float> logits) =>
        RunStep(cache, sequences, tokens, logits, allPositions: false);

    void RunStep(PagedKvCache cache, ReadOnlySpan<StepSequence> sequences, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (!ReferenceEquals(cache.Owner, this))
            throw new ArgumentException("The cache was created by another model.", nameof(cache));
        var layout = cache.Layout;
        if (sequences.IsEmpty || sequences.Length > layout.MaxBatch)
            throw new ArgumentException($"A step runs 1..{layout.MaxBatch} sequences on this cache; got {sequences.Length}.", nameof(sequences));
        int total = 0;
        if (_entries.Length < sequences.Length)
            _entries = new KvBatchEntry[sequences.Length];
        var entries = _entries.AsSpan(0, sequences.Length);
        for (int b = 0; b < sequences.Length; b++)
        {
            var (sequence, count) = sequences[b];
            int cached = cache.Length(sequence);
            if (count < 1 || (long)cached + count > layout.MaxSequenceLength)
                throw new ArgumentException($"Sequence {sequence} holds {cached} positions; {count} more do not fit its context of {layout.MaxSequenceLength}.", nameof(sequences));
            entries[b] = new KvBatchEntry(sequence, cached, count);
            total += count;
        }
        if (total != tokens.Length || total > ChunkTokens)
            throw new ArgumentException($"The sequences take {total} tokens; {tokens.Length} were given (a step runs at most {ChunkTokens}).", nameof(tokens));
        long needed = (long)(allPositions ? total : sequences.Length) * Shape.Vocab;
        if (!logits.IsEmpty && logits.Length < needed)
            throw new ArgumentException($"logits has {logits.Length} elements; {needed} are needed.", nameof(logits));
        CheckIds(tokens, nameof(tokens));
        foreach (var entry in entries)
            cache.Blocks.Reserve(entry.Sequence, entry.Cached + entry.Count);

        // the step's metadata: host images (the cache's KvBatchLayout), then into the fixed device buffers
        var host = cache.HostLayout;
        host.Build(cache.Blocks, entries);
        cache.BlockTable.CopyFromHost(host.BlockTable);
        cache.SequenceLengths.CopyFromHost(host.SequenceLengths);
        cache.QueryStarts.CopyFromHost(host.QueryStarts);
        _workspace.I(TokenIds, total).CopyFromHost(tokens);
        _workspace.I(Positions, total).CopyFromHost(host.Positions[..total]);
        _workspace.I(WorkspaceLayout.Slots, total).CopyFromHost(host.SlotMapping[..total]);
        int batch = sequences.Length;
        var step = new ForwardStep(cache, total, _workspace.I(Positions, total), _workspace.I(WorkspaceLayout.Slots, total),
            new PagedBatch(cache.BlockTable.Slice(0, (long)batch * layout.TableWidth), cache.SequenceLengths.Slice(0, batch),
                cache.QueryStarts.Slice(0, batch + 1L)) { Workspace = cache.AttentionWorkspace?.View ?? default });
        if (_decodeGraphs && !allPositions && !logits.IsEmpty && total == batch)
        {
            // a decode step: every device input is in place before the step's kernels, which a graph can then replay
            _workspace.I(LastTokenRows, batch).CopyFromHost(host.LastTokenIndex[..batch]);
            RunDecode(cache, step, batch);
            foreach (var entry in entries)
                cache.Advance(entry.Sequence, entry.Count);
            _workspace.F(Logits, (long)batch * Shape.Vocab).CopyToHost(logits[..(batch * Shape.Vocab)]);
            return;
        }
        RunLayers(step);
        foreach (var entry in entries)
            cache.Advance(entry.Sequence, entry.Count);
        if (logits.IsEmpty)
            return;

        var normed = _workspace.A(Normed, (long)total * Shape.Hidden);
        if (allPositions)
        {
            var rows = _workspace.F(Logits, (long)total * Shape.Vocab);
            Ops.Linear(normed, _lmHead, default, rows);
            rows.CopyToHost(logits[..(total * Shape.Vocab)]);
            return;
        }
        _workspace.I(LastTokenRows, batch).CopyFromHost(host.LastTokenIndex[..batch]);
        LastTokenLogits(batch);
        _workspace.F(Logits, (long)batch * Shape.Vocab).CopyToHost(logits[..(batch * Shape.Vocab)]);
    }

    /// <summary>The last token of each sequence: gathered rows [batch, hidden] (an exact copy), then lm_head into the logits buffer.</summary>
    void LastTokenLogits(int batch)
    {
        var gathered = _workspace.A(AttentionOut, (long)batch * Shape.Hidden); // free: consumed by the last residual add
        Ops.Embedding(_workspace.I(LastTokenRows, batch), NormedTable(), gathered);
        Ops.Linear(gathered, _lmHead, default, _workspace.F(Logits, (long)batch * Shape.Vocab));
    }

    /// <summary>A decode step's kernels (layers, last-token gather, lm_head): directly the first time for a batch size,
    /// captured the second, replayed after (see <see cref="DecodeGraphs"/>).</summary>
    void RunDecode(PagedKvCache cache, in ForwardStep step, int batch)
    {
        if (!ReferenceEquals(_graphCache, cache))
        {
            DropGraphs();
            _graphCache = cache;
        }
        if (_graphs.TryGetValue(batch, out var graph))
        {
            graph.Replay();
            DecodeGraphReplays++;
            return;
        }
        if (_ranOnce.Add(batch) || DecodeGraphFailure != null)
        {
            RunLayers(step);
            LastTokenLogits(batch);
            return;
        }
        var captured = step;
        try
        {
            graph = Runtime.CaptureGraph(() =>
            {
                RunLayers(captured);
                LastTokenLogits(batch);
            });
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or Bindings.CudaException)
        {
            DecodeGraphFailure = $"capturing the decode step of {batch} sequence(s) failed, so decode steps launch directly: {e.Message}";
            RunLayers(step);
            LastTokenLogits(batch);
            return;
        }
        _graphs[batch] = graph;
        graph.Replay();
        DecodeGraphReplays++;
    }

    void DropGraphs()
    {
        foreach (var graph in _graphs.Values)
            graph.Dispose();
        _graphs.Clear();
        _ranOnce.Clear();
        _graphCache = null;
    }

    /// <summary>
    /// The whole normed buffer ([ChunkTokens, hidden]) as a table whose rows the last tokens are gathered from (the step's
    /// rows are its first ones; the indices stay below the step's tokens): made once, not on every step.
    /// </summary>
    WeightMatrix NormedTable()
    {
        if (_normedTable != null)
            return _normedTable;
        var normed = _workspace.A(Normed, (long)ChunkTokens * Shape.Hidden);
        return _normedTable = normed.ElementType == ElementType.BF16
            ? WeightMatrix.Dense(normed.AsView<BFloat16>(), ChunkTokens, Shape.Hidden)
            : WeightMatrix.Dense(normed.AsView<float>(), ChunkTokens, Shape.Hidden);
    }

    void CheckIds(ReadOnlySpan<int> tokens, string name)
    {
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)Shape.Vocab)
                throw new ArgumentOutOfRangeException(name, tokens[i], $"Token id {tokens[i]} at index {i} is outside the vocabulary of {Shape.Vocab}.");
    }

    void RunLayers(in ForwardStep step)
    {
        var ws = _workspace;
        int count = step.Tokens;
        long rows = (long)count * Shape.Hidden;
        int hidden = Shape.Hidden;
        float eps = Shape.RmsNormEps;
        var h = ws.A(Hidden, rows);
        var normed = ws.A(Normed, rows);
        var attentionOut = ws.A(AttentionOut, rows);
        var mlpOut = ws.A(MlpOut, rows);

        Ops.Embedding(ws.I(TokenIds, count), _embed, h);
        for (int layer = 0; layer < Shape.Layers; layer++)
        {
            if (layer == 0)
                Ops.RmsNorm(h, _inputNorms[0].View, normed, hidden, eps);
            else
                Ops.AddRmsNorm(mlpOut, h, _inputNorms[layer].View, h, normed, hidden, eps);
            _attention[layer].Forward(Ops, ws, step, layer, normed, attentionOut);
            Ops.AddRmsNorm(attentionOut, h, _postNorms[layer].View, h, normed, hidden, eps);
            _mlp[layer].Forward(Ops, ws, count, normed, mlpOut);
        }
        Ops.AddRmsNorm(mlpOut, h, _finalNorm.View, h, normed, hidden, eps);
    }

    public void Dispose()
    {
        DropGraphs();
        _workspace.Dispose();
        foreach (var block in _attention) block.Dispose();
        foreach (var block in _mlp) block.Dispose();
        foreach (var item in _owned) item.Dispose();
        _owned.Clear();
    }
}
