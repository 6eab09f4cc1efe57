using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

public sealed partial class Ops
{
    /// <summary>
    /// Token embedding lookup: effectively computes <c>destination[i, :] = table[tokenIds[i], :]</c> (bfloat16 rows
    /// widened exactly to float32; INT4 rows dequantised to bf16 as <see cref="WeightMatrix"/> says, then widened).
    /// </summary>
    /// <param name="tokenIds">[n] token ids, each in [0, table.Rows); at least one.</param>
    /// <param name="table">[vocab = Rows, hidden = Cols] dense float32 or bfloat16 table, or INT4 (<see cref="WeightMatrix.Int4"/>), Count 1.</param>
    /// <param name="destination">[n, hidden] output (at least that long); must not overlap the table.</param>
    /// <remarks>
    /// The ids are device data, so they are checked where they are read, not here: an id outside [0, table.Rows) is
    /// skipped and recorded in the runtime's error word, and the next synchronisation throws
    /// <see cref="DeviceIndexException"/> naming it and its index (the destination is then unspecified); the reference
    /// records it through the same word.
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="table"/> is null.</exception>
    /// <exception cref="NotSupportedException">The table is FP8, or the backend does not implement the op.</exception>
    /// <exception cref="ArgumentException">A view is default or on another runtime, table is a stack, a length is wrong, or destination overlaps the table.</exception>
    public void Embedding(DeviceView<int> tokenIds, WeightMatrix table, DeviceTensor destination)
    {
        const string op = nameof(Embedding);
        if (table is null)
            ThrowHelper.ArgumentNull(op, nameof(table));
        if (table.ElementType == ElementType.Fp8E4M3)
            ThrowHelper.NotSupported(op, "table is FP8; an embedding table is dense float32 or bfloat16, or INT4.");
        CheckView(op, nameof(tokenIds), tokenIds, null);
        CheckWeight(op, nameof(table), table, tokenIds.Runtime);
        destination = Act(op, nameof(destination), destination, tokenIds.Runtime);
        if (table.Count != 1)
            ThrowHelper.Argument(op, nameof(table), $"table is a stack of {table.Count} matrices; an embedding table is one [vocab, hidden] matrix.");
        if (tokenIds.Length == 0)
            ThrowHelper.Argument(op, nameof(tokenIds), "tokenIds is empty: there are no tokens to embed.");
        if (tokenIds.Length > int.MaxValue)
            ThrowHelper.Argument(op, nameof(tokenIds), $"tokenIds has {tokenIds.Length} ids; at most {int.MaxValue} are supported.");
        long outputs = tokenIds.Length * table.Cols;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, outputs, SizeText.Of("n * hidden", tokenIds.Length, table.Cols));
        var dst = destination.Slice(0, outputs);
        OpChecks.Disjoint(op, nameof(destination), dst, nameof(table), DeviceTensor.FromView(table.FloatView));
        using var call = Dispatch(OpSignature.WithWeight(op, dst.ElementType, table), table);
        call.Backend.Embedding(tokenIds, table, dst);
    }
}
