using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using ILGPU.Runtime;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Reference;

/// <summary>
/// The reference implementations behind the op API; it implements every op. Host spans are used as they are;
/// device views are used in place on ILGPU's CPU accelerator (its buffers are host memory) and staged through
/// pinned host arrays on a GPU (copied down, computed, outputs copied back), so the reference can stand in for any
/// op a GPU backend lacks (<see cref="Ops.WithReferenceFallback"/>). Every call first waits for the runtime's
/// stream, so it sees the results of kernels enqueued before it, and runs synchronously.
/// </summary>
internal sealed class ReferenceBackend : KernelBackend
{
    public static readonly ReferenceBackend Instance = new();

    public override Backend Kind => Backend.Reference;

    /// <summary>The reference runs every signature the op API accepts.</summary>
    public override bool Supports(in OpSignature op, out string? reason)
    {
        reason = null;
        return true;
    }

    // Bytes copied between device and host memory by this thread's reference calls (0 on ILGPU's CPU accelerator,
    // whose buffers are host memory and are used in place). Only ever grows; a caller takes the difference around a
    // call. Per thread, because a call stages on the thread that made it, so concurrent callers do not mix.
    [ThreadStatic]
    static long t_stagedBytes;

    /// <summary>
    /// Bytes the reference has copied between device and host memory on this thread so far: every host copy of a
    /// device view, tensor or weight (<see cref="HostView{T}"/>, <see cref="HostTensor"/>, <see cref="HostWeight"/>)
    /// and every write back. The difference across one call is what that call staged (Ops' fallback report).
    /// </summary>
    public static long StagedBytesOnThisThread => t_stagedBytes;

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps)
    {
        var runtime = x.Runtime;
        runtime.Synchronize();
        var hx = HostView.Of(x);
        var hw = HostView.Of(w);
        var hy = HostView.Of(y);
        if (residual.IsNull)
        {
            RmsNormReference.RmsNorm<T, TW>(hx.Span, hw.Span, hy.Span, cols, eps);
            hy.WriteBack();
            return;
        }
        var hres = HostView.Of(residual);
        var hr = HostView.Of(r);
        RmsNormReference.AddRmsNorm<T, TW>(hx.Span, hres.Span, hw.Span, hr.Span, hy.Span, cols, eps);
        hr.WriteBack();
        hy.WriteBack();
    }

    public override void RmsNormRows<TW>(DeviceTensor x, DeviceView<TW> w, DeviceTensor y, float eps)
    {
        x.Runtime.Synchronize();
        var hx = new HostTensor(x);
        var hy = TensorChecks.Of(y, x) == Overlap.Exact ? hx : new HostTensor(y);
        var hw = HostView.Of(w);
        if (x.ElementType == ElementType.BF16)
            NormRows<BFloat16, TW>(hx, hy, hw.Span, eps);
        else
            NormRows<float, TW>(hx, hy, hw.Span, eps);
        hy.WriteBack();
    }

    /// <summary>Each row on its own, exactly as a contiguous call computes it.</summary>
    static unsafe void NormRows<T, TW>(HostTensor x, HostTensor y, ReadOnlySpan<TW> w, float eps) where T : unmanaged where TW : unmanaged
    {
        int rows = (int)x.Tensor.Dim(0), cols = (int)x.Tensor.Dim(1);
        for (int r = 0; r < rows; r++)
        {
            var xr = new ReadOnlySpan<T>((T*)x.Address + r * x.Tensor.Stride(0), cols);
            var yr = new Span<T>((T*)y.Address + r * y.Tensor.Stride(0), cols);
            RmsNormReference.RmsNorm<T, TW>(xr, w, yr, cols, eps);
        }
    }

    public override void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hb = HostView.OfOptional(bias);
        var hy = new HostF32(y);
        var hw = new HostWeight(w);
        LinearReference.Run([new LinearReference.Product(hw.Data, hx.Address, x.Stride(0), (int)x.Dim(0), hb?.Address ?? 0, hy.Address, y.Stride(0))]);
        KeepAlive(hx, hb, hw);
        hy.WriteBack();
    }

    public override void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = new HostF32(y);
        var hw = new HostWeight(w);
        LinearReference.LinearSiluMul(hw.Data, hx.Address, x.Stride(0), (int)x.Dim(0), hy.Address, y.Stride(0));
        KeepAlive(hx, hw);
        hy.WriteBack();
    }

    public override void DequantizeFp8(WeightMatrix w, DeviceView<float> y)
    {
        y.Runtime.Synchronize();
        var hy = HostView.Of(y);
        var hw = new HostWeight(w);
        LinearReference.Dequantize(hw.Data, hy.Address);
        KeepAlive(hw);
        hy.WriteBack();
    }

    public override void HeadwiseLinear(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = new HostF32(y);
        var hw = new HostWeight(w);
        var layout = new LinearReference.HeadwiseLayout((int)x.Dim(0), x.Stride(0), x.Stride(1), y.Stride(0), y.Stride(1));
        if (transpose)
            LinearReference.HeadwiseTransposed(hw.Data, hx.Address, hy.Address, layout);
        else
            LinearReference.Headwise(hw.Data, hx.Address, hy.Address, layout);
        KeepAlive(hx, hw);
        hy.WriteBack();
    }

    public override void Embedding(DeviceView<int> ids, WeightMatrix table, DeviceTensor y)
    {
        ids.Runtime.Synchronize();
        var hids = HostView.Of(ids);
        if (OutOfRange(ids.Runtime, DeviceErrorSite.EmbeddingIds, hids.Span, table.Rows))
            return;
        var hy = new HostF32(y);
        // on a GPU, stage only the rows that are used (a vocabulary is large)
        if (table.Runtime.IsCuda)
        {
            var span = hy.Span;
            for (int i = 0; i < hids.Span.Length; i++)
            {
                var row = RowOf(table, hids.Span[i]);
                row.Data.DecodeRows(0, 1, span.Slice(i * table.Cols, table.Cols));
                GC.KeepAlive(row);
            }
            hy.WriteBack();
            return;
        }
        var hw = new HostWeight(table);
        LinearReference.Embedding(hids.Span, hw.Data, hy.Address);
        GC.KeepAlive(hw);
        hy.WriteBack();
    }

    /// <summary>Row <paramref name="id"/> of a dense or INT4 [vocab, hidden] table, as a one-row host weight.</summary>
    static HostWeight RowOf(WeightMatrix table, int id)
    {
        int cols = table.Cols;
        switch (table.ElementType)
        {
            case ElementType.F32:
                return new HostWeight(WeightMatrix.Dense(table.F32.Slice((long)id * cols, cols), 1, cols));
            case ElementType.BF16:
                return new HostWeight(WeightMatrix.Dense(table.BF16.Slice((long)id * cols, cols), 1, cols));
            case ElementType.Int4:
                int groups = table.GroupsPerRow;
                return new HostWeight(WeightMatrix.Int4(table.Int4Data.Slice((long)id * (cols / 2), cols / 2),
                    table.Int4Scales.Slice((long)id * groups, groups), table.Int4Zeros.Slice((long)id * groups, groups), 1, cols, table.GroupSize));
            default:
                throw new NotSupportedException($"Embedding: a table stored as {table.ElementType.Name()} has no row-wise lookup; the table is dense or INT4.");
        }
    }

    public override void Rope(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads,
        int headStride, int ropeOffset, RopeLayout layout)
    {
        x.Runtime.Synchronize();
        var hp = HostView.Of(positions);
        if (OutOfRange(x.Runtime, DeviceErrorSite.RopePositions, hp.Span, table.MaxPositions))
            return;
        var hx = new HostF32(x);
        RopeReference.Rope(hx.Address, hp.Span, table.HostCos, table.HostSin, table.MaxPositions, table.RotaryDim / 2, heads,
            headStride, ropeOffset, layout);
        KeepAlive(hp);
        hx.WriteBack();
    }

    public override void Attention(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor y, AttentionShape shape)
    {
        q.Runtime.Synchronize();
        var hq = new HostF32(q);
        var hk = new HostF32(k);
        var hv = new HostF32(v);
        var hy = new HostF32(y);
        AttentionReference.Attention(hq.Address, hk.Address, (long)shape.KvHeads * shape.HeadDim, hv.Address,
            (long)shape.KvHeads * shape.VHeadDim, hy.Address, shape);
        KeepAlive(hq, hk, hv);
        hy.WriteBack();
    }

    public override void MlaAttention(DeviceTensor q, DeviceTensor cache, DeviceTensor y, AttentionShape shape)
    {
        q.Runtime.Synchronize();
        var hq = new HostF32(q);
        var hc = new HostF32(cache);
        var hy = new HostF32(y);
        // k = the whole cache row, v = its first latentDim elements: both rows of HeadDim = latentDim + ropeDim
        AttentionReference.Attention(hq.Address, hc.Address, shape.HeadDim, hc.Address, shape.HeadDim, hy.Address, shape);
        KeepAlive(hq, hc);
        hy.WriteBack();
    }

    public override unsafe void KvAppend(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages,
        DeviceTensor valuePages)
    {
        var runtime = keys.Runtime;
        runtime.Synchronize();
        var hs = HostView.Of(slotMapping);
        long slots = keyPages.Dim(0) * keyPages.Dim(1);
        if (OutOfRange(runtime, DeviceErrorSite.KvAppendSlots, hs.Span, slots))
            return;
        void Append(DeviceTensor rows, DeviceTensor pages)
        {
            var hr = new HostTensor(rows);
            var hp = new HostTensor(pages);
            int width = (int)rows.Dim(1);
            var row = new float[width];
            for (int t = 0; t < hs.Span.Length; t++)
            {
                RowAsFloat(hr, t, row);
                fixed (float* x = row)
                    PagedKvReference.WriteRow(x, hp.Address, pages.ElementType, hs.Span[t], width);
            }
            hp.WriteBack();
        }
        Append(keys, keyPages);
        if (!values.IsNull)
            Append(values, valuePages);
    }

    public override void PagedAttention(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch,
        DeviceTensor destination, PagedAttentionShape shape) =>
        Paged(q, keyPages, valuePages, batch, destination, shape, mla: false);

    public override void PagedMlaAttention(DeviceTensor q, DeviceTensor latentPages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape shape) =>
        Paged(q, latentPages, latentPages, batch, destination, shape, mla: true);

    /// <summary>
    /// The sequences of a paged batch whose metadata passed the checks, and a runner that attends them all (the CPU
    /// backend's kernel); q and y are float32 host addresses, the pages host memory in place.
    /// </summary>
    internal delegate void PagedRunner(nint q, nint keyPages, nint valuePages, ElementType pageType, ReadOnlySpan<int> blockTable,
        ReadOnlySpan<Cpu.CpuPagedSequence> sequences, nint y, PagedAttentionShape s, bool mla);

    // the valid sequences handed to a runner: the calling thread's, grown and kept (no allocation per call)
    [ThreadStatic]
    static Cpu.CpuPagedSequence[]? t_valid;

    /// <summary>
    /// PagedAttention / PagedMlaAttention: the batch's device-held metadata read and checked (a bad value is reported
    /// through the error word and skips its sequence, or the whole call for bad query offsets), then each valid sequence
    /// attended by the reference, or all of them at once by <paramref name="runner"/> when one is given.
    /// </summary>
    internal static void Paged(DeviceTensor q, DeviceTensor keyPages, DeviceTensor valuePages, PagedBatch batch, DeviceTensor destination,
        PagedAttentionShape s, bool mla, PagedRunner? runner = null)
    {
        var runtime = q.Runtime;
        runtime.Synchronize();
        var table = HostSpan(batch.BlockTable);
        var lengths = HostSpan(batch.SequenceLengths);
        var starts = HostSpan(batch.QueryStarts);
        var (tableSite, lengthSite, startSite) = mla
            ? (DeviceErrorSite.MlaBlockTable, DeviceErrorSite.MlaLengths, DeviceErrorSite.MlaQueryStarts)
            : (DeviceErrorSite.AttentionBlockTable, DeviceErrorSite.AttentionLengths, DeviceErrorSite.AttentionQueryStarts);
        if (OutOfRange(runtime, startSite, starts, s.Tokens + 1L) || Decreasing(runtime, startSite, starts))
            return;
        // float32 q and y on the CPU accelerator: used in place, no host images; the CPU backend (a runner) widens bf16 q
        // and y into its per-thread images instead of new ones
        HostF32? hq = null, hy = null;
        HostTensor? hk = null, hv = null;
        nint qAddress = q.Pointer, keyAddress = keyPages.Pointer, valueAddress = valuePages.Pointer, yAddress = destination.Pointer;
        bool images = runner != null && !runtime.IsCuda;
        if (images)
        {
            qAddress = Cpu.CpuF32Images.Widen(q, 0);
            yAddress = Cpu.CpuF32Images.Widen(destination, 1);
        }
        else if (runtime.IsCuda || q.ElementType != ElementType.F32 || destination.ElementType != ElementType.F32)
        {
            hq = new HostF32(q);
            hk = new HostTensor(keyPages);
            hv = mla ? hk : new HostTensor(valuePages);
            hy = new HostF32(destination);
            (qAddress, keyAddress, valueAddress, yAddress) = (hq.Address, hk.Address, hv.Address, hy.Address);
        }
        long qRow = (long)s.QHeads * s.HeadDim * sizeof(float), yRow = (long)s.QHeads * s.VHeadDim * sizeof(float);
        long tableLength = (long)s.MaxPages * s.PageSize;
        var valid = runner == null ? null : t_valid is { } kept && kept.Length >= s.Batch ? kept : t_valid = new Cpu.CpuPagedSequence[s.Batch];
        int validCount = 0;
        for (int b = 0; b < s.Batch; b++)
        {
            int count = starts[b + 1] - starts[b], length = lengths[b];
            if (length < count || length > tableLength)
            {
                runtime.Errors.Report(lengthSite, b, length, tableLength + 1);
                continue;
            }
            if (count == 0)
                continue;
            var pages = table.Slice(b * s.MaxPages, (length + s.PageSize - 1) / s.PageSize);
            if (OutOfRange(runtime, tableSite, pages, s.Pages, b * s.MaxPages))
                continue;
            if (valid != null)
                valid[validCount++] = new Cpu.CpuPagedSequence(starts[b], count, length, b * s.MaxPages);
            else
                PagedKvReference.Sequence(qAddress + (nint)(starts[b] * qRow), keyAddress, valueAddress, keyPages.ElementType, pages,
                    length, count, yAddress + (nint)(starts[b] * yRow), s, mla);
        }
        if (runner != null && validCount > 0)
            runner(qAddress, keyAddress, valueAddress, keyPages.ElementType, table, valid.AsSpan(0, validCount), yAddress, s, mla);
        KeepAlive(hq, hk, hv);
        hy?.WriteBack();
        if (images)
            Cpu.CpuF32Images.Narrow(destination, 1);
    }

    public override unsafe void QuantizeFp8Activations(DeviceTensor x, DeviceView<Float8E4M3> q, DeviceView<float> scales)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hq = HostView.Of(q);
        var hs = HostView.Of(scales);
        int m = (int)x.Dim(0), cols = (int)x.Dim(1), blocks = (cols + Fp8ActivationReference.Block - 1) / Fp8ActivationReference.Block;
        for (int i = 0; i < m; i++)
            Fp8ActivationReference.QuantizeRow(new ReadOnlySpan<float>((float*)hx.Address + i * x.Stride(0), cols),
                hq.Span.Slice(i * cols, cols), hs.Span.Slice(i * blocks, blocks));
        hq.WriteBack();
        hs.WriteBack();
    }

    public override unsafe void LinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        y.Runtime.Synchronize();
        var hq = HostView.Of(qx);
        var hs = HostView.Of(xScales);
        var hb = HostView.OfOptional(bias);
        var hw = new HostWeight(w);
        var hy = new HostF32(y);
        Fp8ActivationReference.LinearW8A8(hq.Span, hs.Span, (int)y.Dim(0), hw.Data, hb?.Address ?? 0, (float*)hy.Address, y.Stride(0));
        KeepAlive(hb, hw);
        hy.WriteBack();
    }

    public override unsafe void GroupedLinearW8A8(DeviceView<Float8E4M3> qx, DeviceView<float> xScales, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m)
    {
        y.Runtime.Synchronize();
        var ho = HostView.Of(offsets);
        var o = ho.Span;
        var site = DeviceErrorSite.GroupedLinearW8A8Offsets;
        if (OutOfRange(y.Runtime, site, o, m + 1) || Decreasing(y.Runtime, site, o))
            return;
        var hq = HostView.Of(qx);
        var hs = HostView.Of(xScales);
        var hy = new HostF32(y);
        int cols = w.Cols, blocks = w.ScaleCols;
        long stride = y.Stride(0);
        // each expert's rows through LinearW8A8's routine; only the experts that have rows are staged
        for (int e = 0; e < w.Count; e++)
        {
            int start = o[e], rows = o[e + 1] - o[e];
            if (rows == 0)
                continue;
            var hw = new HostWeight(w.Matrix(e));
            Fp8ActivationReference.LinearW8A8(hq.Span.Slice(start * cols, rows * cols), hs.Span.Slice(start * blocks, rows * blocks), rows,
                hw.Data, 0, (float*)hy.Address + start * stride, stride);
            KeepAlive(hw);
        }
        hy.WriteBack();
    }

    /// <summary>Row <paramref name="row"/> of a [rows, width] f32 or bf16 tensor (any row stride) as float32.</summary>
    static unsafe void RowAsFloat(HostTensor tensor, int row, Span<float> destination)
    {
        var t = tensor.Tensor;
        nint address = tensor.Address + (nint)(row * t.Stride(0) * t.ElementSize);
        if (t.ElementType == ElementType.F32)
            new ReadOnlySpan<float>((void*)address, destination.Length).CopyTo(destination);
        else
            BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((void*)address, destination.Length), destination);
    }

    public override void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns,
        int yOffset, int width, int rows)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = new HostF32(y);
        ElementwiseReference.CopyColumns(hx.Address, xColumns, xOffset, hy.Address, yColumns, yOffset, width, rows);
        KeepAlive(hx);
        hy.WriteBack();
    }

    public override void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = new HostF32(y);
        ElementwiseReference.SiluAndMul(hx.Address, hy.Address, rows, intermediate);
        KeepAlive(hx);
        hy.WriteBack();
    }

    public override void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = HostF32.SameOrOf(y, hx);
        ElementwiseReference.Softmax(hx.Address, hy.Address, rows, rowLength);
        KeepAlive(hx);
        hy.WriteBack();
    }

    public override void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = HostF32.SameOrOf(y, hx);
        var hz = HostF32.SameOrOf(z, hx, hy);
        ElementwiseReference.Add(hx.Address, hy.Address, hz.Address, (int)x.Length);
        KeepAlive(hx, hy);
        hz.WriteBack();
    }

    public override void Scale(DeviceTensor x, float factor, DeviceTensor y)
    {
        x.Runtime.Synchronize();
        var hx = new HostF32(x);
        var hy = HostF32.SameOrOf(y, hx);
        ElementwiseReference.Scale(hx.Address, factor, hy.Address, (int)x.Length);
        KeepAlive(hx);
        hy.WriteBack();
    }

    public override void MoeRoute(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights,
        int tokens, MoeRouting routing)
    {
        logits.Runtime.Synchronize();
        var hl = new HostF32(logits);
        var hb = HostView.OfOptional(bias);
        var hi = HostView.Of(ids);
        var hw = HostView.Of(weights);
        MoeReference.Route(hl.Address, hb?.Address ?? 0, hi.Address, hw.Address, tokens, routing);
        KeepAlive(hl, hb);
        hi.WriteBack();
        hw.WriteBack();
    }

    public override void MoePermute(DeviceTensor x, DeviceView<int> ids, DeviceTensor permuted, DeviceView<int> offsets,
        DeviceView<int> slotRows, int tokens, int topK, int hidden, int experts, DeviceView<int> workspace)
    {
        x.Runtime.Synchronize();
        var hi = HostView.Of(ids);
        if (OutOfRange(x.Runtime, DeviceErrorSite.MoePermuteIds, hi.Span, experts))
            return;
        var hx = new HostF32(x);
        var hp = new HostF32(permuted);
        var ho = HostView.Of(offsets);
        var hs = HostView.Of(slotRows);
        MoeReference.Permute(hx.Address, hi.Span, hp.Address, ho.Span, hs.Span, topK, hidden, experts);
        KeepAlive(hx);
        hp.WriteBack();
        ho.WriteBack();
        hs.WriteBack();
    }

    public override void GroupedLinear(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        Grouped(x, offsets, w, y, m, siluMul: false);

    public override void GroupedLinearSiluMul(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m) =>
        Grouped(x, offsets, w, y, m, siluMul: true);

    void Grouped(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m, bool siluMul)
    {
        x.Runtime.Synchronize();
        var ho = HostView.Of(offsets);
        var o = ho.Span;
        var site = siluMul ? DeviceErrorSite.GroupedLinearSiluMulOffsets : DeviceErrorSite.GroupedLinearOffsets;
        if (OutOfRange(x.Runtime, site, o, m + 1) || Decreasing(x.Runtime, site, o))
            return;
        var hx = new HostF32(x);
        var hy = new HostF32(y);
        // stage only the experts that have rows: a GPU-resident expert stack can be far larger than host memory allows
        var used = new List<(int, WeightData)>();
        var keep = new List<HostWeight>();
        for (int e = 0; e < w.Count; e++)
        {
            if (o[e + 1] == o[e])
                continue;
            var matrix = new HostWeight(w.Matrix(e));
            keep.Add(matrix);
            used.Add((e, matrix.Data));
        }
        LinearReference.Grouped(used, o, hx.Address, hy.Address, y.Stride(0), siluMul);
        KeepAlive(hx, keep);
        hy.WriteBack();
    }

    public override void MoeCombine(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights,
        DeviceTensor y, int tokens, int topK, int hidden, bool accumulate)
    {
        expertOutput.Runtime.Synchronize();
        var hs = HostView.Of(slotRows);
        // a bad row is reported (the lowest index) and only its token is skipped, as the kernels do
        OutOfRange(expertOutput.Runtime, DeviceErrorSite.MoeCombineRows, hs.Span, hs.Span.Length);
        var he = new HostF32(expertOutput);
        var hw = HostView.Of(weights);
        var hy = new HostF32(y);
        MoeReference.Combine(he.Address, hs.Span, hw.Address, hy.Address, tokens, topK, hidden, accumulate);
        KeepAlive(he, hw);
        hy.WriteBack();
    }

    /// <summary>
    /// Device-held indices, checked where they are read: the first value outside [0, <paramref name="bound"/>) is
    /// recorded in the runtime's error word (<see cref="DeviceErrors"/>, thrown at the next synchronisation) and the op
    /// is skipped, as a kernel skips it; true when that happened.
    /// </summary>
    internal static bool OutOfRange(DeviceRuntime runtime, DeviceErrorSite site, ReadOnlySpan<int> values, long bound, long firstIndex = 0)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] < 0 || values[i] >= bound)
            {
                runtime.Errors.Report(site, firstIndex + i, values[i], bound);
                return true;
            }
        }
        return false;
    }

    /// <summary>Offsets that must not decrease: the first that does is recorded as out of order.</summary>
    internal static bool Decreasing(DeviceRuntime runtime, DeviceErrorSite site, ReadOnlySpan<int> values)
    {
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] < values[i - 1])
            {
                runtime.Errors.Report(site, i, values[i], values.Length, outOfOrder: true);
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Keeps host copies alive until the reference that reads them through raw addresses has returned (a pinned
    /// array that is no longer referenced may be collected, even while its address is in use).
    /// </summary>
    static void KeepAlive(params ReadOnlySpan<object?> hostCopies)
    {
        foreach (var copy in hostCopies)
            GC.KeepAlive(copy);
    }

    /// <summary>A device view's elements as a host span: in place on the CPU accelerator (no allocation), else a pinned copy.</summary>
    static unsafe Span<T> HostSpan<T>(DeviceView<T> view) where T : unmanaged =>
        view.Runtime.IsCuda ? HostView.Of(view).Span : new Span<T>((void*)view.Pointer, checked((int)view.Length));

    /// <summary>The host view of <paramref name="view"/>, reusing an input's when it is exactly that input (in place).</summary>
    static HostView<float> SameOrOf(DeviceView<float> view, DeviceView<float> input, HostView<float> inputHost,
        DeviceView<float>? other = null, HostView<float>? otherHost = null)
    {
        if (Overlaps.Of(view, input) == Overlap.Exact)
            return inputHost;
        if (other is DeviceView<float> o && Overlaps.Of(view, o) == Overlap.Exact)
            return otherHost!;
        return HostView.Of(view);
    }

    /// <summary>
    /// A host span over a device view: the view's own memory on the CPU accelerator, else a pinned copy (so its
    /// address is stable for the pointer-based references).
    /// </summary>
    sealed class HostView<T> where T : unmanaged
    {
        readonly DeviceView<T> _view;
        readonly T[]? _copy;

        public HostView(DeviceView<T> view)
        {
            if (view.Length > int.MaxValue)
                throw new NotSupportedException($"The reference backend handles views of at most {int.MaxValue} elements (got {view.Length}).");
            _view = view;
            if (view.Runtime.IsCuda)
            {
                _copy = GC.AllocateUninitializedArray<T>((int)view.Length, pinned: true);
                view.CopyToHost(_copy);
                t_stagedBytes += view.Length * Unsafe.SizeOf<T>();
            }
        }

        public unsafe Span<T> Span => _copy ?? new Span<T>((void*)_view.Pointer, (int)_view.Length);

        /// <summary>The address of the first element (stable: device memory of the CPU accelerator, or a pinned array).</summary>
        public unsafe nint Address => _copy == null
            ? _view.Pointer
            : (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_copy));

        /// <summary>Copies an output back to the device (a no-op when the span is the view's own memory).</summary>
        public void WriteBack()
        {
            if (_copy == null)
                return;
            _view.CopyFromHost(_copy);
            t_stagedBytes += _view.Length * Unsafe.SizeOf<T>();
        }
    }

    /// <summary>
    /// A host address for a tensor: the tensor's own memory on the CPU accelerator, else a pinned copy of the bytes its
    /// elements span (copied back whole by <see cref="WriteBack"/>).
    /// </summary>
    sealed unsafe class HostTensor
    {
        readonly byte[]? _copy;

        public HostTensor(DeviceTensor tensor)
        {
            Tensor = tensor;
            if (!tensor.Runtime.IsCuda)
                return;
            var (begin, end) = tensor.ByteSpan;
            if (end - begin > int.MaxValue)
                throw new NotSupportedException($"The reference backend stages at most {int.MaxValue} bytes of a tensor (got {end - begin}).");
            _copy = GC.AllocateUninitializedArray<byte>((int)(end - begin), pinned: true);
            if (_copy.Length > 0)
            {
                tensor.Allocation!.Memory.AsRawArrayView(begin, end - begin).CopyToCPU(tensor.Runtime.Stream, ref _copy[0], _copy.Length);
                tensor.Runtime.Stream.Synchronize();
                t_stagedBytes += _copy.Length;
            }
        }

        public DeviceTensor Tensor { get; }

        /// <summary>Address of element [0, ...].</summary>
        public nint Address => _copy == null ? Tensor.Pointer : (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_copy));

        public void WriteBack()
        {
            if (_copy == null || _copy.Length == 0)
                return;
            Tensor.Allocation!.Memory.AsRawArrayView(Tensor.ByteSpan.Begin, _copy.Length).CopyFromCPU(Tensor.Runtime.Stream, ref _copy[0], _copy.Length);
            Tensor.Runtime.Stream.Synchronize();
            t_stagedBytes += _copy.Length;
        }
    }

    /// <summary>
    /// A float32 host image of an f32 or bf16 tensor, in the tensor's own element layout (strides kept): f32 is the
    /// tensor's memory (or <see cref="HostTensor"/>'s copy); bf16 is widened exactly into a pinned float array, and
    /// <see cref="WriteBack"/> rounds it back to bf16 (nearest even), so a bf16 output is rounded once, after the
    /// float32 arithmetic. Elements in the span that the op does not write round-trip unchanged.
    /// </summary>
    sealed unsafe class HostF32
    {
        readonly HostTensor _host;
        readonly float[]? _widened;

        public HostF32(DeviceTensor tensor)
        {
            _host = new HostTensor(tensor);
            if (tensor.ElementType == ElementType.F32)
                return;
            long count = tensor.ElementCount == 0 ? 0 : tensor.LastElement - tensor.Offset + 1;
            _widened = GC.AllocateUninitializedArray<float>(checked((int)count), pinned: true);
            BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((void*)_host.Address, _widened.Length), _widened);
        }

        public DeviceTensor Tensor => _host.Tensor;

        /// <summary>Address of element [0, ...] as float32.</summary>
        public nint Address => _widened == null ? _host.Address : (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_widened));

        /// <summary>The flat elements as a span (contiguous tensors).</summary>
        public Span<float> Span => new((void*)Address, checked((int)Tensor.ElementCount));

        public void WriteBack()
        {
            if (_widened != null)
                BFloat16Conversions.FromSingle(_widened, new Span<BFloat16>((void*)_host.Address, _widened.Length));
            _host.WriteBack();
        }

        public static HostF32? Optional(DeviceTensor tensor) => tensor.IsNull ? null : new HostF32(tensor);

        /// <summary>The image of <paramref name="output"/>, reusing an input's when it is exactly that input (in place).</summary>
        public static HostF32 SameOrOf(DeviceTensor output, HostF32 input, HostF32? other = null)
        {
            if (TensorChecks.Of(output, input.Tensor) == Overlap.Exact)
                return input;
            if (other != null && TensorChecks.Of(output, other.Tensor) == Overlap.Exact)
                return other;
            return new HostF32(output);
        }
    }

    static class HostView
    {
        public static HostView<T> Of<T>(DeviceView<T> view) where T : unmanaged => new(view);

        public static HostView<T>? OfOptional<T>(DeviceView<T> view) where T : unmanaged => view.IsNull ? null : new(view);
    }

    /// <summary>
    /// A weight's host views and the addresses the references read (in place on ILGPU's CPU accelerator, pinned copies on a
    /// GPU); the CPU backend's kernels read the same addresses.
    /// </summary>
    internal sealed class HostWeight
    {
        // the host copies on a GPU, kept alive while their addresses are read
        readonly object? _data;
        readonly object? _scales;
        readonly object? _zeros;

        public HostWeight(WeightMatrix w)
        {
            nint data, scales = 0, zeros = 0;
            switch (w.ElementType)
            {
                case ElementType.F32:
                {
                    var view = HostView.Of(w.F32);
                    (_data, data) = (view, view.Address);
                    break;
                }
                case ElementType.BF16:
                {
                    var view = HostView.Of(w.BF16);
                    (_data, data) = (view, view.Address);
                    break;
                }
                case ElementType.Fp8E4M3:
                {
                    var view = HostView.Of(w.Fp8Data);
                    var scaleView = HostView.Of(w.ScaleInv);
                    (_data, _scales, data, scales) = (view, scaleView, view.Address, scaleView.Address);
                    break;
                }
                case ElementType.Int4:
                {
                    var view = HostView.Of(w.Int4Data);
                    var scaleView = HostView.Of(w.Int4Scales);
                    var zeroView = HostView.Of(w.Int4Zeros);
                    (_data, _scales, _zeros, data, scales, zeros) = (view, scaleView, zeroView, view.Address, scaleView.Address, zeroView.Address);
                    break;
                }
                default:
                    throw new NotSupportedException($"The reference backend has no decoder for weights stored as {w.ElementType.Name()}.");
            }
            Data = new WeightData(w.ElementType, data, scales, w.Rows, w.Cols, w.Count, w.BlockRows, w.BlockCols, zeros, w.GroupSize);
        }

        public WeightData Data { get; }

        /// <summary>
        /// <see cref="Data"/> of a weight on ILGPU's CPU accelerator (host memory, read in place), with no host copies to keep
        /// and nothing allocated: what the CPU backend's kernels read on every call.
        /// </summary>
        public static WeightData InPlace(WeightMatrix w)
        {
            if (w.Runtime.IsCuda)
                throw new InvalidOperationException("HostWeight.InPlace reads host memory: the weight is on a CUDA device.");
            var (data, scales, zeros) = w.ElementType switch
            {
                ElementType.F32 => (w.F32.Pointer, (nint)0, (nint)0),
                ElementType.BF16 => (w.BF16.Pointer, (nint)0, (nint)0),
                ElementType.Fp8E4M3 => (w.Fp8Data.Pointer, w.ScaleInv.Pointer, (nint)0),
                ElementType.Int4 => (w.Int4Data.Pointer, w.Int4Scales.Pointer, w.Int4Zeros.Pointer),
                _ => throw new NotSupportedException($"The reference backend has no decoder for weights stored as {w.ElementType.Name()}."),
            };
            return new WeightData(w.ElementType, data, scales, w.Rows, w.Cols, w.Count, w.BlockRows, w.BlockCols, zeros, w.GroupSize);
        }
    }
}
