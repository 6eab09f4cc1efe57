using DeepSeekKernels.Caching;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;
using static System.FormattableString;

namespace DeepSeekKernels.Models;

/// <summary>
/// Builds a <see cref="CausalLanguageModel"/> from a Hugging Face checkpoint folder for any supported
/// architecture: checks every tensor's shape against config.json before loading it, stacks routed experts,
/// prepares MLA's per-head absorbed matrices, and builds the RoPE table. DeepSeek's multi-token-prediction
/// layers (beyond num_hidden_layers) are not loaded.
/// </summary>
public static class ModelLoader
{
    /// <summary>Default positions per forward pass (longer prompts are run in chunks of this size; a shorter context than this makes the workspace that short).</summary>
    public const int DefaultChunkTokens = 256;

    /// <summary>
    /// Loads the model in <paramref name="folder"/> onto <paramref name="ops"/>' runtime, for contexts of up to
    /// <paramref name="contextLength"/> positions (the RoPE tables cover that many; null: max_position_embeddings).
    /// Before anything is allocated, the checkpoint's headers are checked against config.json
    /// (<see cref="CheckpointConformance.Check"/>), and the bytes it will take (<see cref="EstimateBytes"/>) are checked against
    /// <paramref name="memoryBudgetBytes"/>, or on a GPU against its free memory; a model that does not fit is
    /// refused with a <see cref="ModelDoesNotFitException"/> that gives the parts.
    /// </summary>
    /// <param name="folder">The checkpoint folder (config.json and safetensors).</param>
    /// <param name="ops">The ops the model runs on; their runtime holds the weights.</param>
    /// <param name="chunkTokens">Positions per forward pass (the workspace's size).</param>
    /// <param name="memoryBudgetBytes">Bytes the model may take; null: the device's free memory, where it is known.</param>
    /// <param name="contextLength">Positions the RoPE tables cover; null: max_position_embeddings.</param>
    /// <param name="quantization">
    /// How to store the linear weights the checkpoint holds in bf16, f16 or f32 (see <see cref="WeightQuantization"/> for
    /// which are quantised and which stay dense); <see cref="CausalLanguageModel.Quantization"/> reports what was done.
    /// </param>
    /// <param name="activations">
    /// The activation type: f32 (the exact path, the default) or bf16 (as transformers runs a bf16 checkpoint: every
    /// activation rounded to bf16 after each op's f32 arithmetic; logits, router logits and expert weights stay f32).
    /// </param>
    /// <param name="fp8Activations">
    /// Run prefill's FP8-block linear layers as W8A8 (<see cref="CausalLanguageModel.Fp8Activations"/>); the workspace then
    /// holds their FP8 inputs and scales.
    /// </param>
    /// <param name="kvCache">
    /// The KV cache the caller will create next, counted in the fit check (<see cref="MemoryNeeds.KvCache"/>); null: the
    /// check covers the model alone.
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="contextLength"/> is not in 1..max_position_embeddings, <paramref name="quantization"/> is not a
    /// defined value, or <paramref name="activations"/> is neither f32 nor bf16; <paramref name="kvCache"/> (its
    /// parameter name) asks for a cache a 32-bit slot index cannot address (sequences x context past 2^31 - 1 positions).
    /// </exception>
    /// <exception cref="CheckpointException">
    /// No <paramref name="contextLength"/> was given and max_position_embeddings positions of RoPE table do not fit
    /// (a table holds at most 2^31 - 1 elements); a weight to quantise is not finite; among the other faults of a checkpoint.
    /// </exception>
    public static CausalLanguageModel Load(string folder, Ops ops, int chunkTokens = DefaultChunkTokens, long? memoryBudgetBytes = null,
        int? contextLength = null, WeightQuantization quantization = WeightQuantization.None, ElementType activations = ElementType.F32,
        bool fp8Activations = false, KvCacheRequest? kvCache = null)
    {
        if (activations is not (ElementType.F32 or ElementType.BF16))
            throw new ArgumentOutOfRangeException(nameof(activations), activations, "Activations are f32 (the exact path) or bf16.");
        ArgumentNullException.ThrowIfNull(ops);
        var runtime = ops.Runtime ?? throw new ArgumentException(
            "The model needs device memory: create the Ops with Ops.Create(runtime, backend).", nameof(ops));
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        CheckQuantization(quantization);
        var checkpoint = Checkpoint.Open(folder);
        bool owned = false; // by the model, when it reads weights in place from the mapping
        try
        {
            CheckpointConformance.Check(checkpoint); // a config the tensors contradict is refused before anything is allocated
            var needed = EstimateBytes(checkpoint, chunkTokens, contextLength, quantization, activations, fp8Activations);
            int context = ContextLimit(checkpoint.Config, contextLength);
            if (kvCache is not null)
            {
                KvCacheLayout layout;
                try
                {
                    layout = CausalLanguageModel.PlannedCacheLayout(ModelShapes.From(checkpoint.Config), Math.Min(chunkTokens, context),
                        ops.TakesKernelWorkspaces, context, kvCache.Sequences, kvCache.ElementType ?? activations, kvCache.PageSize);
                }
                catch (OverflowException e)
                {
                    throw new ArgumentOutOfRangeException(nameof(kvCache), kvCache.Sequences, e.Message);
                }
                needed = needed with { KvCacheLayout = layout };
            }
            if ((memoryBudgetBytes ?? runtime.FreeMemoryBytes) is long available && needed.Total > available)
                throw new ModelDoesNotFitException(checkpoint.Folder, runtime.DeviceName, needed, available);
            var model = Load(checkpoint, ops, runtime, Math.Min(chunkTokens, context), context, quantization, activations, fp8Activations);
            owned = model.MappedWeightBytes > 0;
            return model;
        }
        finally
        {
            if (!owned)
                checkpoint.Dispose();
        }
    }

    static void CheckQuantization(WeightQuantization quantization)
    {
        if (!Enum.IsDefined(quantization))
            throw new ArgumentOutOfRangeException(nameof(quantization), quantization, "quantization must be None, Int4 or Fp8.");
    }

    /// <summary>
    /// Device bytes a model will take once loaded: weights as the loader stores them, RoPE tables, and the workspace; with a
    /// <see cref="KvCacheRequest"/>, the KV cache the caller creates next (<see cref="KvCacheLayout"/>'s bytes), else 0.
    /// </summary>
    public sealed record MemoryNeeds(long Weights, long RopeTables, long Workspace)
    {
        /// <summary>The cache the caller announced (<see cref="KvCacheRequest"/>); null when none was.</summary>
        public KvCacheLayout? KvCacheLayout { get; init; }

        /// <summary>The announced cache's bytes (<see cref="KvCacheLayout.Bytes"/>: pools, step metadata, attention workspace), else 0.</summary>
        public long KvCache => KvCacheLayout?.Bytes ?? 0;

        public long Total => SizeMath.Sum("the memory the model needs", "bytes", [Weights, RopeTables, Workspace, KvCache]);
    }

    /// <summary>
    /// What <see cref="Load(string, Ops, int, long?, int?, WeightQuantization, Numerics.ElementType, bool, KvCacheRequest?)"/> will allocate, from the checkpoint's tensors:
    /// bf16 and FP8 weights as stored, f32/f16 weights and all vectors (norms, biases) as f32, MLA's kv_b_proj as two
    /// stacks of its own precision (bf16 as stored; FP8 as stored with its scales when its heads' rows are whole blocks,
    /// else as bf16; f32/f16 as f32) of the same element count
    /// f32 stacks of the same element count (its FP8 scales stay on the host); with <paramref name="quantization"/>, each
    /// full-precision linear weight the loader quantises as it stores it
    /// (<see cref="WeightQuantizations.QuantizedBytes"/>; under INT4, one whose in features are not a multiple of 128
    /// as stored); a GPTQ/AWQ checkpoint's INT4 layers as <see cref="WeightMatrix.Int4"/> stores them (half a byte per weight,
    /// a bf16 scale and zero point per group; kv_b_proj as bf16); MTP layers and a tied lm_head are not loaded; RoPE tables for <paramref name="contextLength"/>
    /// positions (null: max_position_embeddings). The KV cache comes on top.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="contextLength"/> is not in 1..max_position_embeddings, or <paramref name="quantization"/> is not a defined value.
    /// </exception>
    /// <exception cref="CheckpointException">No <paramref name="contextLength"/> was given and max_position_embeddings positions of RoPE table do not fit.</exception>
    public static MemoryNeeds EstimateBytes(Checkpoint checkpoint, int chunkTokens, int? contextLength = null,
        WeightQuantization quantization = WeightQuantization.None, ElementType activations = ElementType.F32, bool fp8Activations = false)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        CheckQuantization(quantization);
        var s = ModelShapes.From(checkpoint.Config);
        int positions = ContextLimit(checkpoint.Config, contextLength);
        long weights = 0;
        foreach (var t in checkpoint.Tensors)
        {
            bool fp8KvB = WeightLoader.KvBProjStaysFp8(s);
            if (!IsLoaded(t.Name, s) || (!fp8KvB && t.Name.EndsWith("kv_b_proj.weight_scale_inv", StringComparison.Ordinal)))
                continue; // kv_b_proj's FP8 scales are applied on the host while loading, unless it stays FP8
            if (Int4LayerBytes(checkpoint, t) is long int4Bytes)
            {
                weights = checked(weights + int4Bytes);
                continue;
            }
            long bytes = t.Rank == 1 ? 4
                : t.Name.EndsWith("kv_b_proj.weight", StringComparison.Ordinal)
                    ? (t.DType == SafetensorsDType.F8_E4M3 && fp8KvB ? 1 : t.DType is SafetensorsDType.BF16 or SafetensorsDType.F8_E4M3 ? 2 : 4)
                : t.DType switch
                {
                    SafetensorsDType.BF16 => 2,
                    SafetensorsDType.F8_E4M3 => 1,
                    _ => 4,
                };
            bool quantized = quantization != WeightQuantization.None && t.Rank == 2 && t.DType != SafetensorsDType.F8_E4M3
                && t.Name.EndsWith(".weight", StringComparison.Ordinal) && WeightLoader.QuantizedAtLoad(t.Name) && quantization.Fits(t.Shape[1]);
            try
            {
                weights = checked(weights + (quantized ? quantization.QuantizedBytes(t.Shape[0], t.Shape[1]) : t.ElementCount * bytes));
            }
            catch (OverflowException e)
            {
                throw SizeMath.TooLarge(Invariant($"the loaded weights (up to tensor {t.Name}, {t.ElementCount:N0} x {(quantized ? quantization.Name() : $"{bytes} B")})"), "bytes", e);
            }
        }
        long rope = SizeMath.Product("the size of the RoPE cos/sin tables", "bytes", positions, RotaryDim(s), 4);
        return new MemoryNeeds(weights, rope, WorkspaceLayout.Bytes(s, Math.Min(chunkTokens, positions), activations, fp8Activations));
    }

    static int RotaryDim(ModelShape s) => s.IsMla ? s.QkRopeHeadDim : s.HeadDim;

    /// <summary>
    /// The bytes a tensor of a GPTQ/AWQ INT4 layer takes once loaded (<see cref="Int4CheckpointWeights"/>), null for any other
    /// tensor: qweight int32 [K / 8, N] or [K, N / 8] becomes 8 codes of half a byte (4 B per int32), qzeros 8 bf16 zero points
    /// per int32, scales one bf16 each, g_idx nothing; MLA's kv_b_proj is dequantised to bf16 (2 B per weight, 16 per qweight int32).
    /// </summary>
    static long? Int4LayerBytes(Checkpoint checkpoint, TensorInfo t)
    {
        int dot = t.Name.LastIndexOf('.');
        if (dot < 0 || t.Name.AsSpan(dot) is not (".qweight" or ".qzeros" or ".scales" or ".g_idx")
            || !Int4CheckpointWeights.IsStored(checkpoint, t.Name[..dot]))
            return null;
        bool kvB = t.Name.AsSpan(0, dot).EndsWith(".kv_b_proj", StringComparison.Ordinal);
        return t.Name.AsSpan(dot) switch
        {
            ".qweight" => checked(t.ElementCount * (kvB ? 16 : 4)),
            ".qzeros" => kvB ? 0 : checked(t.ElementCount * 16),
            ".scales" => kvB ? 0 : checked(t.ElementCount * 2),
            _ => 0,
        };
    }

    /// <summary>
    /// The positions the RoPE tables cover: <paramref name="contextLength"/>, in 1..max_position_embeddings, or
    /// max_position_embeddings when null and its tables fit.
    /// </summary>
    static int ContextLimit(ModelConfig config, int? contextLength)
    {
        int max = config.MaxPositionEmbeddings;
        if (contextLength is int context)
        {
            if (context < 1 || context > max)
                throw new ArgumentOutOfRangeException(nameof(contextLength), context,
                    Invariant($"The context length must be between 1 and the model's max_position_embeddings ({max:N0}, in {config.Source})."));
            return context;
        }
        long half = RotaryDim(ModelShapes.From(config)) / 2;
        if (max * half > int.MaxValue)
            throw new CheckpointException(
                Invariant($"{config.Source}: max_position_embeddings ({max:N0}) is too many positions for the RoPE tables: ") +
                Invariant($"{max:N0} x {half:N0} frequencies is more than the {int.MaxValue:N0} elements a table holds. ") +
                "Load the model for a smaller context (contextLength).",
                config.Source, null);
        return max;
    }

    /// <summary>Whether the loader reads <paramref name="name"/>: the embeddings, final norm, lm_head unless tied, and layers below num_hidden_layers.</summary>
    static bool IsLoaded(string name, ModelShape s)
    {
        if (name is "model.embed_tokens.weight" or "model.norm.weight")
            return true;
        if (name == "lm_head.weight")
            return !s.TieEmbeddings;
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal) || name.Contains("rotary_emb", StringComparison.Ordinal))
            return false;
        int dot = name.IndexOf('.', prefix.Length);
        return dot > 0 && int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), out int layer) && layer < s.Layers;
    }

    static CausalLanguageModel Load(Checkpoint checkpoint, Ops ops, DeviceRuntime runtime, int chunkTokens, int contextLimit,
        WeightQuantization quantization, ElementType activations, bool fp8Activations)
    {
        var config = checkpoint.Config;
        var s = ModelShapes.From(config);
        var loader = new WeightLoader(checkpoint, runtime, s, quantization);
        try
        {
            // Quantisation (when asked) takes lm_head and every linear weight of the layers but the router and kv_b_proj;
            // the embeddings stay as stored (WeightLoader.QuantizedAtLoad).
            var embed = loader.Matrix("model.embed_tokens", s.Vocab, s.Hidden);
            var lmHead = s.TieEmbeddings ? embed : loader.Matrix("lm_head", s.Vocab, s.Hidden);
            var finalNorm = loader.Vector("model.norm.weight", s.Hidden);
            var inputNorms = new DeviceBuffer<float>[s.Layers];
            var postNorms = new DeviceBuffer<float>[s.Layers];
            var attention = new IAttentionBlock[s.Layers];
            var mlp = new IMlpBlock[s.Layers];

            // Tables for the context the model is loaded for; their values per position depend on the config alone
            // (RopeScaling keeps max_position_embeddings and the original length), not on the table's length.
            var rope = loader.Keep(RopeTable.Create(runtime, RopeScalingOf(config), RotaryDim(s), contextLimit));
            for (int layer = 0; layer < s.Layers; layer++)
            {
                string p = $"model.layers.{layer}.";
                inputNorms[layer] = loader.Vector(p + "input_layernorm.weight", s.Hidden);
                postNorms[layer] = loader.Vector(p + "post_attention_layernorm.weight", s.Hidden);
                attention[layer] = s.IsMla ? LoadMla(loader, s, config, p + "self_attn", rope) : LoadGqa(loader, s, p + "self_attn", rope);
                mlp[layer] = s.IsMoeLayer(layer) ? LoadMoe(loader, s, config, p + "mlp") : LoadDense(loader, p + "mlp", s.Intermediate, s.Hidden);
            }
            return new CausalLanguageModel(s, ops, runtime, embed, lmHead, inputNorms, postNorms, finalNorm, attention, mlp,
                chunkTokens, rope, loader.MapsInPlace ? [.. loader.Owned, checkpoint] : loader.Owned, loader.Bytes, activations, fp8Activations)
            {
                Quantization = loader.Report,
                MappedWeightBytes = loader.MappedBytes,
                ReleasedCheckpointBytes = loader.ReleasedBytes,
            };
        }
        catch
        {
            foreach (var item in loader.Owned)
                item.Dispose();
            throw;
        }
    }

    static DenseMlpBlock LoadDense(WeightLoader loader, string prefix, int intermediate, int hidden) => new(
        loader.GateUp([prefix + ".gate_proj"], [prefix + ".up_proj"], intermediate, hidden),
        loader.Matrix(prefix + ".down_proj", hidden, intermediate));

    static MoeMlpBlock LoadMoe(WeightLoader loader, ModelShape s, ModelConfig config, string prefix)
    {
        var router = loader.Matrix(prefix + ".gate", s.Experts, s.Hidden);
        DeviceBuffer<float>? bias = s.Architecture == ModelArchitecture.DeepSeekV3
            ? loader.Vector(prefix + ".gate.e_score_correction_bias", s.Experts)
            : null;
        string[] Experts(string projection) => [.. Enumerable.Range(0, s.Experts).Select(e => $"{prefix}.experts.{e}.{projection}")];
        var gateUps = loader.GateUp(Experts("gate_proj"), Experts("up_proj"), s.MoeIntermediate, s.Hidden);
        var downs = loader.Stack(Experts("down_proj"), s.Hidden, s.MoeIntermediate);
        var shared = s.SharedExperts > 0
            ? LoadDense(loader, prefix + ".shared_experts", s.MoeIntermediate * s.SharedExperts, s.Hidden)
            : null;
        var routing = new MoeRouting
        {
            Experts = s.Experts,
            TopK = s.ExpertsPerToken,
            Scoring = config.ScoringFunc,
            Method = config.TopkMethod,
            Groups = config.NGroup,
            TopKGroups = config.TopkGroup,
            NormalizeTopK = config.NormTopkProb,
            RoutedScalingFactor = config.RoutedScalingFactor,
        };
        return new MoeMlpBlock(s, new MoeLayer(router, bias?.View ?? default, routing, gateUps.Fused, gateUps.Gate, gateUps.Up, downs), shared);
    }

    static MlaAttentionBlock LoadMla(WeightLoader loader, ModelShape s, ModelConfig config, string prefix, RopeTable rope)
    {
        int heads = s.Heads, nope = s.QkNopeHeadDim, v = s.VHeadDim, latent = s.KvLoraRank;
        WeightMatrix? qA = null, qB = null, q = null;
        DeviceBuffer<float>? qANorm = null;
        if (s.QLoraRank is int qLora)
        {
            qA = loader.Matrix(prefix + ".q_a_proj", qLora, s.Hidden);
            qANorm = loader.Vector(prefix + ".q_a_layernorm.weight", qLora);
            qB = loader.Matrix(prefix + ".q_b_proj", heads * s.QkHeadDim, qLora);
        }
        else
        {
            q = loader.Matrix(prefix + ".q_proj", heads * s.QkHeadDim, s.Hidden);
        }
        var kvA = loader.Matrix(prefix + ".kv_a_proj_with_mqa", latent + s.QkRopeHeadDim, s.Hidden);
        var kvANorm = loader.Vector(prefix + ".kv_a_layernorm.weight", latent);

        // kv_b_proj [heads * (nope + v), latent]: per head, nope rows of W_uk then v rows of W_uv, split into two stacks
        // in the checkpoint's precision (bf16 as stored; FP8 as its exact bf16 dequantisation; f32/f16 as f32)
        var (uk, uv) = loader.KvBProj(prefix + ".kv_b_proj", heads, nope, v, latent);
        var o = loader.Matrix(prefix + ".o_proj", s.Hidden, heads * v);
        return new MlaAttentionBlock(s, qA, qANorm, qB, q, kvA, kvANorm,
            uk, uv, o,
            rope, config.RopeInterleave ? RopeLayout.Interleaved : RopeLayout.HalfSplit, MlaSoftmaxScale(s, config));
    }

    static GqaAttentionBlock LoadGqa(WeightLoader loader, ModelShape s, string prefix, RopeTable rope)
    {
        int q = s.Heads * s.HeadDim, kv = s.KvHeads * s.HeadDim;
        return new GqaAttentionBlock(s,
            loader.Matrix(prefix + ".q_proj", q, s.Hidden), s.QkvBias ? loader.Vector(prefix + ".q_proj.bias", q) : null,
            loader.Matrix(prefix + ".k_proj", kv, s.Hidden), s.QkvBias ? loader.Vector(prefix + ".k_proj.bias", kv) : null,
            loader.Matrix(prefix + ".v_proj", kv, s.Hidden), s.QkvBias ? loader.Vector(prefix + ".v_proj.bias", kv) : null,
            loader.Matrix(prefix + ".o_proj", s.Hidden, q), rope);
    }

    /// <summary>
    /// MLA's softmax scale, as transformers' DeepSeek attention sets it: qk_head_dim^-0.5, times mscale^2
    /// when the rope is scaled (YaRN) and mscale_all_dim is set, mscale = 0.1 * mscale_all_dim * ln(factor) + 1.
    /// </summary>
    internal static float MlaSoftmaxScale(ModelShape s, ModelConfig config)
    {
        double scale = 1.0 / Math.Sqrt(s.QkHeadDim);
        var rope = config.RopeScaling;
        if (rope.Type != RopeKind.Default && rope.MscaleAllDim is double all && all != 0)
        {
            double mscale = rope.Factor <= 1 ? 1.0 : 0.1 * all * Math.Log(rope.Factor) + 1.0;
            scale *= mscale * mscale;
        }
        return (float)scale;
    }

    /// <summary>The op API's RoPE description of config.json's rope settings.</summary>
    internal static RopeScaling RopeScalingOf(ModelConfig c)
    {
        var r = c.RopeScaling;
        return new RopeScaling
        {
            Kind = r.Type,
            Theta = c.RopeTheta,
            Factor = r.Factor,
            OriginalMaxPositions = r.OriginalMaxPositionEmbeddings ?? c.MaxPositionEmbeddings,
            MaxPositions = c.MaxPositionEmbeddings,
            BetaFast = r.BetaFast,
            BetaSlow = r.BetaSlow,
            Mscale = r.Mscale,
            MscaleAllDim = r.MscaleAllDim,
            AttentionFactor = r.AttentionFactor,
            Truncate = r.Truncate ?? true,
            LowFreqFactor = r.LowFreqFactor,
            HighFreqFactor = r.HighFreqFactor,
        };
    }
}
