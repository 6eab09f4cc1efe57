using DeepSeekKernels.Numerics;
using DeepSeekKernels.Planning;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>One activation buffer of the forward pass: activations in the model's activation type, ids int32, and
/// the few buffers kept in float32 whatever the activations are (logits, router logits, expert weights).</summary>
public sealed record WorkspaceBuffer(string Name, long Elements, ElementType Type)
{
    /// <summary>Whether the buffer holds int32 ids.</summary>
    public bool IsInt32 => Type == ElementType.I32;

    /// <exception cref="OverflowException">The size is 2^63 bytes or more.</exception>
    public long Bytes => SizeMath.Product($"the size of the activation buffer '{Name}'", "bytes", Elements, Type.Size());
}

/// <summary>
/// The activation buffers one forward pass over up to <c>tokens</c> positions needs, by name and size:
/// the runner allocates exactly these (see <see cref="Workspace"/>) and `dsk plan` adds them up, so the
/// plan's activation figure is what the runner really uses. Activations are float32 or bfloat16 (the model's activation
/// type); ids are int32; logits, router logits and expert weights stay float32 (as transformers computes them).
/// </summary>
public static class WorkspaceLayout
{
    public const string TokenIds = "token ids";
    public const string Positions = "positions";
    public const string Hidden = "hidden (residual stream)";
    public const string Normed = "normed";
    public const string AttentionOut = "attention out";
    public const string MlpOut = "mlp out";
    public const string Logits = "logits";
    public const string QA = "q_a";
    public const string Q = "q";
    public const string KvA = "kv_a";
    public const string CompressedKv = "compressed kv";
    public const string QAbsorbed = "q absorbed";
    public const string AttentionLatentOut = "attention latent out";
    public const string AttentionHeadsOut = "attention heads out";
    public const string RouterLogits = "router logits";
    public const string ExpertIds = "expert ids";
    public const string ExpertWeights = "expert weights";
    public const string PermutedTokens = "permuted tokens";
    public const string ExpertOffsets = "expert offsets";
    public const string SlotRows = "slot rows";
    public const string PermuteWorkspace = "permutation workspace";
    public const string ExpertOut = "expert out";
    public const string K = "k";
    public const string V = "v";
    public const string Slots = "cache slots";
    public const string LastTokenRows = "last token rows";
    public const string MlpGateUp = "mlp gate|up";
    public const string MlpActivation = "mlp activation";
    public const string Fp8Activations = "fp8 activations";
    public const string Fp8ActivationScales = "fp8 activation scales";

    /// <summary>
    /// The widest input of the model's linear layers (hidden, q_lora_rank, the attention output, the dense and shared MLPs'
    /// intermediates): one token's row of a linear layer's FP8 input.
    /// </summary>
    public static long LinearInputs(ModelShape s) => Math.Max(Math.Max((long)s.Hidden, s.QLoraRank ?? 0),
        Math.Max(s.IsMla ? (long)s.Heads * s.VHeadDim : (long)s.Heads * s.HeadDim,
            Math.Max((long)s.Intermediate, s.Experts > 0 ? (long)s.MoeIntermediate * Math.Max(1, s.SharedExperts) : 0)));

    /// <summary>
    /// FP8 elements per token of the FP8 activation buffer (<see cref="Fp8Activations"/>): the wider of a linear layer's
    /// input (<see cref="LinearInputs"/>) and, with routed experts, the experts' W8A8 inputs (top-k slot rows of the wider of
    /// hidden and moe_intermediate, <see cref="MoeLayerScratch.Fp8InputElements"/>).
    /// </summary>
    public static long Fp8InputsPerToken(ModelShape s) => s.Experts > 0
        ? Math.Max(LinearInputs(s), (long)s.ExpertsPerToken * Math.Max(s.Hidden, s.MoeIntermediate))
        : LinearInputs(s);

    /// <summary>float32 scales per token of <see cref="Fp8ActivationScales"/>: one per 128 elements of each row <see cref="Fp8InputsPerToken"/> counts.</summary>
    public static long Fp8ScalesPerToken(ModelShape s)
    {
        long linear = (LinearInputs(s) + 127) / 128;
        return s.Experts > 0 ? Math.Max(linear, (long)s.ExpertsPerToken * ((Math.Max(s.Hidden, s.MoeIntermediate) + 127) / 128)) : linear;
    }

    /// <summary>
    /// The buffers of one forward pass over up to <paramref name="tokens"/> positions, with their element counts; with
    /// <paramref name="fp8Activations"/>, also the FP8 copy of a linear layer's (or the routed experts') input and its 1 x 128
    /// scales (W8A8 prefill).
    /// </summary>
    /// <exception cref="OverflowException">A buffer is 2^63 elements or more; the message names it and its factors.</exception>
    public static IReadOnlyList<WorkspaceBuffer> For(ModelShape s, int tokens, ElementType activations = ElementType.F32, bool fp8Activations = false)
    {
        if (activations is not (ElementType.F32 or ElementType.BF16))
            throw new ArgumentOutOfRangeException(nameof(activations), activations, "Activations are f32 or bf16.");
        long t = tokens, h = s.Hidden;
        var list = new List<WorkspaceBuffer>();
        // Every element count in checked arithmetic: a config may hold any int, so three factors can pass 2^63.
        // The flag of the old signature says "int32"; float buffers take the activation type unless kept float32.
        void Add(string name, bool isInt32, params ReadOnlySpan<long> factors) =>
            list.Add(new(name, SizeMath.Product($"the activation buffer '{name}'", "elements", factors),
                isInt32 ? ElementType.I32 : name is Logits or RouterLogits or ExpertWeights ? ElementType.F32 : activations));
        Add(TokenIds, true, t);
        Add(Positions, true, t);
        Add(Slots, true, t);
        Add(LastTokenRows, true, t);
        Add(Hidden, false, t, h);
        Add(Normed, false, t, h);
        Add(AttentionOut, false, t, h);
        Add(MlpOut, false, t, h);
        Add(Logits, false, t, s.Vocab);
        if (s.IsMla)
        {
            long heads = s.Heads, latent = (long)s.KvLoraRank + s.QkRopeHeadDim;
            if (s.QLoraRank is int qLora)
                Add(QA, false, t, qLora);
            Add(Q, false, t, heads, (long)s.QkNopeHeadDim + s.QkRopeHeadDim);
            Add(KvA, false, t, latent);
            Add(CompressedKv, false, t, s.KvLoraRank);
            Add(QAbsorbed, false, t, heads, latent);
            Add(AttentionLatentOut, false, t, heads, s.KvLoraRank);
            Add(AttentionHeadsOut, false, t, heads, s.VHeadDim);
        }
        else
        {
            Add(Q, false, t, s.Heads, s.HeadDim);
            Add(K, false, t, s.KvHeads, s.HeadDim);
            Add(V, false, t, s.KvHeads, s.HeadDim);
            Add(AttentionHeadsOut, false, t, s.Heads, s.HeadDim);
        }

        // MLP scratch: the widest of the dense MLP, the shared experts and the routed experts (t * k rows).
        long mlp = SizeMath.Product("the dense MLP scratch", "elements", t, s.Intermediate);
        if (s.Experts > 0)
        {
            long k = s.ExpertsPerToken;
            mlp = Math.Max(mlp, Math.Max(
                SizeMath.Product("the shared-expert MLP scratch", "elements", t, s.MoeIntermediate, Math.Max(1, s.SharedExperts)),
                SizeMath.Product("the routed-expert MLP scratch", "elements", t, k, s.MoeIntermediate)));
            Add(RouterLogits, false, t, s.Experts);
            Add(ExpertIds, true, t, k);
            Add(ExpertWeights, false, t, k);
            Add(PermutedTokens, false, t, k, h);
            Add(ExpertOffsets, true, (long)s.Experts + 1);
            Add(SlotRows, true, t, k);
            Add(PermuteWorkspace, true, Ops.MoePermuteWorkspaceBytes(SizeMath.Product("the MoE slots", "slots", t, k), s.Experts) / sizeof(int));
            Add(ExpertOut, false, t, k, h);
        }
        Add(MlpGateUp, false, 2, mlp);
        Add(MlpActivation, false, mlp);
        if (fp8Activations)
        {
            list.Add(new(Fp8Activations, SizeMath.Product($"the activation buffer '{Fp8Activations}'", "elements", t, Fp8InputsPerToken(s)), ElementType.Fp8E4M3));
            list.Add(new(Fp8ActivationScales, SizeMath.Product($"the activation buffer '{Fp8ActivationScales}'", "elements", t, Fp8ScalesPerToken(s)),
                ElementType.F32));
        }
        return list;
    }

    /// <summary>Total bytes of <see cref="For"/>.</summary>
    /// <exception cref="OverflowException">A buffer or the total is 2^63 bytes or more.</exception>
    /// <remarks>The runner allocates these buffers in one arena, each aligned to <see cref="DeviceArena.Alignment"/> bytes: this is that arena's size.</remarks>
    public static long Bytes(ModelShape s, int tokens, ElementType activations = ElementType.F32, bool fp8Activations = false)
    {
        var bytes = For(s, tokens, activations, fp8Activations).Select(b => b.Bytes).ToArray();
        SizeMath.Sum($"the activation workspace of one forward pass over {tokens} tokens", "bytes", bytes); // names an overflow
        try
        {
            return DeviceArena.SizeOf(bytes);
        }
        catch (OverflowException e)
        {
            throw SizeMath.TooLarge($"the activation workspace of one forward pass over {tokens} tokens", "bytes", e);
        }
    }
}
