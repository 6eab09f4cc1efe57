using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// KvAppend, PagedAttention and PagedMlaAttention: a mixed batch (a prefill from scratch, one decode token, a chunk
/// continuing a cache) over pages handed out of order, with every unused page, slot and block-table entry poisoned
/// (NaN rows, -1 entries) so a read outside a sequence's keys shows. An f32 pool must give bitwise the contiguous
/// Attention op's output (which AttentionTests holds to a float64 oracle); a bf16 pool bitwise that of the keys
/// rounded to bf16.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class PagedAttentionTests
{
    sealed record Sequence(int Length, int Queries, int[] Pages);

    /// <summary>The batch: (keys after the step, queries in the step) with pages out of order; pool of 12 pages.</summary>
    static Sequence[] Batch(int pageSize) => pageSize switch
    {
        16 => [new(5, 5, [7]), new(38, 1, [3, 10, 0]), new(19, 3, [11, 2])],
        _ => [new(5, 5, [2]), new(130, 1, [5, 0, 3]), new(70, 3, [1, 4])],
    };

    const int PoolPages = 12, MaxPages = 4;

    sealed class PagedSetup : IDisposable
    {
        public readonly List<IDisposable> Owned = [];
        public DeviceBuffer<int> Table = null!, Lengths = null!, Starts = null!;
        public PagedBatch Batch => new(Table.View, Lengths.View, Starts.View);
        public void Dispose() => Owned.ForEach(o => o.Dispose());
        public T Keep<T>(T item) where T : IDisposable { Owned.Add(item); return item; }
    }

    /// <summary>Block table (unused entries -1), lengths and query offsets of <paramref name="sequences"/>.</summary>
    static PagedSetup Metadata(Sequence[] sequences)
    {
        var setup = new PagedSetup();
        var table = Enumerable.Repeat(-1, sequences.Length * MaxPages).ToArray();
        var starts = new int[sequences.Length + 1];
        for (int b = 0; b < sequences.Length; b++)
        {
            sequences[b].Pages.CopyTo(table, b * MaxPages);
            starts[b + 1] = starts[b] + sequences[b].Queries;
        }
        setup.Table = setup.Keep(Upload(table));
        setup.Lengths = setup.Keep(Upload(sequences.Select(s => s.Length).ToArray()));
        setup.Starts = setup.Keep(Upload(starts));
        return setup;
    }

    static int[] Slots(Sequence s, int pageSize) =>
        Enumerable.Range(0, s.Length).Select(p => s.Pages[p / pageSize] * pageSize + p % pageSize).ToArray();

    /// <summary>A pool layer [pages, pageSize, width] of <paramref name="type"/>, every element NaN.</summary>
    static DeviceTensor PoisonedPool(PagedSetup setup, ElementType type, int pageSize, int width)
    {
        long n = (long)PoolPages * pageSize * width;
        if (type == ElementType.F32)
            return setup.Keep(Poisoned(n)).AsTensor(PoolPages, pageSize, width);
        return setup.Keep(Upload(Enumerable.Repeat(BFloat16.FromSingle(float.NaN), (int)n).ToArray())).AsTensor(PoolPages, pageSize, width);
    }

    static float[] RoundedToPool(float[] values, ElementType type) =>
        type == ElementType.F32 ? values : values.Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray();

    [Theory]
    [InlineData(16, "f32", 4, 2, 8, 8)]
    [InlineData(16, "bf16", 6, 2, 16, 12)]
    [InlineData(64, "f32", 7, 1, 8, 8)]   // 7:1 GQA, page 64
    [InlineData(64, "bf16", 8, 8, 4, 4)]
    public void AMixedBatchOverOutOfOrderPagesEqualsContiguousAttention(int pageSize, string pool, int qHeads, int kvHeads, int headDim, int vHeadDim)
    {
        var type = pool == "f32" ? ElementType.F32 : ElementType.BF16;
        var sequences = Batch(pageSize);
        using var setup = Metadata(sequences);
        int kWidth = kvHeads * headDim, vWidth = kvHeads * vHeadDim;
        var keyPages = PoisonedPool(setup, type, pageSize, kWidth);
        var valuePages = PoisonedPool(setup, type, pageSize, vWidth);
        int tokens = sequences.Sum(s => s.Queries);
        var q = RandomValues(tokens * qHeads * headDim, 1);
        var dq = setup.Keep(Upload(q));
        var expected = new float[tokens * qHeads * vHeadDim];
        float scale = 1f / MathF.Sqrt(headDim);
        int row = 0;
        for (int b = 0; b < sequences.Length; b++)
        {
            var s = sequences[b];
            var k = RandomValues(s.Length * kWidth, 10 + b);
            var v = RandomValues(s.Length * vWidth, 20 + b);
            using var dk = Upload(k);
            using var dv = Upload(v);
            using var slots = Upload(Slots(s, pageSize));
            ReferenceOps.KvAppend(dk.AsTensor(s.Length, kWidth), dv.AsTensor(s.Length, vWidth), slots.View, keyPages, valuePages);

            using var rk = Upload(RoundedToPool(k, type));
            using var rv = Upload(RoundedToPool(v, type));
            using var qb = Upload(q.AsSpan(row * qHeads * headDim, s.Queries * qHeads * headDim).ToArray());
            using var yb = Poisoned(s.Queries * qHeads * vHeadDim);
            ReferenceOps.Attention(qb.View, rk.View, rv.View, yb.View, qHeads, kvHeads, headDim, vHeadDim, s.Length, s.Length - s.Queries, scale);
            yb.ToArray().CopyTo(expected, row * qHeads * vHeadDim);
            row += s.Queries;
        }
        using var dy = Poisoned(expected.Length);
        ReferenceOps.PagedAttention(dq.AsTensor(tokens, qHeads, headDim), keyPages, valuePages, setup.Batch, dy.AsTensor(tokens, qHeads, vHeadDim),
            kvHeads, scale);
        Exact(expected, dy.ToArray(), "paged attention");
    }

    [Theory]
    [InlineData(64, "f32"), InlineData(64, "bf16"), InlineData(16, "f32")]
    public void MlaOverPagedLatentRowsEqualsContiguousMla(int pageSize, string pool)
    {
        var type = pool == "f32" ? ElementType.F32 : ElementType.BF16;
        const int heads = 5, latent = 24, rope = 8, width = latent + rope;
        var sequences = Batch(pageSize);
        using var setup = Metadata(sequences);
        var latentPages = PoisonedPool(setup, type, pageSize, width);
        int tokens = sequences.Sum(s => s.Queries);
        var q = RandomValues(tokens * heads * width, 3);
        var expected = new float[tokens * heads * latent];
        int row = 0;
        for (int b = 0; b < sequences.Length; b++)
        {
            var s = sequences[b];
            var c = RandomValues(s.Length * width, 30 + b);
            using var dc = Upload(c);
            using var slots = Upload(Slots(s, pageSize));
            ReferenceOps.KvAppend(dc.AsTensor(s.Length, width), default, slots.View, latentPages, default);
            using var rc = Upload(RoundedToPool(c, type));
            using var qb = Upload(q.AsSpan(row * heads * width, s.Queries * heads * width).ToArray());
            using var yb = Poisoned(s.Queries * heads * latent);
            ReferenceOps.MlaAttention(qb.View, rc.View, yb.View, heads, latent, rope, s.Length, s.Length - s.Queries, 0.3f);
            yb.ToArray().CopyTo(expected, row * heads * latent);
            row += s.Queries;
        }
        using var dq = Upload(q);
        using var dy = Poisoned(expected.Length);
        ReferenceOps.PagedMlaAttention(dq.AsTensor(tokens, heads, width), latentPages, setup.Batch, dy.AsTensor(tokens, heads, latent), 0.3f);
        Exact(expected, dy.ToArray(), "paged MLA");
    }

    [Fact]
    public void KvAppendWritesStridedRowsToTheirSlotsAndNothingElse()
    {
        using var setup = new PagedSetup();
        var pages = PoisonedPool(setup, ElementType.F32, 16, 3);
        // keys are columns 2..4 of a [4, 6] matrix: strided rows
        var source = RandomValues(4 * 6, 5);
        using var ds = Upload(source);
        var keys = ds.AsTensor(4, 6).Columns(2, 3);
        using var slots = Upload(new[] { 17, 0, 191, 40 });
        ReferenceOps.KvAppend(keys, default, slots.View, pages, default);
        var pool = pages.AsView<float>().ToArray();
        int[] written = [17, 0, 191, 40];
        for (int slot = 0; slot < PoolPages * 16; slot++)
        {
            int t = Array.IndexOf(written, slot);
            for (int c = 0; c < 3; c++)
            {
                if (t < 0)
                    Assert.True(float.IsNaN(pool[slot * 3 + c]), $"slot {slot} was written");
                else
                    Assert.Equal(source[t * 6 + 2 + c], pool[slot * 3 + c]);
            }
        }
    }

    [Fact]
    public void BadDeviceMetadataIsRecordedAndThrownAtTheNextSynchronisation()
    {
        var sequences = Batch(16);
        using var setup = Metadata(sequences);
        var keyPages = PoisonedPool(setup, ElementType.F32, 16, 8);
        var valuePages = PoisonedPool(setup, ElementType.F32, 16, 8);
        using var q = Upload(RandomValues(9 * 2 * 8, 2));
        using var y = Poisoned(9 * 2 * 8);
        void Run(PagedBatch batch) => ReferenceOps.PagedAttention(q.AsTensor(9, 2, 8), keyPages, valuePages, batch, y.AsTensor(9, 2, 8), 1, 0.5f);

        // a page outside the pool: sequence 1's third page
        using var badTable = Upload(new[] { 7, -1, -1, -1, 3, 10, 12, -1, 11, 2, -1, -1 });
        var e = DeviceIndexError(CpuRuntime, () => Run(new PagedBatch(badTable.View, setup.Lengths.View, setup.Starts.View)),
            "PagedAttention", "blockTable", "blockTable[6] = 12 is outside [0, 12)");
        // a length beyond the pages the table row holds (4 x 16)
        using var longLength = Upload(new[] { 5, 65, 19 });
        DeviceIndexError(CpuRuntime, () => Run(new PagedBatch(setup.Table.View, longLength.View, setup.Starts.View)),
            "PagedAttention", "sequenceLengths", "sequenceLengths[1] = 65");
        // fewer keys than the sequence's queries
        using var shortLength = Upload(new[] { 4, 38, 19 });
        DeviceIndexError(CpuRuntime, () => Run(new PagedBatch(setup.Table.View, shortLength.View, setup.Starts.View)),
            "PagedAttention", "sequenceLengths", "sequenceLengths[0] = 4");
        // query offsets that decrease, or run past q's tokens
        using var decreasing = Upload(new[] { 0, 5, 4, 9 });
        Assert.True(DeviceIndexError(CpuRuntime, () => Run(new PagedBatch(setup.Table.View, setup.Lengths.View, decreasing.View)),
            "PagedAttention", "queryStarts", "queryStarts[2] = 4 is out of order").OutOfOrder);
        using var past = Upload(new[] { 0, 5, 6, 10 });
        DeviceIndexError(CpuRuntime, () => Run(new PagedBatch(setup.Table.View, setup.Lengths.View, past.View)),
            "PagedAttention", "queryStarts", "queryStarts[3] = 10 is outside [0, 10)");
        // KvAppend: a slot outside the pool of 12 x 16
        using var keys = Upload(RandomValues(2 * 8, 4));
        using var badSlots = Upload(new[] { 3, 192 });
        DeviceIndexError(CpuRuntime, () => ReferenceOps.KvAppend(keys.AsTensor(2, 8), default, badSlots.View, keyPages, default),
            "KvAppend", "slotMapping", "slotMapping[1] = 192 is outside [0, 192)");
        Assert.Equal(1, e.Value / 12); // the value was 12
    }

    [Fact]
    public void ShapesThatDoNotFitAreRefusedBeforeAnythingRuns()
    {
        var sequences = Batch(16);
        using var setup = Metadata(sequences);
        var keyPages = PoisonedPool(setup, ElementType.F32, 16, 8);
        var valuePages = PoisonedPool(setup, ElementType.F32, 16, 8);
        var bf16Pages = PoisonedPool(setup, ElementType.BF16, 16, 8);
        using var q = Upload(RandomValues(9 * 4 * 8, 2));
        using var y = Poisoned(9 * 4 * 8);
        var qt = q.AsTensor(9, 4, 8);
        var yt = y.AsTensor(9, 4, 8);
        Throws<ArgumentOutOfRangeException>(() => ReferenceOps.PagedAttention(qt, keyPages, valuePages, setup.Batch, yt, 3, 1f), "kvHeads",
            "q's 4 heads are not a multiple of kvHeads = 3");
        Throws<ArgumentException>(() => ReferenceOps.PagedAttention(qt, keyPages, valuePages, setup.Batch, yt, 2, 1f), "keyPages",
            "must be kvHeads * headDim = 2 * 8 = 16");
        Throws<ArgumentException>(() => ReferenceOps.PagedAttention(q.AsTensor(9, 4, 8), keyPages, valuePages, setup.Batch, y.AsTensor(9, 2, 16), 1, 1f),
            "destination", "dimension 1 must be q's heads = 4");
        Throws<NotSupportedException>(() => ReferenceOps.PagedAttention(qt, keyPages, bf16Pages, setup.Batch, yt, 1, 1f), "valuePages",
            "valuePages holds bf16; PagedAttention takes f32");
        Throws<ArgumentException>(() => ReferenceOps.PagedAttention(qt, keyPages, valuePages, new PagedBatch(setup.Table.View, setup.Lengths.View,
            setup.Starts.View.Slice(0, 3)), yt, 1, 1f), "batch.QueryStarts", "needs batch + 1 = 4");
        Throws<ArgumentException>(() => ReferenceOps.PagedAttention(qt, keyPages, valuePages, setup.Batch, qt, 1, 1f), "destination", "overlaps q");
        var strided = DeviceTensor.Strided(keyPages.AsView<float>(), [6, 16, 8], [256, 8, 1]);
        Throws<ArgumentException>(() => ReferenceOps.PagedAttention(qt, strided, valuePages, setup.Batch, yt, 1, 1f), "keyPages", "not contiguous");
        using var keys = Upload(RandomValues(2 * 8, 4));
        using var slots = Upload(new[] { 0, 1 });
        Throws<ArgumentException>(() => ReferenceOps.KvAppend(keys.AsTensor(2, 8), keys.AsTensor(2, 8), slots.View, keyPages, default), "valuePages",
            "values and valuePages come together");
        Throws<ArgumentException>(() => ReferenceOps.KvAppend(keys.AsTensor(2, 8), default, slots.View.Slice(0, 1), keyPages, default), "slotMapping",
            "needs keys' tokens = 2");
        Throws<ArgumentException>(() => ReferenceOps.KvAppend(keyPages.Reshape(PoolPages * 16, 8).Rows(0, 2), default, slots.View, keyPages, default),
            "keyPages", "overlaps keys");
        AllNaN(y.ToArray(), "destination");
    }
}
