using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// DeepSeek's multi-head latent attention (V2, V3), in the absorbed form that FlashMLA-style kernels run:
/// the cache holds one compressed row per position, c = kv_a_layernorm(x W_kv_a)[:kv_lora_rank] followed by
/// the roped shared key part k_pe, and each head's nope query is mapped into the latent space
/// (q_latent[h] = W_uk[h]^T q_nope[h]) so that scores are q_latent . c + q_pe . k_pe; the attention output
/// in latent space is mapped back per head by W_uv[h], then o_proj. Equal to the textbook form
/// (k_nope, v = kv_b_proj(c)) up to fp32 rounding.
/// </summary>
internal sealed class MlaAttentionBlock : IAttentionBlock
{
    readonly ModelShape _s;
    readonly WeightMatrix? _qA, _qB, _q;
    readonly DeviceBuffer<float>? _qANorm;
    readonly WeightMatrix _kvA, _uk, _uv, _o;
    readonly DeviceBuffer<float> _kvANorm;
    readonly RopeTable _rope;
    readonly RopeLayout _layout;
    readonly float _scale;

    public MlaAttentionBlock(ModelShape shape, WeightMatrix? qA, DeviceBuffer<float>? qANorm, WeightMatrix? qB, WeightMatrix? q,
        WeightMatrix kvA, DeviceBuffer<float> kvANorm, WeightMatrix uk, WeightMatrix uv, WeightMatrix o,
        RopeTable rope, RopeLayout layout, float scale)
    {
        (_s, _qA, _qANorm, _qB, _q, _kvA, _kvANorm, _uk, _uv, _o, _rope, _layout, _scale) =
            (shape, qA, qANorm, qB, q, kvA, kvANorm, uk, uv, o, rope, layout, scale);
    }

    public void Forward(Ops ops, Workspace ws, in ForwardStep step, int layer, DeviceTensor input, DeviceTensor output)
    {
        int heads = _s.Heads, nope = _s.QkNopeHeadDim, rope = _s.QkRopeHeadDim, qk = _s.QkHeadDim;
        int latent = _s.KvLoraRank, row = latent + rope;
        long t = step.Tokens, th = t * heads;
        var positions = step.Positions;

        // q [t, heads, nope + rope], roped in its last rope elements
        var q = ws.A(Q, th * qk);
        if (_qA != null)
        {
            var qA = ws.A(QA, t * _s.QLoraRank!.Value);
            Projection.Linear(ops, ws, input, _qA, default, qA);
            ops.RmsNorm(qA, _qANorm!.View, qA, _s.QLoraRank!.Value, _s.RmsNormEps);
            Projection.Linear(ops, ws, qA, _qB!, default, q);
        }
        else
        {
            Projection.Linear(ops, ws, input, _q!, default, q);
        }
        ops.Rope(q, positions, _rope, heads, qk, nope, _layout);

        // cache rows [t, latent + rope] = [kv_a_layernorm(c) | rope(k_pe)]: normed and roped in place, then appended to
        // the layer's pages
        var kv = ws.A(KvA, t * row);
        Projection.Linear(ops, ws, input, _kvA, default, kv);
        var latentPart = kv.Reshape(t, row).Columns(0, latent);
        if (ops.Supports(new OpSignature(nameof(Ops.RmsNorm), kv.ElementType) { Weight = ElementType.F32, StridedRows = true }))
        {
            ops.RmsNorm(latentPart, _kvANorm.View, latentPart, latent, _s.RmsNormEps);
        }
        else
        {
            // a backend whose RMSNorm reads dense rows only: the latent part out, normed, and back
            var c = ws.A(CompressedKv, t * latent);
            ops.CopyColumns(kv, row, 0, c, latent, 0, latent, (int)t);
            ops.RmsNorm(c, _kvANorm.View, c, latent, _s.RmsNormEps);
            ops.CopyColumns(c, latent, 0, kv, row, 0, latent, (int)t);
        }
        ops.Rope(kv, positions, _rope, 1, row, latent, _layout);
        var latentPages = step.Cache.KeyPages(layer);
        ops.KvAppend(kv.Reshape(t, row), default, step.Slots, latentPages, default);

        // absorbed query [t, heads, latent + rope] = [W_uk^T q_nope | q_pe]: W_uk^T reads q_nope where it lies in q and
        // writes straight into the absorbed query's latent columns
        var qFull = ws.A(QAbsorbed, th * row);
        var qHeads = q.Reshape(t, heads, qk);
        var qAbsorbed = qFull.Reshape(t, heads, row);
        ops.HeadwiseLinear(qHeads.Columns(0, nope), _uk, qAbsorbed.Columns(0, latent), transpose: true);
        ops.CopyColumns(q, qk, nope, qFull, row, latent, rope, (int)th);

        var outLatent = ws.A(AttentionLatentOut, th * latent);
        ops.PagedMlaAttention(qAbsorbed, latentPages, step.Batch, outLatent.Reshape(t, heads, latent), _scale);
        var outHeads = ws.A(AttentionHeadsOut, th * _s.VHeadDim);
        ops.HeadwiseLinear(outLatent, _uv, outHeads);
        Projection.Linear(ops, ws, outHeads, _o, default, output);
    }

    public void Dispose() { }
}
