using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// The fast CPU backend (issue 14): on ILGPU's CPU accelerator, whose buffers are host memory used in place, with the
/// weights read straight from the checkpoint's mapping. Its own kernels run what a forward pass spends its time in: Linear
/// and its fused and grouped forms (<see cref="CpuLinear"/>: SIMD GEMV for decode, cache-blocked GEMM for prefill, FP8 and
/// INT4 dequantised in registers) and paged GQA/MLA attention over f32/bf16 pages read in place (<see cref="CpuPagedAttention"/>,
/// after the reference's checks of the batch's metadata), on a fixed pool of threads (<see cref="CpuThreadPool"/>). Every other op runs the
/// reference's host code on the same buffers (no staging on the CPU accelerator; bf16 activations widened into per-thread
/// float32 images, <see cref="CpuF32Images"/>, rather than host images made per call), so the backend supports every signature
/// the op API accepts and its results are the reference's wherever it has no kernel of its own. It is separate from the
/// reference, which stays the plain specification and oracle.
/// </summary>
internal sealed class CpuBackend : KernelBackend
{
    static readonly ReferenceBackend Reference = ReferenceBackend.Instance;

    public CpuBackend(DeviceRuntime runtime, CpuThreadPool pool, CpuInt4Dot int4Dot = CpuInt4Dot.Float32)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        if (runtime.IsCuda)
            throw new NotSupportedException("The CPU backend runs on host memory: create its runtime with DevicePreference.Cpu (ILGPU's CPU accelerator), not on a CUDA GPU.");
        Pool = pool;
        Int4Dot = int4Dot;
        _pagedRunner = (q, keys, values, pageType, table, sequences, y, shape, mla) =>
            CpuPagedAttention.Run(Pool, q, keys, values, pageType, table, sequences, y, shape, mla);
    }

    // made once: a delegate per call would be garbage on every decode step
    readonly ReferenceBackend.PagedRunner _pagedRunner;

    /// <summary>The threads the kernels run on.</summary>
    public CpuThreadPool Pool { get; }

    /// <summary>How the decode products multiply activations with INT4 weights.</summary>
    public CpuInt4Dot Int4Dot { get; }

    public override Backend Kind => Backend.Cpu;

    /// <summary>Every signature: what has no kernel of its own runs the reference's host code, in place.</summary>
    public override bool Supports(in OpSignature op, out string? reason)
    {
        reason = null;
        return true;
    }

    public override void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        CpuLinear.Linear(Pool, x, w, bias, y, Int4Dot);

    public override void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y) =>
        CpuLinear.LinearSiluMul(Pool, x, w, y, Int4Dot);

    public override void GroupedLinear(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        CpuLinear.Grouped(Pool, x, offsets, w, y, m, siluMul: false, Int4Dot);

    public override void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        CpuLinear.Grouped(Pool, x, offsets, w, y, m, siluMul: true, Int4Dot);

    // ---- the reference's host code, in place ----

    // RmsNorm, Rope (f32), KvAppend and Embedding (f32 rows): the reference's host code on the views in place, called here
    // without the reference's host images (objects made per call for a GPU's staging), so that a decode step allocates nothing.

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y, DeviceView<T> r,
        int rows, int cols, float eps)
    {
        x.Runtime.Synchronize();
        if (residual.IsNull)
            RmsNormReference.RmsNorm<T, TW>(InPlace(x), InPlace(w), InPlace(y), cols, eps);
        else
            RmsNormReference.AddRmsNorm<T, TW>(InPlace(x), InPlace(residual), InPlace(w), InPlace(r), InPlace(y), cols, eps);
    }

    static unsafe Span<T> InPlace<T>(DeviceView<T> view) where T : unmanaged => new((void*)view.Pointer, checked((int)view.Length));

    public override void RmsNormRows<TW>(DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps) => Reference.RmsNormRows(x, w, y, eps);

    public override void DequantizeFp8(WeightMatrix w, DeviceView<float> y) => Reference.DequantizeFp8(w, y);

    /// <summary>
    /// HeadwiseLinear: <see cref="CpuHeadwise"/> (the heads over the pool, each weight read in place); bf16 x widened into
    /// float32 scratch and a bf16 y rounded once from float32 scratch, as the reference does.
    /// </summary>
    public override unsafe void HeadwiseLinear(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose)
    {
        x.Runtime.Synchronize();
        int tokens = (int)x.Dim(0), heads = (int)x.Dim(1), inDim = (int)x.Dim(2), outDim = (int)y.Dim(2);
        float* xs = (float*)x.Pointer, ys = (float*)y.Pointer;
        long xToken = x.Stride(0), xHead = x.Stride(1), yToken = y.Stride(0), yHead = y.Stride(1);
        if (x.ElementType == ElementType.BF16)
        {
            xs = CpuGemm.Scratch(ref t_headwiseIn, (long)tokens * heads * inDim);
            for (int t = 0; t < tokens; t++)
                for (int h = 0; h < heads; h++)
                    BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((BFloat16*)x.Pointer + t * xToken + h * xHead, inDim),
                        new Span<float>(xs + ((long)t * heads + h) * inDim, inDim));
            (xToken, xHead) = ((long)heads * inDim, inDim);
        }
        if (y.ElementType == ElementType.BF16)
            ys = CpuGemm.Scratch(ref t_headwiseOut, (long)tokens * heads * outDim);
        CpuHeadwise.Run(Pool, ReferenceBackend.HostWeight.InPlace(w), xs, xToken, xHead, ys,
            y.ElementType == ElementType.BF16 ? (long)heads * outDim : yToken, y.ElementType == ElementType.BF16 ? outDim : yHead, tokens, transpose, CpuIsa.Level);
        if (y.ElementType == ElementType.BF16)
            for (int t = 0; t < tokens; t++)
                for (int h = 0; h < heads; h++)
                    BFloat16Conversions.FromSingle(new ReadOnlySpan<float>(ys + ((long)t * heads + h) * outDim, outDim),
                        new Span<BFloat16>((BFloat16*)y.Pointer + t * yToken + h * yHead, outDim));
    }

    [ThreadStatic] static float[]? t_headwiseIn, t_headwiseOut; // bf16 HeadwiseLinear's float32 x and y

    /// <summary>The reference's rows (bf16 y: through a float32 image, <see cref="CpuF32Images"/>); a mapped table's rows leave the page tables once read.</summary>
    public override unsafe void Embedding(DeviceView<int> ids, WeightMatrix table, DeviceTensor y)
    {
        ids.Runtime.Synchronize();
        var hostIds = InPlace(ids);
        if (ReferenceBackend.OutOfRange(ids.Runtime, DeviceErrorSite.EmbeddingIds, hostIds, table.Rows))
            return;
        nint output = CpuF32Images.Widen(y, 0);
        EmbeddingRows(hostIds, table, output);
        CpuF32Images.Narrow(y, 0);
    }

    static unsafe void EmbeddingRows(ReadOnlySpan<int> hostIds, WeightMatrix table, nint y)
    {
        var data = ReferenceBackend.HostWeight.InPlace(table);
        bool mapped = table.ElementType switch
        {
            ElementType.F32 => MappedRows.Applies(table.F32),
            ElementType.BF16 => MappedRows.Applies(table.BF16),
            _ => false,
        };
        if (!mapped)
        {
            LinearReference.Embedding(hostIds, data, y);
            return;
        }
        // the reference's rows, each taken out of the page tables once read (MappedRows: fault-around maps its neighbours)
        long rowBytes = (long)table.Cols * table.ElementType.Size(), tableBytes = rowBytes * table.Rows;
        for (int i = 0; i < hostIds.Length; i++)
        {
            data.DecodeRows(hostIds[i], 1, new Span<float>((float*)y + (long)i * table.Cols, table.Cols));
            MappedRows.Release(data.Data, tableBytes, data.Data + (nint)(hostIds[i] * rowBytes), rowBytes);
        }
    }

    public override void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads, int headStride, int ropeOffset,
        RopeLayout layout)
    {
        x.Runtime.Synchronize();
        var hostPositions = InPlace(positions);
        if (ReferenceBackend.OutOfRange(x.Runtime, DeviceErrorSite.RopePositions, hostPositions, table.MaxPositions))
            return;
        RopeReference.Rope(CpuF32Images.Widen(x, 0), hostPositions, table.HostCos, table.HostSin, table.MaxPositions, table.RotaryDim / 2, heads,
            headStride, ropeOffset, layout);
        CpuF32Images.Narrow(x, 0);
    }

    public override void Attention(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor y, AttentionShape shape) =>
        Reference.Attention(q, k, v, y, shape);

    public override void MlaAttention(DeviceTensor q, DeviceTensor cache, DeviceTensor y, AttentionShape shape) => Reference.MlaAttention(q, cache, y, shape);

    public override void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages)
    {
        var runtime = keys.Runtime;
        runtime.Synchronize();
        var slots = InPlace(slotMapping);
        if (ReferenceBackend.OutOfRange(runtime, DeviceErrorSite.KvAppendSlots, slots, keyPages.Dim(0) * keyPages.Dim(1)))
            return;
        Append(keys, keyPages, slots);
        if (!values.IsNull)
            Append(values, valuePages, slots);
    }

    /// <summary>Row t of [tokens, width] f32 or bf16 rows (any row stride) into pool slot slots[t], as the reference's KvAppend writes it.</summary>
    static unsafe void Append(DeviceTensor rows, DeviceTensor pages, ReadOnlySpan<int> slots)
    {
        int width = (int)rows.Dim(1);
        bool f32 = rows.ElementType == ElementType.F32;
        Span<float> widened = f32 ? default : width <= 4096 ? stackalloc float[width] : new float[width];
        fixed (float* row = widened)
        {
            for (int t = 0; t < slots.Length; t++)
            {
                nint address = rows.Pointer + (nint)(t * rows.Stride(0) * rows.ElementSize);
                if (!f32)
                    BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((void*)address, width), widened);
                PagedKvReference.WriteRow(f32 ? (float*)address : row, pages.Pointer, pages.ElementType, slots[t], width);
            }
        }
    }

    /// <summary>Paged GQA: the reference's metadata checks, then <see cref="CpuPagedAttention"/> over every valid sequence, pages in place.</summary>
    public override void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        ReferenceBackend.Paged(q, keyPages, valuePages, batch, destination, shape, mla: false, _pagedRunner);

    /// <summary>Paged MLA over the latent cache, as <see cref="PagedAttention"/>.</summary>
    public override void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination, PagedAttentionShape shape) =>
        ReferenceBackend.Paged(q, latentPages, latentPages, batch, destination, shape, mla: true, _pagedRunner);

    // The small ops below run the reference's float32 host code on the buffers in place (f32) or on per-thread float32
    // images of bf16 tensors (CpuF32Images), with the reference's device-value checks: no per-call host images (a bf16
    // deepseek_v3 decode step allocated 55 KB a token in them, an f32 one 4.7 KB in MoE's).

    /// <summary>Columns copied (every MLA layer splits its rows with it).</summary>
    public override void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns, int yOffset, int width, int rows)
    {
        x.Runtime.Synchronize();
        ElementwiseReference.CopyColumns(CpuF32Images.Widen(x, 0), xColumns, xOffset, CpuF32Images.Widen(y, 1), yColumns, yOffset, width, rows);
        CpuF32Images.Narrow(y, 1);
    }

    public override void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate)
    {
        x.Runtime.Synchronize();
        ElementwiseReference.SiluAndMul(CpuF32Images.Widen(x, 0), CpuF32Images.Widen(y, 1), rows, intermediate);
        CpuF32Images.Narrow(y, 1);
    }

    public override void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength)
    {
        x.Runtime.Synchronize();
        nint hx = CpuF32Images.Widen(x, 0);
        var (hy, ySlot) = CpuF32Images.WidenOrSame(y, 1, x, 0, hx);
        ElementwiseReference.Softmax(hx, hy, rows, rowLength);
        CpuF32Images.Narrow(y, ySlot);
    }

    public override void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z)
    {
        x.Runtime.Synchronize();
        nint hx = CpuF32Images.Widen(x, 0);
        var (hy, ySlot) = CpuF32Images.WidenOrSame(y, 1, x, 0, hx);
        var (hz, zSlot) = TensorChecks.Of(z, x) == Overlap.Exact ? (hx, 0) : CpuF32Images.WidenOrSame(z, 2, y, ySlot, hy);
        ElementwiseReference.Add(hx, hy, hz, (int)x.Length);
        CpuF32Images.Narrow(z, zSlot);
    }

    public override void Scale(DeviceTensor x, float factor, DeviceTensor y)
    {
        x.Runtime.Synchronize();
        nint hx = CpuF32Images.Widen(x, 0);
        var (hy, ySlot) = CpuF32Images.WidenOrSame(y, 1, x, 0, hx);
        ElementwiseReference.Scale(hx, factor, hy, (int)x.Length);
        CpuF32Images.Narrow(y, ySlot);
    }

    public override void MoeRoute(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights, int tokens,
        MoeRouting routing)
    {
        logits.Runtime.Synchronize();
        MoeReference.Route(CpuF32Images.Widen(logits, 0), bias.IsNull ? 0 : bias.Pointer, ids.Pointer, weights.Pointer, tokens, routing);
    }

    public override void MoePermute(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets, DeviceView<int> slotRows,
        int tokens, int topK, int hidden, int experts, DeviceView<int> workspace)
    {
        x.Runtime.Synchronize();
        var expertIds = InPlace(ids);
        if (ReferenceBackend.OutOfRange(x.Runtime, DeviceErrorSite.MoePermuteIds, expertIds, experts))
            return;
        MoeReference.Permute(CpuF32Images.Widen(x, 0), expertIds, CpuF32Images.Widen(permuted, 1), InPlace(offsets), InPlace(slotRows), topK, hidden, experts);
        CpuF32Images.Narrow(permuted, 1);
    }

    public override void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights, DeviceTensor y, int tokens,
        int topK, int hidden, bool accumulate)
    {
        expertOutput.Runtime.Synchronize();
        var rows = InPlace(slotRows);
        // a bad row is reported (the lowest index) and only its token is skipped, as the kernels do
        ReferenceBackend.OutOfRange(expertOutput.Runtime, DeviceErrorSite.MoeCombineRows, rows, rows.Length);
        MoeReference.Combine(CpuF32Images.Widen(expertOutput, 0), rows, weights.Pointer, CpuF32Images.Widen(y, 1), tokens, topK, hidden, accumulate);
        CpuF32Images.Narrow(y, 1);
    }

    public override void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales) =>
        Reference.QuantizeFp8Activations(x, q, scales);

    public override void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        Reference.LinearW8A8(qx, xScales, w, bias, y);

    public override void GroupedLinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        Reference.GroupedLinearW8A8(qx, xScales, offsets, w, y, m);
}
