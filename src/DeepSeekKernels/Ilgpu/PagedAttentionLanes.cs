using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Ilgpu;

/// <summary>16-byte chunks of a head row each lane of a paged attention lane group holds, as a type (1, 2, 4 or 8).</summary>
internal interface IChunksPerLane
{
    int Count { get; }
}

internal readonly struct OneChunk : IChunksPerLane
{
    public int Count => 1;
}

internal readonly struct TwoChunks : IChunksPerLane
{
    public int Count => 2;
}

internal readonly struct FourChunks : IChunksPerLane
{
    public int Count => 4;
}

internal readonly struct EightChunks : IChunksPerLane
{
    public int Count => 8;
}

/// <summary>A lane's raw chunks of one key or value row (chunk c is the row's 16-byte vector c x LPK + lane in group).</summary>
internal struct Raw8
{
    public Vec16 C0, C1, C2, C3, C4, C5, C6, C7;
}

/// <summary>A lane's chunks of one row as fp32 (q, the output accumulator, or an unpacked key or value row).</summary>
internal struct Chunks8
{
    public Lanes8 C0, C1, C2, C3, C4, C5, C6, C7;
}

/// <summary>One attention row (query, head) of a group in one lane: its pre-scaled q, output, running max (base 2) and sum.</summary>
internal struct AttentionRow
{
    public Chunks8 Q, O;
    public float M, L;
    public int Position;
}

/// <summary>
/// The per-lane arithmetic of the vectorised paged attention kernel. Every chunk count n is a compile-time constant (a type
/// parameter's Count), so the guards on n fold and a one-chunk kernel carries only C0; struct fields, not arrays, so the state
/// stays in registers.
/// </summary>
internal static class PagedAttentionLanes
{
    /// <summary>2^x: ex2.approx on CUDA (what exp2f compiles to; +0 for -inf), XMath elsewhere; exactly 0 for -inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp2(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("ex2.approx.ftz.f32 %0, %1;", out float result, x);
            return result;
        }
        return x == float.NegativeInfinity ? 0f : XMath.Exp2(x);
    }

    /// <summary>e^(m - reference) in base 2: exactly 1 where m is the reference (the maximum), so merges that keep it are exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Weight(float m, float reference) => m == reference ? 1f : Exp2(m - reference);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vec16 One(ArrayView<Vec16> rows, long at, int v, int count) => v < count ? rows[at + v] : default;

    /// <summary>The lane's n chunks of the row at vector <paramref name="at"/> (vectors past <paramref name="count"/> zero).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Raw8 Load(ArrayView<Vec16> rows, long at, int gl, int lpk, int n, int count)
    {
        Raw8 r = default;
        r.C0 = One(rows, at, gl, count);
        if (n > 1)
            r.C1 = One(rows, at, lpk + gl, count);
        if (n > 2)
        {
            r.C2 = One(rows, at, 2 * lpk + gl, count);
            r.C3 = One(rows, at, 3 * lpk + gl, count);
        }
        if (n > 4)
        {
            r.C4 = One(rows, at, 4 * lpk + gl, count);
            r.C5 = One(rows, at, 5 * lpk + gl, count);
            r.C6 = One(rows, at, 6 * lpk + gl, count);
            r.C7 = One(rows, at, 7 * lpk + gl, count);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Chunks8 Unpack<TPV>(Raw8 r, int n) where TPV : struct, IActivationVector
    {
        TPV pv = default;
        Chunks8 c = default;
        c.C0 = pv.Unpack(r.C0);
        if (n > 1)
            c.C1 = pv.Unpack(r.C1);
        if (n > 2)
        {
            c.C2 = pv.Unpack(r.C2);
            c.C3 = pv.Unpack(r.C3);
        }
        if (n > 4)
        {
            c.C4 = pv.Unpack(r.C4);
            c.C5 = pv.Unpack(r.C5);
            c.C6 = pv.Unpack(r.C6);
            c.C7 = pv.Unpack(r.C7);
        }
        return c;
    }

    /// <summary>Lane e of a chunk (the epilogue's dynamic index).</summary>
    public static float Lane(Lanes8 x, int e) => e switch
    {
        0 => x.F0, 1 => x.F1, 2 => x.F2, 3 => x.F3, 4 => x.F4, 5 => x.F5, 6 => x.F6, _ => x.F7,
    };

    public static Lanes8 WithLane(Lanes8 x, int e, float v)
    {
        switch (e)
        {
            case 0: x.F0 = v; break;
            case 1: x.F1 = v; break;
            case 2: x.F2 = v; break;
            case 3: x.F3 = v; break;
            case 4: x.F4 = v; break;
            case 5: x.F5 = v; break;
            case 6: x.F6 = v; break;
            default: x.F7 = v; break;
        }
        return x;
    }

    /// <summary>Chunk c (the prologue's and epilogue's dynamic index).</summary>
    public static Lanes8 Chunk(Chunks8 x, int c) => c switch
    {
        0 => x.C0, 1 => x.C1, 2 => x.C2, 3 => x.C3, 4 => x.C4, 5 => x.C5, 6 => x.C6, _ => x.C7,
    };

    public static Chunks8 WithChunk(Chunks8 x, int c, Lanes8 v)
    {
        switch (c)
        {
            case 0: x.C0 = v; break;
            case 1: x.C1 = v; break;
            case 2: x.C2 = v; break;
            case 3: x.C3 = v; break;
            case 4: x.C4 = v; break;
            case 5: x.C5 = v; break;
            case 6: x.C6 = v; break;
            default: x.C7 = v; break;
        }
        return x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot(Lanes8 a, Lanes8 b, int lanes)
    {
        float s = a.F0 * b.F0 + a.F1 * b.F1 + a.F2 * b.F2 + a.F3 * b.F3;
        if (lanes > 4)
            s += a.F4 * b.F4 + a.F5 * b.F5 + a.F6 * b.F6 + a.F7 * b.F7;
        return s;
    }

    /// <summary>The lane's part of q . k over its n chunks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(Chunks8 q, Chunks8 k, int n, int lanes)
    {
        float s = Dot(q.C0, k.C0, lanes);
        if (n > 1)
            s += Dot(q.C1, k.C1, lanes);
        if (n > 2)
            s += Dot(q.C2, k.C2, lanes) + Dot(q.C3, k.C3, lanes);
        if (n > 4)
            s += Dot(q.C4, k.C4, lanes) + Dot(q.C5, k.C5, lanes) + Dot(q.C6, k.C6, lanes) + Dot(q.C7, k.C7, lanes);
        return s;
    }

    /// <summary>Sum over the lpk lanes of a lane group (butterfly: every lane of the group gets it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GroupSum(float x, int lpk)
    {
        for (int off = lpk / 2; off > 0; off >>= 1)
            x += Warp.ShuffleXor(x, off);
        return x;
    }

    /// <summary>o * corr + pa * va + pb * vb per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Lanes8 Accumulate(Lanes8 o, float corr, float pa, Lanes8 va, float pb, Lanes8 vb, int lanes)
    {
        o.F0 = o.F0 * corr + pa * va.F0 + pb * vb.F0;
        o.F1 = o.F1 * corr + pa * va.F1 + pb * vb.F1;
        o.F2 = o.F2 * corr + pa * va.F2 + pb * vb.F2;
        o.F3 = o.F3 * corr + pa * va.F3 + pb * vb.F3;
        if (lanes > 4)
        {
            o.F4 = o.F4 * corr + pa * va.F4 + pb * vb.F4;
            o.F5 = o.F5 * corr + pa * va.F5 + pb * vb.F5;
            o.F6 = o.F6 * corr + pa * va.F6 + pb * vb.F6;
            o.F7 = o.F7 * corr + pa * va.F7 + pb * vb.F7;
        }
        return o;
    }

    /// <summary>
    /// One step of the online softmax for a row: two keys (a, b) of this lane group, their scores reduced over the group,
    /// masked (-inf) where invalid or past the row's position; one rescale per step.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static AttentionRow Step(AttentionRow r, Chunks8 ka, Chunks8 kb, Chunks8 va, Chunks8 vb, int keyA, int keyB, bool validA,
        bool validB, int lpk, int n, int lanes)
    {
        float sa = GroupSum(Dot(r.Q, ka, n, lanes), lpk);
        float sb = GroupSum(Dot(r.Q, kb, n, lanes), lpk);
        if (!validA || keyA > r.Position)
            sa = float.NegativeInfinity;
        if (!validB || keyB > r.Position)
            sb = float.NegativeInfinity;
        float mx = XMath.Max(r.M, XMath.Max(sa, sb));
        float reference = mx == float.NegativeInfinity ? 0f : mx;
        float corr = Weight(r.M, reference), pa = Weight(sa, reference), pb = Weight(sb, reference);
        r.M = mx;
        r.L = r.L * corr + (pa + pb);
        r.O.C0 = Accumulate(r.O.C0, corr, pa, va.C0, pb, vb.C0, lanes);
        if (n > 1)
            r.O.C1 = Accumulate(r.O.C1, corr, pa, va.C1, pb, vb.C1, lanes);
        if (n > 2)
        {
            r.O.C2 = Accumulate(r.O.C2, corr, pa, va.C2, pb, vb.C2, lanes);
            r.O.C3 = Accumulate(r.O.C3, corr, pa, va.C3, pb, vb.C3, lanes);
        }
        if (n > 4)
        {
            r.O.C4 = Accumulate(r.O.C4, corr, pa, va.C4, pb, vb.C4, lanes);
            r.O.C5 = Accumulate(r.O.C5, corr, pa, va.C5, pb, vb.C5, lanes);
            r.O.C6 = Accumulate(r.O.C6, corr, pa, va.C6, pb, vb.C6, lanes);
            r.O.C7 = Accumulate(r.O.C7, corr, pa, va.C7, pb, vb.C7, lanes);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Lanes8 MergeChunk(Lanes8 a, float ca, float cb, int off, int lanes)
    {
        a.F0 = a.F0 * ca + Warp.ShuffleXor(a.F0, off) * cb;
        a.F1 = a.F1 * ca + Warp.ShuffleXor(a.F1, off) * cb;
        a.F2 = a.F2 * ca + Warp.ShuffleXor(a.F2, off) * cb;
        a.F3 = a.F3 * ca + Warp.ShuffleXor(a.F3, off) * cb;
        if (lanes > 4)
        {
            a.F4 = a.F4 * ca + Warp.ShuffleXor(a.F4, off) * cb;
            a.F5 = a.F5 * ca + Warp.ShuffleXor(a.F5, off) * cb;
            a.F6 = a.F6 * ca + Warp.ShuffleXor(a.F6, off) * cb;
            a.F7 = a.F7 * ca + Warp.ShuffleXor(a.F7, off) * cb;
        }
        return a;
    }

    /// <summary>Merges a row's (m, l, o) with the lane group <paramref name="off"/> lanes away (the same lane of that group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static AttentionRow MergeLanes(AttentionRow r, int off, int n, int lanes)
    {
        float mo = Warp.ShuffleXor(r.M, off), lo = Warp.ShuffleXor(r.L, off);
        float mx = XMath.Max(r.M, mo);
        float reference = mx == float.NegativeInfinity ? 0f : mx;
        float ca = Weight(r.M, reference), cb = Weight(mo, reference);
        r.M = mx;
        r.L = r.L * ca + lo * cb;
        r.O.C0 = MergeChunk(r.O.C0, ca, cb, off, lanes);
        if (n > 1)
            r.O.C1 = MergeChunk(r.O.C1, ca, cb, off, lanes);
        if (n > 2)
        {
            r.O.C2 = MergeChunk(r.O.C2, ca, cb, off, lanes);
            r.O.C3 = MergeChunk(r.O.C3, ca, cb, off, lanes);
        }
        if (n > 4)
        {
            r.O.C4 = MergeChunk(r.O.C4, ca, cb, off, lanes);
            r.O.C5 = MergeChunk(r.O.C5, ca, cb, off, lanes);
            r.O.C6 = MergeChunk(r.O.C6, ca, cb, off, lanes);
            r.O.C7 = MergeChunk(r.O.C7, ca, cb, off, lanes);
        }
        return r;
    }

    /// <summary>A fresh split: no keys yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static AttentionRow Reset(AttentionRow r)
    {
        r.M = float.NegativeInfinity;
        r.L = 0f;
        r.O = default;
        return r;
    }
}
