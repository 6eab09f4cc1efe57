using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The device-side description of one forward step's sequences over a paged KV cache (FlashInfer's and vLLM's
/// metadata): which pages each sequence owns, how long it is, and where its new query tokens sit in the step's
/// concatenated tokens. Values live in device buffers that the host refreshes before each step, so a step captured
/// once can be replayed at the next position with new metadata; attention reads them where they are, checking each
/// (<see cref="DeviceIndexException"/> at the next synchronisation).
/// </summary>
/// <param name="BlockTable">[batch, maxPages] int32: page ids of each sequence, in position order (position p of sequence b
/// is slot p % pageSize of page BlockTable[b, p / pageSize]); entries past a sequence's pages are not read.</param>
/// <param name="SequenceLengths">[batch] int32: keys of each sequence after this step's append (its queries are the last ones).</param>
/// <param name="QueryStarts">[batch + 1] int32: cumulative offsets of each sequence's query tokens in q (0, n0, n0 + n1, ...).</param>
public readonly record struct PagedBatch(DeviceView<int> BlockTable, DeviceView<int> SequenceLengths, DeviceView<int> QueryStarts)
{
    /// <summary>Sequences in the step.</summary>
    public int Batch => (int)SequenceLengths.Length;

    /// <summary>Width of the block table: most pages a sequence may own.</summary>
    public int MaxPages => Batch == 0 ? 0 : (int)(BlockTable.Length / Batch);

    /// <summary>
    /// Scratch for the split-K partials of the attention ops (FlashInfer's caller-owned workspace), or default. Given, a
    /// backend never allocates for the call and stays within it: the hand-CUDA kernels split the context no further than
    /// it holds (their max_splits), ILGPU's kernels, whose splits are fixed by the block table's width, take the query rows
    /// in as many passes as it needs (each row's arithmetic unchanged, so results are bitwise those of one pass). So a
    /// step's memory is planned and fixed (a paged KV cache carves one of <see cref="WorkspaceBytes"/> from its arena),
    /// and a captured step can never need more. Default: each backend grows its own scratch to the largest call.
    /// Contents are not kept between calls; it must not overlap any operand.
    /// </summary>
    public DeviceView<int> Workspace { get; init; }

    /// <summary>Keys per split of the context that <see cref="WorkspaceBytes"/> plans for (ILGPU's split on a GPU, the hand kernels' unit).</summary>
    public const int WorkspaceSplitKeys = 256;

    /// <summary>Query rows <see cref="WorkspaceBytes"/> holds at the least, whatever is asked (so one row fits at any split size the backends use).</summary>
    public const int WorkspaceMinRows = 8;

    /// <summary>
    /// The most split partials <see cref="WorkspaceBytes"/> plans beyond <see cref="WorkspaceMinRows"/> rows: 256 MiB. A
    /// step of more rows than fit needs fewer splits to fill a GPU; the hand kernels then split less, ILGPU takes more passes.
    /// </summary>
    public const long WorkspaceCapBytes = 256L << 20;

    /// <summary>
    /// Bytes of a <see cref="Workspace"/> that holds the split partials of <paramref name="rows"/> query rows (at least
    /// <see cref="WorkspaceMinRows"/>) of <paramref name="qHeads"/> heads of <paramref name="vHeadDim"/> output elements
    /// over a block table of <paramref name="maxSequenceLength"/> keys in splits of <see cref="WorkspaceSplitKeys"/> keys
    /// (a float32 partial row and its (m, l) per split), but no more whole rows than fit in <see cref="WorkspaceCapBytes"/>
    /// unless that is fewer than 8, plus the metadata check's and tile map's fixed part for <paramref name="maxBatch"/>
    /// sequences; a multiple of 256 bytes (<see cref="WorkspaceRows"/> gives the rows and their size). A decode step of up to <paramref name="rows"/> sequences (within the cap) then runs in one
    /// pass on every backend, with as many splits as the hand kernels would choose.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    /// <exception cref="OverflowException">The size is 2^63 bytes or more.</exception>
    public static long WorkspaceBytes(int rows, int qHeads, int vHeadDim, int maxSequenceLength, int maxBatch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        var (planned, _, rowBytes) = WorkspaceRows(rows, qHeads, vHeadDim, maxSequenceLength);
        return DeviceArena.Align(checked(WorkspaceFixedBytes(maxBatch) + planned * rowBytes));
    }

    /// <summary>
    /// What <see cref="WorkspaceBytes"/> plans: the query rows whose partials it holds (max(8, min(rows, whole rows in
    /// <see cref="WorkspaceCapBytes"/>))), the splits of <see cref="WorkspaceSplitKeys"/> keys of the block table, and the
    /// bytes of one row's partials and (m, l) over them.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    /// <exception cref="OverflowException">A row's partials are 2^63 bytes or more.</exception>
    public static (long Rows, long Splits, long RowBytes) WorkspaceRows(int rows, int qHeads, int vHeadDim, int maxSequenceLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(qHeads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(vHeadDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequenceLength, 1);
        long splits = Ilgpu.PagedAttentionIlgpu.Plan(cuda: true, maxSequenceLength).Splits;
        long rowBytes = checked(qHeads * splits * (vHeadDim + 2L) * sizeof(float));
        return (Math.Max(WorkspaceMinRows, Math.Min(rows, WorkspaceCapBytes / rowBytes)), splits, rowBytes);
    }

    /// <summary>The part of a workspace the hand kernels keep for a step of <paramref name="batch"/> sequences besides the split
    /// partials (the metadata check's 256 bytes, the tile map of batch + 1 int32, 16-byte rounding), rounded up.</summary>
    internal static long WorkspaceFixedBytes(int batch) => DeviceArena.Align(512 + 4L * (batch + 1L));
}

/// <summary>The shape of one paged attention call, derived and checked by the op API.</summary>
internal readonly record struct PagedAttentionShape(
    int Tokens, int Batch, int MaxPages, int Pages, int PageSize, int QHeads, int KvHeads, int HeadDim, int VHeadDim, float Scale);

public sealed partial class Ops
{
    /// <summary>
    /// Writes new keys (and values) into their cache slots: effectively computes, for every token t,
    /// <c>keyPages[slot / pageSize, slot % pageSize, :] = keys[t, :]</c> with <c>slot = slotMapping[t]</c> (and the same for
    /// values), rounding to the pages' element type (bf16 pages round to nearest even). A slot outside the pool is
    /// skipped and recorded in the runtime's error word (<see cref="DeviceIndexException"/> at the next synchronisation).
    /// For MLA, keys are the latent rows [kv_lora_rank | roped k_pe] and there are no values.
    /// </summary>
    /// <param name="keys">[tokens, keyWidth] f32 or bf16 (rows may be strided).</param>
    /// <param name="values">[tokens, valueWidth] f32 or bf16, or default when the cache has no value pages.</param>
    /// <param name="slotMapping">[tokens] int32 slot of each token.</param>
    /// <param name="keyPages">[pages, pageSize, keyWidth] f32 or bf16, contiguous: one layer of the pool.</param>
    /// <param name="valuePages">[pages, pageSize, valueWidth], or default (exactly when values is).</param>
    /// <exception cref="ArgumentException">A tensor is default, on another runtime, of the wrong shape or layout, or overlaps another.</exception>
    /// <exception cref="NotSupportedException">An element type is not f32 or bf16, or the backend lacks the op.</exception>
    public void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages)
    {
        const string op = nameof(KvAppend);
        TensorChecks.Check(op, nameof(keys), keys, Runtime, 2, TensorChecks.Activation);
        var runtime = keys.Runtime;
        TensorChecks.CheckOptional(op, nameof(values), values, runtime, 2, TensorChecks.Activation);
        CheckView(op, nameof(slotMapping), slotMapping, runtime);
        TensorChecks.Check(op, nameof(keyPages), keyPages, runtime, 3, TensorChecks.Activation);
        TensorChecks.CheckOptional(op, nameof(valuePages), valuePages, runtime, 3, TensorChecks.Activation);
        if (values.IsNull != valuePages.IsNull)
            ThrowHelper.Argument(op, values.IsNull ? nameof(values) : nameof(valuePages),
                "values and valuePages come together: pass both (keys and values) or neither (an MLA latent cache).");
        TensorChecks.NotEmpty(op, nameof(keys), keys, 0, "tokens");
        long tokens = keys.Dim(0);
        OpChecks.Length(op, nameof(slotMapping), slotMapping.Length, tokens, "keys' tokens");
        CheckPages(op, nameof(keyPages), keyPages, keys.Dim(1), "keys' width");
        if (!values.IsNull)
        {
            TensorChecks.Dim(op, nameof(values), values, 0, tokens, "keys' tokens");
            CheckPages(op, nameof(valuePages), valuePages, values.Dim(1), "values' width");
            if (valuePages.Dim(0) != keyPages.Dim(0) || valuePages.Dim(1) != keyPages.Dim(1))
                ThrowHelper.Argument(op, nameof(valuePages), $"valuePages is {valuePages.ShapeText}; it must have keyPages' pages and page size {keyPages.ShapeText}.");
            TensorChecks.Disjoint(op, nameof(valuePages), valuePages, nameof(keyPages), keyPages);
            TensorChecks.Disjoint(op, nameof(valuePages), valuePages, nameof(keys), keys);
            TensorChecks.Disjoint(op, nameof(valuePages), valuePages, nameof(values), values);
            TensorChecks.Disjoint(op, nameof(keyPages), keyPages, nameof(values), values);
        }
        TensorChecks.Disjoint(op, nameof(keyPages), keyPages, nameof(keys), keys);
        using var call = Dispatch(new OpSignature(op, keys.ElementType) { StridedRows = Strided(keys, values), Pages = keyPages.ElementType });
        call.Backend.KvAppend(keys, values, slotMapping, keyPages, valuePages);
    }

    /// <summary>
    /// Causal grouped-query attention of a batch of sequences over a paged cache (prefill chunks and decode tokens mixed):
    /// effectively computes, for sequence b with n = QueryStarts[b + 1] - QueryStarts[b] queries and L = SequenceLengths[b]
    /// keys, its i-th query (row QueryStarts[b] + i of q, at position p = L - n + i) and query head h (kv head h / g,
    /// g = qHeads / kvHeads): <c>score[j] = scale * (q . k[j])</c> for positions j = 0 .. p, <c>w = softmax(score)</c> in
    /// float32 with the maximum subtracted, <c>destination = sum_j w[j] * v[j]</c>, where key j of the sequence is
    /// <c>keyPages[BlockTable[b, j / pageSize], j % pageSize, kvHead]</c>. Device-held metadata is checked where read: a
    /// page outside the pool, a length the block table row cannot hold or shorter than the sequence's queries, or query
    /// offsets out of order are recorded in the error word and that sequence is skipped.
    /// </summary>
    /// <param name="q">[tokens, qHeads, headDim] f32 or bf16, contiguous.</param>
    /// <param name="keyPages">[pages, pageSize, kvHeads * headDim] f32 or bf16, contiguous.</param>
    /// <param name="valuePages">[pages, pageSize, kvHeads * vHeadDim] f32 or bf16, contiguous, of keyPages' element type.</param>
    /// <param name="batch">The step's metadata (<see cref="PagedBatch"/>).</param>
    /// <param name="destination">[tokens, qHeads, vHeadDim] f32, contiguous; must not overlap any input.</param>
    /// <param name="kvHeads">Key/value heads; qHeads is a multiple of it.</param>
    /// <param name="scale">Score scale, e.g. 1/sqrt(headDim); finite.</param>
    public void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        int kvHeads, float scale)
    {
        const string op = nameof(PagedAttention);
        TensorChecks.Check(op, nameof(q), q, Runtime, 3, TensorChecks.Activation);
        var runtime = q.Runtime;
        TensorChecks.Check(op, nameof(keyPages), keyPages, runtime, 3, TensorChecks.Activation);
        TensorChecks.Check(op, nameof(valuePages), valuePages, runtime, 3, keyPages.ElementType);
        CheckBatch(op, batch, runtime);
        TensorChecks.Check(op, nameof(destination), destination, runtime, 3, TensorChecks.Activation);
        OpChecks.AtLeast1(op, nameof(kvHeads), kvHeads);
        OpChecks.Finite(op, nameof(scale), scale);
        TensorChecks.NotEmpty(op, nameof(q), q, 0, "tokens");
        TensorChecks.NotEmpty(op, nameof(q), q, 1, "heads");
        TensorChecks.NotEmpty(op, nameof(q), q, 2, "head elements");
        int qHeads = (int)q.Dim(1), headDim = (int)q.Dim(2);
        if (qHeads % kvHeads != 0)
            ThrowHelper.OutOfRange(op, nameof(kvHeads), kvHeads, $"q's {qHeads} heads are not a multiple of kvHeads = {kvHeads}.");
        CheckPages(op, nameof(keyPages), keyPages, (long)kvHeads * headDim, SizeText.Of("kvHeads * headDim", kvHeads, headDim));
        if (valuePages.Dim(0) != keyPages.Dim(0) || valuePages.Dim(1) != keyPages.Dim(1) || valuePages.Dim(2) % kvHeads != 0 || valuePages.Dim(2) == 0)
            ThrowHelper.Argument(op, nameof(valuePages), $"valuePages is {valuePages.ShapeText}; it needs keyPages' pages and page size {keyPages.ShapeText} and kvHeads = {kvHeads} value heads.");
        int vHeadDim = (int)(valuePages.Dim(2) / kvHeads);
        CheckPages(op, nameof(valuePages), valuePages, valuePages.Dim(2), "kvHeads * vHeadDim");
        TensorChecks.Dim(op, nameof(destination), destination, 0, q.Dim(0), "q's tokens");
        TensorChecks.Dim(op, nameof(destination), destination, 1, qHeads, "q's heads");
        TensorChecks.Dim(op, nameof(destination), destination, 2, vHeadDim, "the value head size");
        CheckAttentionOverlaps(op, q, keyPages, valuePages, destination);
        CheckWorkspaceOverlaps(op, batch, q, keyPages, valuePages, destination);
        using var call = Dispatch(new OpSignature(op, Activations(q, destination)) { HeadDim = headDim, Pages = keyPages.ElementType });
        call.Backend.PagedAttention(q, keyPages, valuePages, batch, destination,
            Shape(q, keyPages, batch, kvHeads, vHeadDim, scale));
    }

    /// <summary>
    /// Multi-head latent attention of a batch of sequences over a paged latent cache (DeepSeek-V2/V3 as FlashMLA runs
    /// it, weights absorbed): <see cref="PagedAttention"/> with one kv head whose keys are the whole cache rows
    /// [latent | rope] and whose values are their first latentDim elements, for any number of query heads. The
    /// output stays in latent space (W_UV is applied after).
    /// </summary>
    /// <param name="q">[tokens, heads, latentDim + ropeDim] f32, contiguous: absorbed q_nope, then roped q_pe.</param>
    /// <param name="latentPages">[pages, pageSize, latentDim + ropeDim] f32 or bf16, contiguous.</param>
    /// <param name="batch">The step's metadata (<see cref="PagedBatch"/>).</param>
    /// <param name="destination">[tokens, heads, latentDim] f32, contiguous; latentDim is taken from it.</param>
    /// <param name="scale">Score scale (DeepSeek's softmax_scale); finite.</param>
    public void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination, float scale)
    {
        const string op = nameof(PagedMlaAttention);
        TensorChecks.Check(op, nameof(q), q, Runtime, 3, TensorChecks.Activation);
        var runtime = q.Runtime;
        TensorChecks.Check(op, nameof(latentPages), latentPages, runtime, 3, TensorChecks.Activation);
        CheckBatch(op, batch, runtime);
        TensorChecks.Check(op, nameof(destination), destination, runtime, 3, TensorChecks.Activation);
        OpChecks.Finite(op, nameof(scale), scale);
        TensorChecks.NotEmpty(op, nameof(q), q, 0, "tokens");
        TensorChecks.NotEmpty(op, nameof(q), q, 1, "heads");
        TensorChecks.NotEmpty(op, nameof(q), q, 2, "head elements");
        CheckPages(op, nameof(latentPages), latentPages, q.Dim(2), "q's latentDim + ropeDim");
        TensorChecks.Dim(op, nameof(destination), destination, 0, q.Dim(0), "q's tokens");
        TensorChecks.Dim(op, nameof(destination), destination, 1, q.Dim(1), "q's heads");
        long latentDim = destination.Dim(2);
        if (latentDim < 1 || latentDim > q.Dim(2))
            ThrowHelper.Argument(op, nameof(destination), $"destination is {destination.ShapeText}; its latentDim must be 1 .. q's {q.Dim(2)} row elements.");
        CheckAttentionOverlaps(op, q, latentPages, latentPages, destination);
        CheckWorkspaceOverlaps(op, batch, q, latentPages, default, destination);
        using var call = Dispatch(new OpSignature(op, Activations(q, destination)) { HeadDim = (int)q.Dim(2), Pages = latentPages.ElementType });
        call.Backend.PagedMlaAttention(q, latentPages, batch, destination, Shape(q, latentPages, batch, 1, (int)latentDim, scale));
    }

    static PagedAttentionShape Shape(DeviceTensor q, DeviceTensor keyPages, PagedBatch batch, int kvHeads, int vHeadDim, float scale) =>
        new((int)q.Dim(0), batch.Batch, batch.MaxPages, (int)keyPages.Dim(0), (int)keyPages.Dim(1), (int)q.Dim(1), kvHeads,
            (int)q.Dim(2), vHeadDim, scale);

    static void CheckPages(string op, string name, DeviceTensor pages, long width, SizeText what)
    {
        if (!pages.IsContiguous)
            ThrowHelper.Argument(op, name, $"{name} {pages.ShapeText} with strides {pages.StridesText} is not contiguous; a page pool is.");
        TensorChecks.NotEmpty(op, name, pages, 0, "pages");
        TensorChecks.NotEmpty(op, name, pages, 1, "slots per page");
        TensorChecks.Dim(op, name, pages, 2, width, what);
        if (pages.Dim(0) * pages.Dim(1) > int.MaxValue)
            ThrowHelper.Argument(op, name, $"{name} {pages.ShapeText} has more than {int.MaxValue} slots.");
    }

    void CheckBatch(string op, PagedBatch batch, DeviceRuntime runtime)
    {
        CheckView(op, "batch.BlockTable", batch.BlockTable, runtime);
        CheckView(op, "batch.SequenceLengths", batch.SequenceLengths, runtime);
        CheckView(op, "batch.QueryStarts", batch.QueryStarts, runtime);
        if (batch.Batch < 1)
            ThrowHelper.Argument(op, "batch", "batch.SequenceLengths is empty: a step has at least one sequence.");
        OpChecks.Length(op, "batch.QueryStarts", batch.QueryStarts.Length, batch.Batch + 1L, "batch + 1");
        if (batch.BlockTable.Length == 0 || batch.BlockTable.Length % batch.Batch != 0)
            ThrowHelper.Argument(op, "batch.BlockTable", $"batch.BlockTable has {batch.BlockTable.Length} entries, not [batch = {batch.Batch}, maxPages >= 1].");
        if (batch.Workspace.IsNull)
            return;
        CheckView(op, "batch.Workspace", batch.Workspace, runtime);
        if (batch.Workspace.Start % 4 != 0)
            ThrowHelper.Argument(op, "batch.Workspace", $"batch.Workspace starts {batch.Workspace.Start * 4} bytes into its buffer; it must start at a multiple of 16 bytes.");
        OpChecks.Disjoint(op, "batch.Workspace", batch.Workspace, "batch.BlockTable", batch.BlockTable);
        OpChecks.Disjoint(op, "batch.Workspace", batch.Workspace, "batch.SequenceLengths", batch.SequenceLengths);
        OpChecks.Disjoint(op, "batch.Workspace", batch.Workspace, "batch.QueryStarts", batch.QueryStarts);
    }

    /// <summary>The workspace must not overlap q, the pages or the destination (it is written).</summary>
    static void CheckWorkspaceOverlaps(string op, PagedBatch batch, DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, DeviceTensor destination)
    {
        if (batch.Workspace.IsNull)
            return;
        var workspace = DeviceTensor.FromView(batch.Workspace);
        TensorChecks.Disjoint(op, "batch.Workspace", workspace, nameof(q), q);
        TensorChecks.Disjoint(op, "batch.Workspace", workspace, nameof(keyPages), keyPages);
        if (!valuePages.IsNull)
            TensorChecks.Disjoint(op, "batch.Workspace", workspace, nameof(valuePages), valuePages);
        TensorChecks.Disjoint(op, "batch.Workspace", workspace, nameof(destination), destination);
    }

    static void CheckAttentionOverlaps(string op, DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, DeviceTensor destination)
    {
        TensorChecks.Disjoint(op, nameof(destination), destination, nameof(q), q);
        TensorChecks.Disjoint(op, nameof(destination), destination, nameof(keyPages), keyPages);
        TensorChecks.Disjoint(op, nameof(destination), destination, nameof(valuePages), valuePages);
        if (!destination.IsContiguous || !q.IsContiguous)
            ThrowHelper.Argument(op, destination.IsContiguous ? nameof(q) : nameof(destination), "q and destination must be contiguous [tokens, heads, head elements].");
    }
}
