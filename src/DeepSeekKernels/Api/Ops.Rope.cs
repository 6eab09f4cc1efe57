using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// Rotary position embedding, in place. Each head of x is [headStride] elements, and its rotary part is the
    /// elements [ropeOffset, ropeOffset + table.RotaryDim) (so q_pe inside DeepSeek's [q_nope | q_pe] heads, or a
    /// partial rotary prefix). With d = RotaryDim, c = table.Cos[positions[t], i] and s = table.Sin[positions[t], i],
    /// a pair (a, b) with angle index i becomes (a * c - b * s, b * c + a * s); effectively computes, per token t and
    /// head h, with v = x[t, h, ropeOffset ..]:
    /// <list type="bullet">
    /// <item><see cref="RopeLayout.HalfSplit"/> (Llama, Qwen2; <c>q * cos + rotate_half(q) * sin</c>): pairs
    /// (v[i], v[i + d/2]) for i &lt; d/2;</item>
    /// <item><see cref="RopeLayout.Interleaved"/> (DeepSeek): pairs (v[2i], v[2i + 1]) for i &lt; d/2 — the complex
    /// form <c>(v[2i] + i v[2i+1]) * e^(i angle)</c> of DeepSeek's own code and of transformers' DeepSeek-V2.</item>
    /// </list>
    /// </summary>
    /// <remarks>
    /// transformers' DeepSeek-V3 (<c>apply_rotary_pos_emb_interleave</c>) first de-interleaves the rotary part
    /// (v[0], v[2], ..., v[1], v[3], ...) and then applies <c>rotate_half</c>, so its output is that permutation of
    /// this op's Interleaved output. Attention scores are the same: q and k get the same permutation, and a dot
    /// product does not change when both vectors are permuted alike. Positions are device data, checked where
    /// they are read: the reference checks all of them before it writes and throws
    /// <see cref="ArgumentOutOfRangeException"/> (ParamName "positions") naming the first position outside
    /// [0, table.MaxPositions) and its index.
    /// </remarks>
    /// <param name="x">[tokens, heads, headStride] activations, rotated in place; at least one token.</param>
    /// <param name="positions">[tokens] the position of each token, each in [0, table.MaxPositions).</param>
    /// <param name="table">The cos/sin tables (on this runtime, not disposed).</param>
    /// <param name="heads">Heads per token (at least 1).</param>
    /// <param name="headStride">Elements per head (at least 1).</param>
    /// <param name="ropeOffset">Where the rotary part starts inside a head; ropeOffset + table.RotaryDim &lt;= headStride.</param>
    /// <param name="layout">Which elements pair up.</param>
    /// <exception cref="ArgumentNullException"><paramref name="table"/> is null.</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="table"/> is disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size or offset is out of range (a position outside the table is device
    /// data: recorded in the error word, <see cref="DeviceIndexException"/> at the next synchronisation).</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, or a length is wrong.</exception>
    public void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int heads, int headStride, int ropeOffset,
        RopeLayout layout)
    {
        const string op = nameof(Rope);
        if (table is null)
            ThrowHelper.ArgumentNull(op, nameof(table));
        ObjectDisposedException.ThrowIf(table.IsDisposed, table);
        x = Act(op, nameof(x), x, null);
        CheckView(op, nameof(positions), positions, x.Runtime);
        var expected = Runtime ?? x.Runtime;
        if (!ReferenceEquals(table.Runtime, expected))
            ThrowHelper.Argument(op, nameof(table), "table belongs to a different DeviceRuntime than " + (Runtime != null ? "this Ops." : "x."));
        OpChecks.AtLeast1(op, nameof(heads), heads);
        OpChecks.AtLeast1(op, nameof(headStride), headStride);
        OpChecks.NotNegative(op, nameof(ropeOffset), ropeOffset);
        if (!Enum.IsDefined(layout))
            ThrowHelper.OutOfRange(op, nameof(layout), layout, $"layout {layout} is not a RopeLayout.");
        if ((long)ropeOffset + table.RotaryDim > headStride)
            ThrowHelper.OutOfRange(op, nameof(ropeOffset), ropeOffset,
                $"the rotary part [ropeOffset, ropeOffset + RotaryDim) = [{ropeOffset}, {ropeOffset + table.RotaryDim}) does not fit in a head of headStride = {headStride}.");
        int tokens = OpChecks.Rows(op, nameof(x), x.Length, (long)heads * headStride, SizeText.Of("heads * headStride", heads, headStride));
        OpChecks.Length(op, nameof(positions), positions.Length, tokens, "one per token");
        OpChecks.Disjoint(op, nameof(x), x, "table.Cos", DeviceTensor.FromView(table.Cos));
        OpChecks.Disjoint(op, nameof(x), x, "table.Sin", DeviceTensor.FromView(table.Sin));
        using var call = Dispatch(new OpSignature(op, x.ElementType));
        call.Backend.Rope(x, positions, table, tokens, heads, headStride, ropeOffset, layout);
    }
}
