using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// What the paged conformance classes share: a pool of 12 pages every element of which starts NaN, and a mixed batch (a
/// prefill from scratch, one decode token at the end of a long sequence, a chunk continuing a cache) over pages handed out
/// of order, with unused block-table entries -1, so a read of anything outside a sequence's keys shows.
/// </summary>
public abstract class PagedConformanceTest : ConformanceTest
{
    protected const int PoolPages = 12, MaxPages = 4;

    /// <summary>One sequence of a step: keys after the step, queries in the step, its pages in position order.</summary>
    protected sealed record Sequence(int Length, int Queries, int[] Pages);

    protected static Sequence[] Batch(int pageSize) => pageSize switch
    {
        16 => [new(5, 5, [7]), new(38, 1, [3, 10, 0]), new(19, 3, [11, 2])],
        _ => [new(5, 5, [2]), new(130, 1, [5, 0, 3]), new(70, 3, [1, 4])],
    };

    /// <summary>[batch, MaxPages] block table (unused entries -1), lengths, query offsets.</summary>
    protected static (int[] Table, int[] Lengths, int[] Starts) Metadata(Sequence[] sequences) => Metadata(sequences, MaxPages);

    /// <summary>The pool slot of position <paramref name="p"/> of <paramref name="s"/>.</summary>
    protected static int Slot(Sequence s, int p, int pageSize) => s.Pages[p / pageSize] * pageSize + p % pageSize;

    /// <summary>values rounded as a pool of <paramref name="type"/> stores them (bf16: to nearest even).</summary>
    protected static float[] Rounded(float[] values, ElementType type) =>
        type == ElementType.F32 ? values : values.Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray();

    /// <summary>A pool layer [PoolPages, pageSize, width] of <paramref name="type"/> on this runtime holding <paramref name="pool"/> (NaN where unused).</summary>
    protected IDisposable UploadPool(float[] pool, ElementType type, int pageSize, int width, out DeviceTensor tensor) =>
        UploadPool(pool, type, PoolPages, pageSize, width, out tensor);

    /// <summary>Writes each sequence's rows (rounded to the pool's type) into a NaN pool of PoolPages pages at their slots.</summary>
    protected static float[] Pool(Sequence[] sequences, float[][] rows, int pageSize, int width, ElementType type) =>
        Pool(sequences, rows, pageSize, width, type, PoolPages);

    /// <summary>
    /// Sequences of the given lengths and query counts over pages of a pool handed out in a shuffled order, the pool three
    /// pages larger than needed (those stay NaN); the block table is as wide as the longest sequence needs plus one.
    /// </summary>
    protected static (Sequence[] Sequences, int PoolPages, int MaxPages) Layout(int pageSize, (int Length, int Queries)[] shape, int seed)
    {
        int used = shape.Sum(s => (s.Length + pageSize - 1) / pageSize), poolPages = used + 3;
        var order = Enumerable.Range(0, poolPages).ToArray();
        new Random(seed).Shuffle(order);
        int next = 0;
        var sequences = shape.Select(s => new Sequence(s.Length, s.Queries,
            Enumerable.Range(0, (s.Length + pageSize - 1) / pageSize).Select(_ => order[next++]).ToArray())).ToArray();
        return (sequences, poolPages, sequences.Max(s => s.Pages.Length) + 1);
    }

    /// <summary>[batch, maxPages] block table (unused entries -1), lengths, query offsets.</summary>
    protected static (int[] Table, int[] Lengths, int[] Starts) Metadata(Sequence[] sequences, int maxPages)
    {
        var table = Enumerable.Repeat(-1, sequences.Length * maxPages).ToArray();
        var starts = new int[sequences.Length + 1];
        for (int b = 0; b < sequences.Length; b++)
        {
            sequences[b].Pages.CopyTo(table, b * maxPages);
            starts[b + 1] = starts[b] + sequences[b].Queries;
        }
        return (table, sequences.Select(s => s.Length).ToArray(), starts);
    }

    /// <summary>Writes each sequence's rows (rounded to the pool's type) into a NaN pool of <paramref name="poolPages"/> pages at their slots.</summary>
    protected static float[] Pool(Sequence[] sequences, float[][] rows, int pageSize, int width, ElementType type, int poolPages)
    {
        var pool = Nan((long)poolPages * pageSize * width);
        for (int b = 0; b < sequences.Length; b++)
        {
            var rounded = Rounded(rows[b], type);
            for (int p = 0; p < sequences[b].Length; p++)
                Array.Copy(rounded, p * width, pool, Slot(sequences[b], p, pageSize) * width, width);
        }
        return pool;
    }

    /// <summary>A pool layer [poolPages, pageSize, width] of <paramref name="type"/> on this runtime holding <paramref name="pool"/>.</summary>
    protected IDisposable UploadPool(float[] pool, ElementType type, int poolPages, int pageSize, int width, out DeviceTensor tensor)
    {
        if (type == ElementType.F32)
        {
            var buffer = Upload(pool);
            tensor = buffer.AsTensor(poolPages, pageSize, width);
            return buffer;
        }
        var bf16 = Upload(pool.Select(BFloat16.FromSingle).ToArray());
        tensor = bf16.AsTensor(poolPages, pageSize, width);
        return bf16;
    }

    /// <summary>An activation tensor [d0, d1, d2] of <paramref name="type"/> holding <paramref name="values"/> (bf16: rounded).</summary>
    protected DeviceTensor Activation(float[] values, ElementType type, List<IDisposable> owned, params long[] shape)
    {
        if (type == ElementType.F32)
        {
            var f = Upload(values);
            owned.Add(f);
            return f.AsTensor(shape);
        }
        var b = Upload(values.Select(BFloat16.FromSingle).ToArray());
        owned.Add(b);
        return b.AsTensor(shape);
    }

    /// <summary>A NaN output of <paramref name="outputs"/> elements of <paramref name="type"/> followed by a NaN guard; read back as float.</summary>
    protected (DeviceTensor Tensor, Watched Watched, Func<float[]> Read) PoisonedOutput(ElementType type, int outputs, List<IDisposable> owned,
        params long[] shape)
    {
        if (type == ElementType.F32)
        {
            var f = Poisoned(outputs + Guard);
            owned.Add(f);
            return (f.Slice(0, outputs).AsTensor(shape), f, () => f.ToArray());
        }
        var b = PoisonedBf16(outputs + Guard);
        owned.Add(b);
        return (b.Slice(0, outputs).AsTensor(shape), b, () => TestData.ToFloat<BFloat16>(b.ToArray()));
    }

    /// <summary>
    /// The lengths the suite sweeps (issue 12): 1, 2, 63, 64 and 65 keys as single decode tokens and as whole prefills, a
    /// chunk of 17 queries continuing a cache of 100, and a decode token at the end of a sequence of several thousand keys.
    /// </summary>
    protected static readonly (int Length, int Queries)[] SweptLengths =
        [(1, 1), (2, 1), (63, 1), (64, 1), (65, 1), (1, 1), (2, 2), (63, 63), (64, 64), (65, 65), (117, 17), (2500, 1)];

    /// <summary>
    /// MLA's sweep: <c>SweptLengths</c> without the whole prefills of 63 and 64 keys (a 576-wide row costs ILGPU's CPU
    /// accelerator nine times a GQA head's; the 65-key prefill still crosses a 64-key page and tile).
    /// </summary>
    protected static readonly (int Length, int Queries)[] MlaSweptLengths =
        [(1, 1), (2, 1), (63, 1), (64, 1), (65, 1), (1, 1), (2, 2), (65, 65), (117, 17), (2500, 1)];

    /// <summary>
    /// <paramref name="batch"/> with a caller's workspace of <see cref="PagedBatch.WorkspaceBytes"/> for
    /// <paramref name="rows"/> rows (NaN-filled, never read before written), or unchanged for 0 rows: backends then stay
    /// within it (ILGPU in passes of rows, the hand kernels with fewer splits, the host backends ignore it).
    /// </summary>
    protected PagedBatch WithWorkspace(PagedBatch batch, int rows, int qHeads, int vHeadDim, int maxKeys, List<IDisposable> owned)
    {
        if (rows == 0)
            return batch;
        long ints = PagedBatch.WorkspaceBytes(rows, qHeads, vHeadDim, maxKeys, batch.Batch) / sizeof(int);
        var workspace = Runtime.Upload<int>(Enumerable.Repeat(BitConverter.SingleToInt32Bits(float.NaN), checked((int)ints)).ToArray());
        owned.Add(workspace);
        return batch with { Workspace = workspace.View };
    }

    /// <summary>The step's metadata on this runtime (freed with <paramref name="owned"/>).</summary>
    protected PagedBatch UploadBatch(int[] table, int[] lengths, int[] starts, List<IDisposable> owned)
    {
        var (dTable, dLengths, dStarts) = (Upload(table), Upload(lengths), Upload(starts));
        owned.AddRange([dTable, dLengths, dStarts]);
        return new PagedBatch(dTable.View, dLengths.View, dStarts.View);
    }

    /// <summary>BF16 when any of <paramref name="types"/> is (the signature's activation type, the tolerance's kind), else F32.</summary>
    protected static ElementType Mixed(params ElementType[] types) => types.Contains(ElementType.BF16) ? ElementType.BF16 : ElementType.F32;

    protected static ElementType TypeOf(string name) => name switch
    {
        "f32" => ElementType.F32,
        "bf16" => ElementType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "f32 or bf16"),
    };
}

/// <summary>
/// KvAppend: keys and values of f32 or bf16 (rows dense or strided: column blocks of one fused projection) into pools of
/// f32 or bf16, and MLA's keys-only latent rows; slots out of order across pages. Written slots hold the rows rounded to
/// the pool's type, bit for bit; every other slot stays NaN; bad slots are reported through the error word.
/// </summary>
public abstract class KvAppendConformance : PagedConformanceTest
{
    const int PageSize = 16, KeyWidth = 33, ValueWidth = 17, Tokens = 5;
    static readonly int[] Slots = [17, 0, 191, 40, 100];

    public static TheoryData<string, string, bool, bool> Cases() => new()
    {
        // keys/values type, pool type, strided rows, with values
        { "f32", "f32", false, true },
        { "f32", "bf16", false, true },
        { "bf16", "bf16", false, true },
        { "bf16", "f32", false, true },
        { "f32", "f32", true, true },
        { "bf16", "bf16", true, true },
        { "f32", "bf16", false, false },
        { "f32", "f32", true, false },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void KvAppendWritesEachRowToItsSlotAndNothingElse(string rowType, string poolType, bool strided, bool withValues)
    {
        var rows = TypeOf(rowType);
        var pages = TypeOf(poolType);
        // keys and values are the two column blocks of one [Tokens, pad + KeyWidth + ValueWidth + pad] matrix when strided
        const int pad = 3;
        int fusedWidth = pad + KeyWidth + ValueWidth + pad;
        var fused = RandomValues(Tokens * fusedWidth, 7);
        var keys = strided ? ColumnBlock(fused, Tokens, fusedWidth, pad, KeyWidth) : RandomValues(Tokens * KeyWidth, 8);
        var values = strided ? ColumnBlock(fused, Tokens, fusedWidth, pad + KeyWidth, ValueWidth) : RandomValues(Tokens * ValueWidth, 9);
        var owned = new List<IDisposable>();
        try
        {
            T Keep<T>(T item) where T : IDisposable
            {
                owned.Add(item);
                return item;
            }
            DeviceTensor Dense(float[] values, int width) => rows == ElementType.F32
                ? Keep(Upload(values)).AsTensor(Tokens, width)
                : Keep(Upload(values.Select(BFloat16.FromSingle).ToArray())).AsTensor(Tokens, width);
            var fusedRows = strided ? Dense(fused, fusedWidth) : default;
            DeviceTensor Rows(float[] dense, int start, int width) => strided ? fusedRows.Columns(start, width) : Dense(dense, width);
            var keyRows = Rows(keys, pad, KeyWidth);
            var valueRows = withValues ? Rows(values, pad + KeyWidth, ValueWidth) : default;
            var keyPool = Keep(PoolBuffer(pages, KeyWidth, out var keyPages));
            DeviceTensor valuePages = default;
            var valuePool = withValues ? Keep(PoolBuffer(pages, ValueWidth, out valuePages)) : null;
            var slots = Keep(Upload(Slots));
            var watched = withValues ? new[] { keyPool.Watched, valuePool!.Watched } : [keyPool.Watched];
            var signature = new OpSignature("KvAppend", rows) { StridedRows = strided, Pages = pages };
            if (!Runs(signature, ops => ops.KvAppend(keyRows, valueRows, slots.View, keyPages, valuePages), watched))
                return;

            // the rows as the caller's tensors hold them (bf16 rows: rounded once), then as the pool stores them
            CheckPool(Rounded(Rounded(keys, rows), pages), keyPool.ReadAsFloat(), KeyWidth, "key pages");
            if (withValues)
                CheckPool(Rounded(Rounded(values, rows), pages), valuePool!.ReadAsFloat(), ValueWidth, "value pages");
        }
        finally
        {
            owned.ForEach(o => o.Dispose());
        }
    }

    static void CheckPool(float[] rows, float[] pool, int width, string what)
    {
        for (int slot = 0; slot < PoolPages * PageSize; slot++)
        {
            int t = Array.IndexOf(Slots, slot);
            if (t < 0)
                AllNaN(pool.AsSpan(slot * width, width), $"{what}, slot {slot} (no token's)");
            else
                Exact(rows.AsSpan(t * width, width), pool.AsSpan(slot * width, width), $"{what}, slot {slot} (token {t})");
        }
    }

    /// <summary>A NaN pool of one layer, [PoolPages, PageSize, width] of <paramref name="type"/>.</summary>
    PoolOf PoolBuffer(ElementType type, int width, out DeviceTensor tensor)
    {
        long n = (long)PoolPages * PageSize * width;
        if (type == ElementType.F32)
        {
            var f = Poisoned(n);
            tensor = f.AsTensor(PoolPages, PageSize, width);
            return new PoolOf(f, null);
        }
        var b = PoisonedBf16(n);
        tensor = b.AsTensor(PoolPages, PageSize, width);
        return new PoolOf(null, b);
    }

    sealed record PoolOf(DeviceBuffer<float>? F32, DeviceBuffer<BFloat16>? Bf16) : IDisposable
    {
        public Watched Watched => F32 is not null ? F32 : Bf16!;

        public float[] ReadAsFloat() => F32?.ToArray() ?? TestData.ToFloat<BFloat16>(Bf16!.ToArray());

        public void Dispose()
        {
            F32?.Dispose();
            Bf16?.Dispose();
        }
    }

    [Fact]
    public void BadSlotsAreReportedAtTheNextSynchronisation()
    {
        using var keys = Upload(RandomValues(2 * 8, 4));
        using var pool = Poisoned(PoolPages * PageSize * 8);
        var pages = pool.AsTensor(PoolPages, PageSize, 8);
        using var bad = Upload(new[] { 3, PoolPages * PageSize });
        using var negative = Upload(new[] { -1, 3 });
        var signature = new OpSignature("KvAppend", ElementType.F32) { Pages = ElementType.F32 };
        if (!Supported(signature, ops => ops.KvAppend(keys.AsTensor(2, 8), default, bad.View, pages, default), pool))
            return;
        DeviceIndexError(Runtime, () => Ops.KvAppend(keys.AsTensor(2, 8), default, bad.View, pages, default), "KvAppend", "slotMapping",
            $"slotMapping[1] = {PoolPages * PageSize} is outside [0, {PoolPages * PageSize})");
        DeviceIndexError(Runtime, () => Ops.KvAppend(keys.AsTensor(2, 8), default, negative.View, pages, default), "KvAppend", "slotMapping",
            "slotMapping[0] = -1");
    }
}

/// <summary>
/// PagedAttention of the mixed batch over out-of-order pages of f32 and bf16 pools against float64 over the keys as the
/// pool holds them: page sizes 16 and 64, GQA 2:1, 3:1 and 7:1, MHA, vHeadDim != headDim, and head_dim 128 (the support
/// table's rows); the output inside a NaN guard; bad block-table entries reported through the error word.
/// </summary>
public abstract class PagedAttentionConformance : PagedConformanceTest
{
    public static TheoryData<int, string, int, int, int, int> Cases() => new()
    {
        // pageSize, pool, qHeads, kvHeads, headDim, vHeadDim
        { 16, "f32", 4, 2, 8, 8 },
        { 16, "bf16", 6, 2, 16, 12 },
        { 64, "f32", 7, 1, 8, 8 },
        { 64, "bf16", 8, 8, 4, 4 },
        { 16, "f32", 2, 1, 128, 128 },
        { 16, "bf16", 4, 2, 128, 128 },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void PagedAttentionOfAMixedBatchMatchesFloat64(int pageSize, string poolType, int qHeads, int kvHeads, int headDim, int vHeadDim)
    {
        var type = TypeOf(poolType);
        var sequences = Batch(pageSize);
        var (table, lengths, starts) = Metadata(sequences);
        int kWidth = kvHeads * headDim, vWidth = kvHeads * vHeadDim, tokens = starts[^1];
        var keys = sequences.Select((s, b) => RandomValues(s.Length * kWidth, 10 + b)).ToArray();
        var values = sequences.Select((s, b) => RandomValues(s.Length * vWidth, 20 + b)).ToArray();
        var q = RandomValues(tokens * qHeads * headDim, 1);
        float scale = 1f / MathF.Sqrt(headDim);
        using var keyPool = UploadPool(Pool(sequences, keys, pageSize, kWidth, type), type, pageSize, kWidth, out var keyPages);
        using var valuePool = UploadPool(Pool(sequences, values, pageSize, vWidth, type), type, pageSize, vWidth, out var valuePages);
        using var dTable = Upload(table);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        using var dq = Upload(q);
        int outputs = tokens * qHeads * vHeadDim;
        using var dy = Poisoned(outputs + Guard);
        var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
        var signature = new OpSignature("PagedAttention", ElementType.F32) { HeadDim = headDim, Pages = type };
        if (!Runs(signature, ops => ops.PagedAttention(dq.AsTensor(tokens, qHeads, headDim), keyPages, valuePages, batch,
                dy.Slice(0, outputs).AsTensor(tokens, qHeads, vHeadDim), kvHeads, scale), dy))
            return;

        var expected = new double[outputs];
        var magnitude = new double[outputs];
        int group = qHeads / kvHeads;
        for (int b = 0; b < sequences.Length; b++)
        {
            var s = sequences[b];
            var k = Rounded(keys[b], type);
            var v = Rounded(values[b], type);
            for (int i = 0; i < s.Queries; i++)
            {
                int row = starts[b] + i, position = s.Length - s.Queries + i;
                for (int h = 0; h < qHeads; h++)
                {
                    int kvh = h / group, at = (row * qHeads + h) * vHeadDim;
                    Float64Oracles.Attend(q.AsSpan((row * qHeads + h) * headDim, headDim), position + 1,
                        (j, e) => k[j * kWidth + kvh * headDim + e], (j, e) => v[j * vWidth + kvh * vHeadDim + e], vHeadDim, scale,
                        expected.AsSpan(at, vHeadDim), magnitude.AsSpan(at, vHeadDim));
                }
            }
        }
        var actual = dy.ToArray();
        Close(expected, magnitude, actual.AsSpan(0, outputs), $"PagedAttention, {poolType} pages", ConformanceTolerance.Pages(type),
            ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(outputs), "guard after the output");
    }

    public static TheoryData<int, string, string, string, int, int, int, int> SweepCases() => new()
    {
        // pageSize, pool, q, destination, qHeads, kvHeads, headDim (= vHeadDim), workspace rows (0: none)
        { 16, "bf16", "bf16", "bf16", 8, 1, 128, 0 },
        { 64, "bf16", "f32", "f32", 8, 2, 64, 0 },
        { 16, "f32", "f32", "bf16", 7, 1, 64, 0 },
        { 64, "f32", "bf16", "f32", 5, 5, 64, 0 },
        { 16, "bf16", "bf16", "bf16", 8, 1, 128, 1 },
        { 64, "f32", "bf16", "f32", 5, 5, 64, 1 },
    };

    /// <summary>
    /// The swept lengths (<c>SweptLengths</c>: decode tokens and whole prefills of 1, 2, 63, 64 and 65 keys, a chunk
    /// continuing a cache, several thousand keys) in one step over shuffled pages, q and destination f32 or bf16, GQA 8:1,
    /// 4:1, 7:1 and an odd MHA: every row against float64, the guard untouched; also with a caller's workspace
    /// (<see cref="PagedBatch.Workspace"/>) of the fewest rows, which the backends must stay within.
    /// </summary>
    [DeviceTheory, MemberData(nameof(SweepCases))]
    public void PagedAttentionOverSweptLengthsMatchesFloat64(int pageSize, string poolType, string qType, string outType, int qHeads, int kvHeads,
        int headDim, int workspaceRows)
    {
        SkipLongCaseAtGpuWarps("the swept lengths (several thousand keys)");
        Sweep(SweptLengths, pageSize, poolType, qType, outType, qHeads, kvHeads, headDim, workspaceRows);
    }

    public static TheoryData<int, string, string, string, int, int, int, int> SplitCases() => new()
    {
        { 16, "bf16", "bf16", "bf16", 8, 2, 128, 0 },
        { 64, "f32", "f32", "f32", 4, 1, 64, 1 },
    };

    /// <summary>
    /// Contexts the decode kernels split (FlashDecoding: ILGPU at 256-key boundaries, the hand kernels by plan): one decode token
    /// over 700 keys (3 splits, the last partial) and two queries over 300 (2 splits), merged by the combine step; short enough to
    /// run at 32 simulated lanes (<see cref="ConformanceTest.SimulatesGpuWarps"/>), where the swept lengths skip.
    /// </summary>
    [DeviceTheory, MemberData(nameof(SplitCases))]
    public void PagedAttentionOverSplitContextsMatchesFloat64(int pageSize, string poolType, string qType, string outType, int qHeads, int kvHeads,
        int headDim, int workspaceRows) =>
        Sweep([(700, 1), (300, 2)], pageSize, poolType, qType, outType, qHeads, kvHeads, headDim, workspaceRows);

    void Sweep((int Length, int Queries)[] shape, int pageSize, string poolType, string qType, string outType, int qHeads, int kvHeads,
        int headDim, int workspaceRows)
    {
        var (type, qt, ot) = (TypeOf(poolType), TypeOf(qType), TypeOf(outType));
        var (sequences, poolPages, maxPages) = Layout(pageSize, shape, pageSize + qHeads);
        var (table, lengths, starts) = Metadata(sequences, maxPages);
        int width = kvHeads * headDim, tokens = starts[^1], outputs = tokens * qHeads * headDim;
        var keys = sequences.Select((s, b) => RandomValues(s.Length * width, 40 + b)).ToArray();
        var values = sequences.Select((s, b) => RandomValues(s.Length * width, 60 + b)).ToArray();
        var q = Rounded(RandomValues(tokens * qHeads * headDim, 5), qt);
        float scale = 1f / MathF.Sqrt(headDim);
        var owned = new List<IDisposable>();
        try
        {
            owned.Add(UploadPool(Pool(sequences, keys, pageSize, width, type, poolPages), type, poolPages, pageSize, width, out var keyPages));
            owned.Add(UploadPool(Pool(sequences, values, pageSize, width, type, poolPages), type, poolPages, pageSize, width, out var valuePages));
            var dq = Activation(q, qt, owned, tokens, qHeads, headDim);
            var (dy, watched, read) = PoisonedOutput(ot, outputs, owned, tokens, qHeads, headDim);
            var batch = WithWorkspace(UploadBatch(table, lengths, starts, owned), workspaceRows, qHeads, headDim, maxPages * pageSize, owned);
            var signature = new OpSignature("PagedAttention", Mixed(qt, ot))
                { HeadDim = headDim, Pages = type };
            if (!Runs(signature, ops => ops.PagedAttention(dq, keyPages, valuePages, batch, dy, kvHeads, scale), watched))
                return;

            var expected = new double[outputs];
            var magnitude = new double[outputs];
            int group = qHeads / kvHeads;
            for (int b = 0; b < sequences.Length; b++)
            {
                var s = sequences[b];
                var k = Rounded(keys[b], type);
                var v = Rounded(values[b], type);
                for (int i = 0; i < s.Queries; i++)
                {
                    int row = starts[b] + i, position = s.Length - s.Queries + i;
                    for (int h = 0; h < qHeads; h++)
                    {
                        int kvh = h / group, at = (row * qHeads + h) * headDim;
                        Float64Oracles.Attend(q.AsSpan(at, headDim), position + 1, (j, e) => k[j * width + kvh * headDim + e],
                            (j, e) => v[j * width + kvh * headDim + e], headDim, scale, expected.AsSpan(at, headDim), magnitude.AsSpan(at, headDim));
                    }
                }
            }
            var actual = read();
            double tolerance = Mixed(type, qt, ot) == ElementType.BF16 ? ConformanceTolerance.Bf16 : ConformanceTolerance.F32;
            Close(expected, magnitude, actual.AsSpan(0, outputs), $"PagedAttention, {poolType} pages, {qType} q, {outType} out", tolerance,
                ConformanceTolerance.Absolute);
            AllNaN(actual.AsSpan(outputs), "guard after the output");
        }
        finally
        {
            owned.ForEach(o => o.Dispose());
        }
    }

    /// <summary>
    /// Every kind of bad device metadata, one at a time and several at once: the first bad value in the op's stated order
    /// (query offsets' range, their order, then per sequence its length and then its block-table entries) is the one
    /// reported, whichever backend runs it.
    /// </summary>
    [Fact]
    public void BadMetadataIsReportedFirstInTheStatedOrder()
    {
        var sequences = Batch(16);
        var (table, lengths, starts) = Metadata(sequences);
        using var pool = Poisoned(PoolPages * 16 * 8);
        var pages = pool.AsTensor(PoolPages, 16, 8);
        using var q = Upload(RandomValues(9 * 2 * 8, 2));
        using var y = Poisoned(9 * 2 * 8);
        void Call(Ops ops, int[] t, int[] l, int[] s)
        {
            using var dt = Upload(t);
            using var dl = Upload(l);
            using var ds = Upload(s);
            ops.PagedAttention(q.AsTensor(9, 2, 8), pages, pages, new PagedBatch(dt.View, dl.View, ds.View), y.AsTensor(9, 2, 8), 1, 0.5f);
        }
        if (!Supported(new OpSignature("PagedAttention", ElementType.F32) { HeadDim = 8, Pages = ElementType.F32 }, ops => Call(ops, table, lengths, starts), y))
            return;
        int[] With(int[] a, int i, int v)
        {
            var c = (int[])a.Clone();
            c[i] = v;
            return c;
        }
        // one bad value of each kind
        DeviceIndexError(Runtime, () => Call(Ops, table, With(lengths, 1, 65), starts), "PagedAttention", "sequenceLengths",
            "sequenceLengths[1] = 65 is outside [0, 65)");
        DeviceIndexError(Runtime, () => Call(Ops, table, With(lengths, 0, 4), starts), "PagedAttention", "sequenceLengths", "sequenceLengths[0] = 4");
        Assert.True(DeviceIndexError(Runtime, () => Call(Ops, table, lengths, [0, 5, 4, 9]), "PagedAttention", "queryStarts",
            "queryStarts[2] = 4 is out of order").OutOfOrder);
        DeviceIndexError(Runtime, () => Call(Ops, table, lengths, [0, 5, 6, 10]), "PagedAttention", "queryStarts", "queryStarts[3] = 10 is outside [0, 10)");
        DeviceIndexError(Runtime, () => Call(Ops, table, lengths, [-2, 5, 6, 9]), "PagedAttention", "queryStarts", "queryStarts[0] = -2");
        // several at once: the first in the stated order wins
        var badTables = With(With(table, 9, 99), 4, -7); // sequence 1's first page and sequence 2's second page
        DeviceIndexError(Runtime, () => Call(Ops, badTables, lengths, starts), "PagedAttention", "blockTable", "blockTable[4] = -7");
        DeviceIndexError(Runtime, () => Call(Ops, With(table, 9, 99), With(lengths, 1, 70), starts), "PagedAttention", "sequenceLengths",
            "sequenceLengths[1] = 70");
        DeviceIndexError(Runtime, () => Call(Ops, badTables, With(lengths, 2, 1), [0, 5, 6, 11]), "PagedAttention", "queryStarts", "queryStarts[3] = 11");
        Assert.True(DeviceIndexError(Runtime, () => Call(Ops, badTables, With(lengths, 0, 99), [0, 6, 5, 9]), "PagedAttention", "queryStarts",
            "queryStarts[2] = 5 is out of order").OutOfOrder);
        // a sequence without queries: its block table is not read
        Call(Ops, With(table, 0, 99), lengths, [0, 0, 1, 4]);
        Runtime.Synchronize();
        // entries past a sequence's pages are never read
        Call(Ops, With(table, 3, 99), lengths, starts);
        Runtime.Synchronize();
    }

    [Fact]
    public void BadBlockTableEntriesAreReportedAtTheNextSynchronisation()
    {
        var sequences = Batch(16);
        var (_, lengths, starts) = Metadata(sequences);
        using var pool = Poisoned(PoolPages * 16 * 8);
        var pages = pool.AsTensor(PoolPages, 16, 8);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        using var q = Upload(RandomValues(9 * 2 * 8, 2));
        using var y = Poisoned(9 * 2 * 8);
        // sequence 1's third page is outside the pool of 12
        using var badTable = Upload(new[] { 7, -1, -1, -1, 3, 10, PoolPages, -1, 11, 2, -1, -1 });
        var batch = new PagedBatch(badTable.View, dLengths.View, dStarts.View);
        void Call(Ops ops) => ops.PagedAttention(q.AsTensor(9, 2, 8), pages, pages, batch, y.AsTensor(9, 2, 8), 1, 0.5f);
        if (!Supported(new OpSignature("PagedAttention", ElementType.F32) { HeadDim = 8, Pages = ElementType.F32 }, Call, y))
            return;
        DeviceIndexError(Runtime, () => Call(Ops), "PagedAttention", "blockTable", $"blockTable[6] = {PoolPages} is outside [0, {PoolPages})");
    }
}

/// <summary>
/// PagedMlaAttention of the mixed batch over out-of-order pages of f32 and bf16 latent pools against float64 (one kv head:
/// keys the whole rows, values their latent part): page sizes 16 and 64, and DeepSeek's 512 + 64 = 576 (the support table's
/// rows); bad block-table entries reported through the error word.
/// </summary>
public abstract class PagedMlaAttentionConformance : PagedConformanceTest
{
    public static TheoryData<int, string, int, int, int> Cases() => new()
    {
        // pageSize, pool, heads, latentDim, ropeDim
        { 64, "f32", 5, 24, 8 },
        { 64, "bf16", 5, 24, 8 },
        { 16, "f32", 3, 17, 0 },
        { 16, "f32", 2, 512, 64 },
        { 16, "bf16", 2, 512, 64 },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void PagedMlaAttentionOfAMixedBatchMatchesFloat64(int pageSize, string poolType, int heads, int latentDim, int ropeDim)
    {
        var type = TypeOf(poolType);
        var sequences = Batch(pageSize);
        var (table, lengths, starts) = Metadata(sequences);
        int width = latentDim + ropeDim, tokens = starts[^1];
        var rows = sequences.Select((s, b) => RandomValues(s.Length * width, 30 + b, 0.5f)).ToArray();
        var q = RandomValues(tokens * heads * width, 3);
        const float scale = 0.1f;
        using var latentPool = UploadPool(Pool(sequences, rows, pageSize, width, type), type, pageSize, width, out var latentPages);
        using var dTable = Upload(table);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        using var dq = Upload(q);
        int outputs = tokens * heads * latentDim;
        using var dy = Poisoned(outputs + Guard);
        var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
        var signature = new OpSignature("PagedMlaAttention", ElementType.F32) { HeadDim = width, Pages = type };
        if (!Runs(signature, ops => ops.PagedMlaAttention(dq.AsTensor(tokens, heads, width), latentPages, batch,
                dy.Slice(0, outputs).AsTensor(tokens, heads, latentDim), scale), dy))
            return;

        var expected = new double[outputs];
        var magnitude = new double[outputs];
        for (int b = 0; b < sequences.Length; b++)
        {
            var s = sequences[b];
            var c = Rounded(rows[b], type);
            for (int i = 0; i < s.Queries; i++)
            {
                int row = starts[b] + i, position = s.Length - s.Queries + i;
                for (int h = 0; h < heads; h++)
                {
                    int at = (row * heads + h) * latentDim;
                    Float64Oracles.Attend(q.AsSpan((row * heads + h) * width, width), position + 1,
                        (j, e) => c[j * width + e], (j, e) => c[j * width + e], latentDim, scale,
                        expected.AsSpan(at, latentDim), magnitude.AsSpan(at, latentDim));
                }
            }
        }
        var actual = dy.ToArray();
        Close(expected, magnitude, actual.AsSpan(0, outputs), $"PagedMlaAttention, {poolType} pages", ConformanceTolerance.Pages(type),
            ConformanceTolerance.Absolute);
        AllNaN(actual.AsSpan(outputs), "guard after the output");
    }

    public static TheoryData<int, string, string, string, int, int> SweepCases() => new()
    {
        // pageSize, pool, q, destination, heads, workspace rows (0: none); DeepSeek's 512 + 64 (few heads: the CPU backends
        // simulate every thread; kernels/tests/mla_check.cu runs 16, 20 and 128 heads on the GPU)
        { 64, "bf16", "bf16", "bf16", 4, 0 },
        { 64, "bf16", "f32", "f32", 3, 0 },
        { 16, "f32", "f32", "bf16", 2, 0 },
        { 64, "bf16", "bf16", "bf16", 4, 1 },
    };

    /// <summary>
    /// MLA over the swept lengths (<c>MlaSweptLengths</c>) in one step, DeepSeek's 576-wide latent rows (512 latent + 64
    /// rope), 2 to 4 heads, q and destination f32 or bf16: every row against float64, the guard untouched; also with a
    /// caller's workspace of the fewest rows.
    /// </summary>
    [DeviceTheory, MemberData(nameof(SweepCases))]
    public void PagedMlaAttentionOverSweptLengthsMatchesFloat64(int pageSize, string poolType, string qType, string outType, int heads,
        int workspaceRows)
    {
        SkipLongCaseAtGpuWarps("the MLA swept lengths (thousands of keys)");
        const int latentDim = 512, width = 576;
        var (type, qt, ot) = (TypeOf(poolType), TypeOf(qType), TypeOf(outType));
        var (sequences, poolPages, maxPages) = Layout(pageSize, MlaSweptLengths, heads);
        var (table, lengths, starts) = Metadata(sequences, maxPages);
        int tokens = starts[^1], outputs = tokens * heads * latentDim;
        var rows = sequences.Select((s, b) => RandomValues(s.Length * width, 80 + b, 0.5f)).ToArray();
        var q = Rounded(RandomValues(tokens * heads * width, 7), qt);
        const float scale = 0.07f;
        var owned = new List<IDisposable>();
        try
        {
            owned.Add(UploadPool(Pool(sequences, rows, pageSize, width, type, poolPages), type, poolPages, pageSize, width, out var latentPages));
            var dq = Activation(q, qt, owned, tokens, heads, width);
            var (dy, watched, read) = PoisonedOutput(ot, outputs, owned, tokens, heads, latentDim);
            var batch = WithWorkspace(UploadBatch(table, lengths, starts, owned), workspaceRows, heads, latentDim, maxPages * pageSize, owned);
            var signature = new OpSignature("PagedMlaAttention", Mixed(qt, ot))
                { HeadDim = width, Pages = type };
            if (!Runs(signature, ops => ops.PagedMlaAttention(dq, latentPages, batch, dy, scale), watched))
                return;

            var expected = new double[outputs];
            var magnitude = new double[outputs];
            for (int b = 0; b < sequences.Length; b++)
            {
                var s = sequences[b];
                var c = Rounded(rows[b], type);
                for (int i = 0; i < s.Queries; i++)
                {
                    int row = starts[b] + i, position = s.Length - s.Queries + i;
                    for (int h = 0; h < heads; h++)
                    {
                        int at = (row * heads + h) * latentDim;
                        Float64Oracles.Attend(q.AsSpan((row * heads + h) * width, width), position + 1, (j, e) => c[j * width + e],
                            (j, e) => c[j * width + e], latentDim, scale, expected.AsSpan(at, latentDim), magnitude.AsSpan(at, latentDim));
                    }
                }
            }
            var actual = read();
            double tolerance = Mixed(type, qt, ot) == ElementType.BF16 ? ConformanceTolerance.Bf16 : ConformanceTolerance.F32;
            Close(expected, magnitude, actual.AsSpan(0, outputs), $"PagedMlaAttention, {poolType} pages, {qType} q, {outType} out", tolerance,
                ConformanceTolerance.Absolute);
            AllNaN(actual.AsSpan(outputs), "guard after the output");
        }
        finally
        {
            owned.ForEach(o => o.Dispose());
        }
    }

    [Fact]
    public void BadBlockTableEntriesAreReportedAtTheNextSynchronisation()
    {
        var sequences = Batch(16);
        var (_, lengths, starts) = Metadata(sequences);
        using var pool = Poisoned(PoolPages * 16 * 12);
        var pages = pool.AsTensor(PoolPages, 16, 12);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        using var q = Upload(RandomValues(9 * 2 * 12, 2));
        using var y = Poisoned(9 * 2 * 8);
        using var badTable = Upload(new[] { 7, -1, -1, -1, 3, 10, 0, -1, 11, -5, -1, -1 });
        var batch = new PagedBatch(badTable.View, dLengths.View, dStarts.View);
        void Call(Ops ops) => ops.PagedMlaAttention(q.AsTensor(9, 2, 12), pages, batch, y.AsTensor(9, 2, 8), 0.5f);
        if (!Supported(new OpSignature("PagedMlaAttention", ElementType.F32) { HeadDim = 12, Pages = ElementType.F32 }, Call, y))
            return;
        DeviceIndexError(Runtime, () => Call(Ops), "PagedMlaAttention", "blockTable", "blockTable[9] = -5 is outside [0, 12)");
    }
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class KvAppendReferenceConformance : KvAppendConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class KvAppendIlgpuCpuConformance : KvAppendConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class KvAppendCpuConformance : KvAppendConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class KvAppendIlgpuCudaConformance : KvAppendConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class KvAppendNativeConformance : KvAppendConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class PagedAttentionReferenceConformance : PagedAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class PagedAttentionIlgpuCpuConformance : PagedAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class PagedAttentionCpuConformance : PagedAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class PagedAttentionIlgpuCudaConformance : PagedAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class PagedAttentionNativeConformance : PagedAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}

/// <summary>The reference on ILGPU's CPU accelerator's buffers.</summary>
public sealed class PagedMlaAttentionReferenceConformance : PagedMlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Reference;
}

/// <summary>ILGPU on its CPU accelerator, strict.</summary>
public sealed class PagedMlaAttentionIlgpuCpuConformance : PagedMlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCpu;
}

/// <summary>The CPU backend (SIMD kernels on a thread pool, the reference's host code for the rest), strict.</summary>
public sealed class PagedMlaAttentionCpuConformance : PagedMlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Cpu;
}

/// <summary>ILGPU on a CUDA GPU, strict.</summary>
[NeedsCudaGpu]
public sealed class PagedMlaAttentionIlgpuCudaConformance : PagedMlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda());
}

/// <summary>The hand-CUDA kernels, strict.</summary>
[NeedsCudaGpu]
public sealed class PagedMlaAttentionNativeConformance : PagedMlaAttentionConformance
{
    protected override Ops Ops => ConformanceBackends.Native(TestDevices.RequireNative());
}
