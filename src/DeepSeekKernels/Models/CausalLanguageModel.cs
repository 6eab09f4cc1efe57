using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// A decoder-only transformer loaded from a checkpoint: embeddings, layers of (RMSNorm, attention, RMSNorm,
/// MLP) with the residual adds fused into the norms, final norm, lm_head. Every computation goes through
/// <see cref="Ops"/>, so the backend is a choice made when loading, not in this code. Prompts longer than
/// the workspace are run in chunks (chunked prefill); keys and values accumulate in a <see cref="KvCache"/>.
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

    internal CausalLanguageModel(ModelShape shape, Ops ops, DeviceRuntime runtime, WeightMatrix embed, WeightMatrix lmHead,
        DeviceBuffer<float>[] inputNorms, DeviceBuffer<float>[] postNorms, DeviceBuffer<float> finalNorm,
        IAttentionBlock[] attention, IMlpBlock[] mlp, int chunkTokens, RopeTable rope, List<IDisposable> owned, long weightBytes)
    {
        Shape = shape;
        Ops = ops;
        Runtime = runtime;
        (_embed, _lmHead, _inputNorms, _postNorms, _finalNorm, _attention, _mlp, _owned) =
            (embed, lmHead, inputNorms, postNorms, finalNorm, attention, mlp, owned);
        WeightBytes = weightBytes;
        ContextLimit = rope.MaxPositions;
        RopeTableBytes = (rope.Cos.Length + rope.Sin.Length) * sizeof(float);
        _workspace = new Workspace(runtime, shape, chunkTokens);
    }

    /// <summary>Dimensions of the model.</summary>
    public ModelShape Shape { get; }

    /// <summary>The ops every layer runs through.</summary>
    public Ops Ops { get; }

    /// <summary>The device the weights, caches and activations live on.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>Bytes of weights held on the device.</summary>
    public long WeightBytes { get; }

    /// <summary>Bytes of the RoPE cos/sin tables ([<see cref="ContextLimit"/>, rotary dim / 2] float32 each).</summary>
    public long RopeTableBytes { get; }

    /// <summary>Bytes of activation workspace.</summary>
    public long WorkspaceBytes => _workspace.Bytes;

    /// <summary>Most positions one forward pass runs; longer inputs are split.</summary>
    public int ChunkTokens => _workspace.Tokens;

    /// <summary>
    /// Positions the model was loaded for (its RoPE tables cover [0, ContextLimit)): the contextLength given to
    /// <see cref="ModelLoader.Load(string, Ops, int, long?, int?)"/>, else max_position_embeddings.
    /// </summary>
    public int ContextLimit { get; }

    /// <summary>A cache for one sequence of up to <paramref name="capacity"/> positions (at most <see cref="ContextLimit"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not in 1..<see cref="ContextLimit"/>.</exception>
    public KvCache CreateCache(int capacity)
    {
        if (capacity < 1 || capacity > ContextLimit)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, ContextLimit < Shape.MaxPositions
                ? $"The cache capacity must be between 1 and {ContextLimit}, the context the model was loaded for; " +
                  $"load it with a larger contextLength (up to max_position_embeddings, {Shape.MaxPositions}) for more."
                : $"The cache capacity must be between 1 and the model's max_position_embeddings ({Shape.MaxPositions}).");
        var (keyWidth, valueWidth) = _attention[0].CacheWidths;
        return new KvCache(this, Runtime, Shape.Layers, capacity, keyWidth, valueWidth);
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions cache.Length onwards, appends their keys and values to
    /// <paramref name="cache"/>, and writes the logits: of every position ([tokens, vocab]) when
    /// <paramref name="allPositions"/>, else of the last one ([vocab]).
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, bool allPositions = false)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (!ReferenceEquals(cache.Owner, this))
            throw new ArgumentException("The cache was created by another model.", nameof(cache));
        if (tokens.IsEmpty)
            throw new ArgumentException("There are no tokens to run.", nameof(tokens));
        if (cache.Length + tokens.Length > cache.Capacity)
            throw new ArgumentException(
                $"{cache.Length} cached + {tokens.Length} new tokens exceed the context of {cache.Capacity} positions.", nameof(tokens));
        long needed = (long)(allPositions ? tokens.Length : 1) * Shape.Vocab;
        if (logits.Length < needed)
            throw new ArgumentException($"logits has {logits.Length} elements; {needed} are needed.", nameof(logits));
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)Shape.Vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], $"Token id {tokens[i]} at index {i} is outside the vocabulary of {Shape.Vocab}.");

        var positions = new int[ChunkTokens];
        for (int done = 0; done < tokens.Length;)
        {
            int count = Math.Min(ChunkTokens, tokens.Length - done);
            int start = cache.Length;
            for (int i = 0; i < count; i++)
                positions[i] = start + i;
            _workspace.I(TokenIds, count).CopyFromHost(tokens.Slice(done, count));
            _workspace.I(Positions, count).CopyFromHost(positions.AsSpan(0, count));
            RunLayers(cache, start, count);
            cache.Length = start + count;

            bool last = done + count == tokens.Length;
            var normed = _workspace.F(Normed, (long)count * Shape.Hidden);
            if (allPositions)
            {
                var rows = _workspace.F(Logits, (long)count * Shape.Vocab);
                Ops.Linear(normed, _lmHead, default, rows);
                rows.CopyToHost(logits.Slice(done * Shape.Vocab, count * Shape.Vocab));
            }
            else if (last)
            {
                var row = _workspace.F(Logits, Shape.Vocab);
                Ops.Linear(normed.Slice((long)(count - 1) * Shape.Hidden, Shape.Hidden), _lmHead, default, row);
                row.CopyToHost(logits[..Shape.Vocab]);
            }
            done += count;
        }
    }

    void RunLayers(KvCache cache, int start, int count)
    {
        var ws = _workspace;
        long rows = (long)count * Shape.Hidden;
        int hidden = Shape.Hidden;
        float eps = Shape.RmsNormEps;
        var h = ws.F(Hidden, rows);
        var normed = ws.F(Normed, rows);
        var attentionOut = ws.F(AttentionOut, rows);
        var mlpOut = ws.F(MlpOut, rows);

        Ops.Embedding(ws.I(TokenIds, count), _embed, h);
        for (int layer = 0; layer < Shape.Layers; layer++)
        {
            if (layer == 0)
                Ops.RmsNorm(h, _inputNorms[0].View, normed, hidden, eps);
            else
                Ops.AddRmsNorm(mlpOut, h, _inputNorms[layer].View, h, normed, hidden, eps);
            _attention[layer].Forward(Ops, ws, cache, layer, start, count, normed, attentionOut);
            Ops.AddRmsNorm(attentionOut, h, _postNorms[layer].View, h, normed, hidden, eps);
            _mlp[layer].Forward(Ops, ws, count, normed, mlpOut);
        }
        Ops.AddRmsNorm(mlpOut, h, _finalNorm.View, h, normed, hidden, eps);
    }

    public void Dispose()
    {
        _workspace.Dispose();
        foreach (var block in _attention) block.Dispose();
        foreach (var block in _mlp) block.Dispose();
        foreach (var item in _owned) item.Dispose();
        _owned.Clear();
    }
}
