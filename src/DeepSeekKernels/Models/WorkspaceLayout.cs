namespace DeepSeekKernels.Models;

/// <summary>One activation buffer of the forward pass.</summary>
public sealed record WorkspaceBuffer(string Name, long Elements, bool IsInt32 = false)
{
    /// <summary>Every buffer holds 4-byte elements: fp32 activations or int32 ids.</summary>
    public long Bytes => Elements * 4;
}

/// <summary>
/// The activation buffers one forward pass over up to <c>tokens</c> positions needs, by name and size:
/// the runner allocates exactly these (see <see cref="Workspace"/>) and `dsk plan` adds them up, so the
/// plan's activation figure is what the runner really uses. Activations are fp32; ids are int32.
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
    public const string QNope = "q_nope";
    public const string QAbsorbed = "q absorbed";
    public const string AttentionLatentOut = "attention latent out";
    public const string AttentionHeadsOut = "attention heads out";
    public const string RouterLogits = "router logits";
    public const string ExpertIds = "expert ids";
    public const string ExpertWeights = "expert weights";
    public const string PermutedTokens = "permuted tokens";
    public const string ExpertOffsets = "expert offsets";
    public const string SourceSlots = "source slots";
    public const string ExpertOut = "expert out";
    public const string MlpGate = "mlp gate";
    public const string MlpUp = "mlp up";
    public const string MlpGateUp = "mlp gate|up";
    public const string MlpActivation = "mlp activation";

    public static IReadOnlyList<WorkspaceBuffer> For(ModelShape s, int tokens)
    {
        long t = tokens, h = s.Hidden;
        var list = new List<WorkspaceBuffer>
        {
            new(TokenIds, t, IsInt32: true),
            new(Positions, t, IsInt32: true),
            new(Hidden, t * h),
            new(Normed, t * h),
            new(AttentionOut, t * h),
            new(MlpOut, t * h),
            new(Logits, t * s.Vocab),
        };
        if (s.IsMla)
        {
            long heads = s.Heads, latent = s.KvLoraRank + s.QkRopeHeadDim;
            if (s.QLoraRank is int qLora)
                list.Add(new(QA, t * qLora));
            list.Add(new(Q, t * heads * s.QkHeadDim));
            list.Add(new(KvA, t * latent));
            list.Add(new(CompressedKv, t * s.KvLoraRank));
            list.Add(new(QNope, t * heads * s.QkNopeHeadDim));
            list.Add(new(QAbsorbed, t * heads * latent));
            list.Add(new(AttentionLatentOut, t * heads * s.KvLoraRank));
            list.Add(new(AttentionHeadsOut, t * heads * s.VHeadDim));
        }
        else
        {
            list.Add(new(Q, t * s.Heads * s.HeadDim));
            list.Add(new(AttentionHeadsOut, t * s.Heads * s.HeadDim));
        }

        // MLP scratch: the widest of the dense MLP, the shared experts and the routed experts (t * k rows).
        long mlp = Math.Max(t * s.Intermediate, 0);
        if (s.Experts > 0)
        {
            long k = s.ExpertsPerToken;
            mlp = Math.Max(mlp, Math.Max(t * s.MoeIntermediate * Math.Max(1, s.SharedExperts), t * k * s.MoeIntermediate));
            list.Add(new(RouterLogits, t * s.Experts));
            list.Add(new(ExpertIds, t * k, IsInt32: true));
            list.Add(new(ExpertWeights, t * k));
            list.Add(new(PermutedTokens, t * k * h));
            list.Add(new(ExpertOffsets, s.Experts + 1, IsInt32: true));
            list.Add(new(SourceSlots, t * k, IsInt32: true));
            list.Add(new(ExpertOut, t * k * h));
        }
        list.Add(new(MlpGate, mlp));
        list.Add(new(MlpUp, mlp));
        list.Add(new(MlpGateUp, 2 * mlp));
        list.Add(new(MlpActivation, mlp));
        return list;
    }

    /// <summary>Total bytes of <see cref="For"/>.</summary>
    public static long Bytes(ModelShape s, int tokens) => For(s, tokens).Sum(b => b.Bytes);
}
