using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Conformance;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The ILGPU attention kernels (Rope, KvAppend, PagedAttention, PagedMlaAttention) on ILGPU's CPU accelerator against the
/// reference, beyond what the conformance classes cover: the long-context split path (a decode of 3000 keys, prefill rows
/// across chunk boundaries, a sequence with no queries), bf16 q and destination, the one-split kernel against the split
/// path bit for bit (a row's result does not depend on the plan), exactly the reference's first error for bad metadata
/// (and the good sequences still computed, the bad ones not written), and Rope and KvAppend bit for bit.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class IlgpuAttentionTests
{
    static Ops Ilgpu => ConformanceBackends.IlgpuCpu;

    /// <summary>An f32 or bf16 device buffer filled from float values (bf16: rounded to nearest even).</summary>
    sealed class Buffer : IDisposable
    {
        readonly DeviceBuffer<float>? _f32;
        readonly DeviceBuffer<BFloat16>? _bf16;

        public Buffer(ElementType type, float[] values)
        {
            if (type == ElementType.F32)
                _f32 = Upload(values);
            else
                _bf16 = Upload(values.Select(BFloat16.FromSingle).ToArray());
        }

        public DeviceTensor Tensor(params long[] shape) => _f32 != null ? _f32.AsTensor(shape) : _bf16!.AsTensor(shape);

        public float[] Read() => _f32?.ToArray() ?? TestData.ToFloat<BFloat16>(_bf16!.ToArray());

        public void Dispose()
        {
            _f32?.Dispose();
            _bf16?.Dispose();
        }
    }

    static ElementType TypeOf(string name) => name == "bf16" ? ElementType.BF16 : ElementType.F32;

    /// <summary>A batch over a pool of <paramref name="poolPages"/> pages handed out in a shuffled order; unused entries -1.</summary>
    static (int[] Table, int[] Lengths, int[] Starts, int[][] Pages) Layout((int Length, int Queries)[] sequences, int pageSize, int maxPages,
        int poolPages, int seed)
    {
        var free = Enumerable.Range(0, poolPages).ToArray();
        new Random(seed).Shuffle(free);
        var table = Enumerable.Repeat(-1, sequences.Length * maxPages).ToArray();
        var starts = new int[sequences.Length + 1];
        var pages = new int[sequences.Length][];
        int next = 0;
        for (int b = 0; b < sequences.Length; b++)
        {
            pages[b] = free.AsSpan(next, (sequences[b].Length + pageSize - 1) / pageSize).ToArray();
            next += pages[b].Length;
            pages[b].CopyTo(table, b * maxPages);
            starts[b + 1] = starts[b] + sequences[b].Queries;
        }
        return (table, sequences.Select(s => s.Length).ToArray(), starts, pages);
    }

    /// <summary>A NaN pool with random rows at every slot a sequence holds.</summary>
    static float[] Pool(int[][] pages, int[] lengths, int pageSize, int poolPages, int width, int seed)
    {
        var pool = Nan((long)poolPages * pageSize * width);
        var random = new Random(seed);
        for (int b = 0; b < pages.Length; b++)
            for (int p = 0; p < lengths[b]; p++)
            {
                int slot = pages[b][p / pageSize] * pageSize + p % pageSize;
                for (int c = 0; c < width; c++)
                    pool[(long)slot * width + c] = (float)(random.NextDouble() * 2 - 1);
            }
        return pool;
    }

    /// <summary>Row by row: ||actual - expected|| &lt;= relative ||expected|| + 1e-6, NaN exactly where expected is NaN.</summary>
    static void RowsClose(float[] expected, float[] actual, int rowWidth, double relative, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int r = 0; r < expected.Length / rowWidth; r++)
        {
            double diff = 0, norm = 0;
            for (int c = r * rowWidth; c < (r + 1) * rowWidth; c++)
            {
                Assert.True(float.IsNaN(expected[c]) == float.IsNaN(actual[c]), $"{what}: element {c}: expected {expected[c]}, got {actual[c]}");
                if (float.IsNaN(expected[c]))
                    continue;
                diff += Math.Pow(actual[c] - expected[c], 2);
                norm += Math.Pow(expected[c], 2);
            }
            Assert.True(Math.Sqrt(diff) <= relative * Math.Sqrt(norm) + 1e-6, $"{what}: row {r}: ||error|| {Math.Sqrt(diff):E2} against ||ref|| {Math.Sqrt(norm):E2}");
        }
    }

    /// <summary>The call on both backends into NaN outputs: the outputs and the error each recorded (null when none).</summary>
    static (float[] Reference, float[] Ilgpu, DeviceIndexException? ReferenceError, DeviceIndexException? IlgpuError) Both(
        ElementType destinationType, int outputs, Action<Ops, DeviceTensor> call, params long[] shape)
    {
        float[] Run(Ops ops, out DeviceIndexException? error)
        {
            using var y = new Buffer(destinationType, Nan(outputs));
            error = null;
            try
            {
                call(ops, y.Tensor(shape));
                CpuRuntime.Synchronize();
            }
            catch (DeviceIndexException e)
            {
                error = e;
            }
            return y.Read();
        }
        var reference = Run(ReferenceOps, out var referenceError);
        var ilgpu = Run(Ilgpu, out var ilgpuError);
        return (reference, ilgpu, referenceError, ilgpuError);
    }

    /// <summary>The same bits, NaN included (unwritten slots stay the NaN they were).</summary>
    static void Bitwise(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
        Assert.Contains(expected, v => !float.IsNaN(v));
    }

    static void SameError(DeviceIndexException? expected, DeviceIndexException? actual, string what)
    {
        Assert.True((expected == null) == (actual == null), $"{what}: reference {expected?.Message ?? "no error"}; ILGPU {actual?.Message ?? "no error"}");
        if (expected == null)
            return;
        Assert.Equal(expected.Message, actual!.Message);
        Assert.Equal((expected.Site, expected.Index, expected.Value, expected.Bound, expected.OutOfOrder),
            (actual.Site, actual.Index, actual.Value, actual.Bound, actual.OutOfOrder));
    }

    public static TheoryData<string, string, string> Types() => new()
    {
        // q, pages, destination
        { "f32", "f32", "f32" },
        { "bf16", "f32", "f32" },
        { "f32", "bf16", "bf16" },
        { "bf16", "bf16", "bf16" },
    };

    /// <summary>
    /// A decode of 3000 keys (94 splits of 32 on the CPU accelerator), a prefill chunk of 40 rows whose causal windows cross
    /// chunk boundaries, a sequence with no queries in the step and a short chunk: GQA 2:1 and MLA against the reference.
    /// </summary>
    [Theory, MemberData(nameof(Types))]
    public void LongContextsTakeTheSplitPathAndMatchTheReference(string qType, string poolType, string yType)
    {
        const int pageSize = 16, maxPages = 200, poolPages = 260;
        (int, int)[] sequences = [(3000, 1), (100, 40), (10, 0), (45, 2)];
        var (table, lengths, starts, pages) = Layout(sequences, pageSize, maxPages, poolPages, seed: 5);
        Assert.True(PagedAttentionIlgpu.Plan(cuda: false, (long)maxPages * pageSize).Splits == 100);
        int tokens = starts[^1];
        using var dTable = Upload(table);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
        double tolerance = yType == "bf16" ? 1e-2 : 1e-5;

        // GQA: 4 query heads over 2 kv heads of 16, values of 8
        {
            const int qHeads = 4, kvHeads = 2, headDim = 16, vHeadDim = 8;
            using var q = new Buffer(TypeOf(qType), RandomValues(tokens * qHeads * headDim, 1));
            using var keys = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, kvHeads * headDim, 2));
            using var values = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, kvHeads * vHeadDim, 3));
            var (expected, actual, e1, e2) = Both(TypeOf(yType), tokens * qHeads * vHeadDim,
                (ops, y) => ops.PagedAttention(q.Tensor(tokens, qHeads, headDim), keys.Tensor(poolPages, pageSize, kvHeads * headDim),
                    values.Tensor(poolPages, pageSize, kvHeads * vHeadDim), batch, y, kvHeads, 0.25f), tokens, qHeads, vHeadDim);
            SameError(e1, e2, "GQA");
            Assert.DoesNotContain(expected, float.IsNaN);
            RowsClose(expected, actual, vHeadDim, tolerance, $"PagedAttention q={qType} pages={poolType} y={yType}");
        }
        // MLA: 3 heads over one latent head of 32 + 8
        {
            const int heads = 3, latent = 32, width = 40;
            using var q = new Buffer(TypeOf(qType), RandomValues(tokens * heads * width, 4));
            using var rows = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, width, 5));
            var (expected, actual, e1, e2) = Both(TypeOf(yType), tokens * heads * latent,
                (ops, y) => ops.PagedMlaAttention(q.Tensor(tokens, heads, width), rows.Tensor(poolPages, pageSize, width), batch, y, 0.2f),
                tokens, heads, latent);
            SameError(e1, e2, "MLA");
            Assert.DoesNotContain(expected, float.IsNaN);
            RowsClose(expected, actual, latent, tolerance, $"PagedMlaAttention q={qType} pages={poolType} y={yType}");
        }
    }

    /// <summary>
    /// Rows that fit in one chunk get bitwise the same output from the one-split kernel (a block table of at most 32 keys)
    /// and from the split path (the same sequences in a wider block table): the plan never changes a row's result. Head
    /// rows of 12 and 10 take the generic kernel, rows of whole 16-byte vectors the vector kernel.
    /// </summary>
    [Theory]
    [InlineData("f32", 12, 10), InlineData("bf16", 12, 10), InlineData("f32", 16, 8), InlineData("bf16", 16, 8), InlineData("bf16", 32, 32)]
    public void TheOneSplitKernelAndTheSplitPathAgreeBitwise(string poolType, int headDim, int vHeadDim)
    {
        const int pageSize = 8, poolPages = 12, qHeads = 6, kvHeads = 3;
        int lanes = poolType == "bf16" ? 8 : 4;
        Assert.Equal(headDim % lanes == 0 && vHeadDim % lanes == 0, PagedAttentionIlgpu.PlanVectors(headDim, vHeadDim, 16 / lanes, Support.TestDevices.Cpu.Accelerator.WarpSize) != null);
        (int, int)[] sequences = [(20, 20), (32, 1), (9, 3)];
        var (narrowTable, lengths, starts, pages) = Layout(sequences, pageSize, 4, poolPages, seed: 9);
        Assert.Equal(1, PagedAttentionIlgpu.Plan(cuda: false, 4 * pageSize).Splits);
        var wideTable = Enumerable.Repeat(-1, sequences.Length * 10).ToArray();
        for (int b = 0; b < sequences.Length; b++)
            pages[b].CopyTo(wideTable, b * 10);
        Assert.True(PagedAttentionIlgpu.Plan(cuda: false, 10 * pageSize).Splits > 1);
        int tokens = starts[^1];
        using var dNarrow = Upload(narrowTable);
        using var dWide = Upload(wideTable);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        using var q = Upload(RandomValues(tokens * qHeads * headDim, 11));
        using var keys = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, kvHeads * headDim, 12));
        using var values = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, kvHeads * vHeadDim, 13));
        float[] Run(DeviceBuffer<int> table)
        {
            using var y = Poisoned(tokens * qHeads * vHeadDim);
            Ilgpu.PagedAttention(q.AsTensor(tokens, qHeads, headDim), keys.Tensor(poolPages, pageSize, kvHeads * headDim),
                values.Tensor(poolPages, pageSize, kvHeads * vHeadDim), new PagedBatch(table.View, dLengths.View, dStarts.View),
                y.AsTensor(tokens, qHeads, vHeadDim), kvHeads, 0.3f);
            return y.ToArray();
        }
        var narrow = Run(dNarrow);
        Assert.DoesNotContain(narrow, float.IsNaN);
        Exact(narrow, Run(dWide), "one split vs. the split path");
    }

    /// <summary>
    /// A row's output does not depend on the other sequences of its step, bit for bit: each sequence alone (a decode step for
    /// the one-query sequence) against the whole batch, whose prefill tiles of 4 queries (MHA) or 2 (GQA 2:1) span sequences
    /// and whose windows end at different keys; contexts over several splits; the vector kernel and the generic one.
    /// </summary>
    [Theory]
    [InlineData("bf16", 2, 2, 16), InlineData("f32", 4, 2, 8), InlineData("bf16", 8, 1, 16), InlineData("f32", 2, 1, 12)]
    public void ARowsOutputDoesNotDependOnItsBatchBitwise(string poolType, int qHeads, int kvHeads, int headDim)
    {
        const int pageSize = 8, maxPages = 12, poolPages = 30;
        (int, int)[] sequences = [(40, 5), (70, 1), (33, 3), (7, 2)];
        var (table, lengths, starts, pages) = Layout(sequences, pageSize, maxPages, poolPages, seed: 17);
        int tokens = starts[^1], width = kvHeads * headDim;
        var qValues = RandomValues(tokens * qHeads * headDim, 18);
        using var keys = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, width, 19));
        using var values = new Buffer(TypeOf(poolType), Pool(pages, lengths, pageSize, poolPages, width, 20));
        float[] Run(int[] t, int[] l, int[] st, float[] qRows)
        {
            int rows = st[^1];
            using var dTable = Upload(t);
            using var dLengths = Upload(l);
            using var dStarts = Upload(st);
            using var q = Upload(qRows);
            using var y = Poisoned(rows * qHeads * headDim);
            Ilgpu.PagedAttention(q.AsTensor(rows, qHeads, headDim), keys.Tensor(poolPages, pageSize, width), values.Tensor(poolPages, pageSize, width),
                new PagedBatch(dTable.View, dLengths.View, dStarts.View), y.AsTensor(rows, qHeads, headDim), kvHeads, 0.3f);
            return y.ToArray();
        }
        var whole = Run(table, lengths, starts, qValues);
        Assert.DoesNotContain(whole, float.IsNaN);
        int rowWidth = qHeads * headDim;
        for (int b = 0; b < sequences.Length; b++)
        {
            int n = starts[b + 1] - starts[b];
            var alone = Run(table.AsSpan(b * maxPages, maxPages).ToArray(), [lengths[b]], [0, n],
                qValues.AsSpan(starts[b] * rowWidth, n * rowWidth).ToArray());
            Exact(whole.AsSpan(starts[b] * rowWidth, n * rowWidth).ToArray(), alone, $"sequence {b} alone vs. in the batch");
        }
    }

    /// <summary>
    /// The vector kernel's lane groups: on CUDA's 32-lane warps a 128-wide bf16 head row takes 16 lanes of one 16-byte chunk
    /// (8 elements) each, an f32 row 32 lanes of 4 elements, a 64-wide bf16 row 8 lanes; on a 4-lane warp (ILGPU's
    /// default CPU shape) the same rows take 4 and 8 chunks a lane. Rows not whole vectors, or wider than 256, take the generic kernel.
    /// </summary>
    [Fact]
    public void TheVectorPlanSpreadsAKeyRowOverALaneGroup()
    {
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(16, 1), PagedAttentionIlgpu.PlanVectors(128, 128, 2, 32));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(32, 1), PagedAttentionIlgpu.PlanVectors(128, 128, 4, 32));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(8, 1), PagedAttentionIlgpu.PlanVectors(64, 64, 2, 32));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(32, 1), PagedAttentionIlgpu.PlanVectors(256, 256, 2, 32));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(32, 2), PagedAttentionIlgpu.PlanVectors(256, 128, 4, 32));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(4, 4), PagedAttentionIlgpu.PlanVectors(128, 128, 2, 4));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(4, 8), PagedAttentionIlgpu.PlanVectors(128, 128, 4, 4));
        Assert.Null(PagedAttentionIlgpu.PlanVectors(12, 12, 2, 32));
        Assert.Equal(new PagedAttentionIlgpu.VectorPlan(4, 1), PagedAttentionIlgpu.PlanVectors(12, 12, 4, 32));
        Assert.Null(PagedAttentionIlgpu.PlanVectors(16, 12, 2, 32));
        Assert.Null(PagedAttentionIlgpu.PlanVectors(576, 512, 2, 32));
        Assert.Null(PagedAttentionIlgpu.PlanVectors(256, 256, 4, 4));
    }

    /// <summary>
    /// Bad metadata, several errors at once: ILGPU records exactly the reference's first error (query offsets in range, then
    /// in order; then per sequence its length, then its pages; a sequence with no queries has its pages unchecked), computes
    /// the good sequences as the reference does and leaves the bad ones' rows unwritten.
    /// </summary>
    [Fact]
    public void BadMetadataGivesTheReferencesFirstErrorAndSkipsOnlyTheBadSequences()
    {
        const int pageSize = 16, pool = 12, tokens = 9, heads = 2, headDim = 8;
        int[] table = [7, -1, -1, -1, 3, 10, 0, -1, 11, 2, -1, -1];
        int[] lengths = [5, 38, 19];
        int[] starts = [0, 5, 6, 9];
        var cases = new (string What, int[] Table, int[] Lengths, int[] Starts)[]
        {
            ("good", table, lengths, starts),
            ("a page outside the pool in sequence 1, a length too long in sequence 2", [7, -1, -1, -1, 3, 10, 12, -1, 11, 2, -1, -1], [5, 38, 70], starts),
            ("a length shorter than the queries in sequence 0, a negative page in sequence 2", [7, -1, -1, -1, 3, 10, 0, -1, -11, 2, -1, -1], [4, 38, 19], starts),
            ("a negative length", table, [5, -3, 19], starts),
            ("an offset past the tokens and a decrease", table, lengths, [0, 6, 5, 10]),
            ("a decrease", table, lengths, [0, 5, 4, 9]),
            ("no queries for sequence 1, whose pages are bad; then a length too long", [7, -1, -1, -1, -3, 99, 0, -1, 11, 2, -1, -1], [5, 38, 65], [0, 5, 5, 8]),
            ("rows before the first sequence", table, [5, 38, 19], [2, 5, 6, 9]),
        };
        var pages = new[] { new[] { 7 }, new[] { 3, 10, 0 }, new[] { 11, 2 } };
        using var keys = Upload(Pool(pages, lengths, pageSize, pool, headDim, 21));
        using var values = Upload(Pool(pages, lengths, pageSize, pool, headDim, 22));
        using var q = Upload(RandomValues(tokens * heads * headDim, 23));
        using var latent = Upload(Pool(pages, lengths, pageSize, pool, headDim, 24));
        foreach (var (what, t, l, s) in cases)
        {
            using var dTable = Upload(t);
            using var dLengths = Upload(l);
            using var dStarts = Upload(s);
            var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
            var (expected, actual, e1, e2) = Both(ElementType.F32, tokens * heads * headDim,
                (ops, y) => ops.PagedAttention(q.AsTensor(tokens, heads, headDim), keys.AsTensor(pool, pageSize, headDim),
                    values.AsTensor(pool, pageSize, headDim), batch, y, 1, 0.5f), tokens, heads, headDim);
            SameError(e1, e2, what);
            RowsClose(expected, actual, headDim, 1e-5, what);
            var (mlaExpected, mlaActual, m1, m2) = Both(ElementType.F32, tokens * heads * 6,
                (ops, y) => ops.PagedMlaAttention(q.AsTensor(tokens, heads, headDim), latent.AsTensor(pool, pageSize, headDim), batch, y, 0.5f),
                tokens, heads, 6);
            SameError(m1, m2, "MLA: " + what);
            RowsClose(mlaExpected, mlaActual, 6, 1e-5, "MLA: " + what);
        }
    }

    /// <summary>Rope on ILGPU's CPU accelerator gives the reference's bits, f32 and bf16, both layouts; bad positions as the reference reports them.</summary>
    [Theory]
    [InlineData("f32", RopeLayout.HalfSplit), InlineData("f32", RopeLayout.Interleaved), InlineData("bf16", RopeLayout.HalfSplit), InlineData("bf16", RopeLayout.Interleaved)]
    public void RopeIsBitwiseTheReference(string type, RopeLayout layout)
    {
        const int tokens = 5, heads = 3, headStride = 24, offset = 4, rotary = 16, maxPositions = 50;
        using var table = RopeTable.Create(CpuRuntime, RopeScaling.Plain(10000), rotary, maxPositions);
        using var positions = Upload(new[] { 49, 0, 7, 7, 23 });
        var x = RandomValues(tokens * heads * headStride, 31);
        float[] Run(Ops ops, DeviceBuffer<int> p, out DeviceIndexException? error)
        {
            using var buffer = new Buffer(TypeOf(type), x);
            error = null;
            try
            {
                ops.Rope(buffer.Tensor(tokens * heads * headStride), p.View, table, heads, headStride, offset, layout);
                CpuRuntime.Synchronize();
            }
            catch (DeviceIndexException e)
            {
                error = e;
            }
            return buffer.Read();
        }
        var expected = Run(ReferenceOps, positions, out var e1);
        Exact(expected, Run(Ilgpu, positions, out var e2), $"Rope {type} {layout}");
        SameError(e1, e2, "good positions");
        Assert.NotEqual(x, expected);
        using var bad = Upload(new[] { 3, 50, -1, 0, 60 });
        Run(ReferenceOps, bad, out e1);
        Run(Ilgpu, bad, out e2);
        Assert.NotNull(e1);
        SameError(e1, e2, "bad positions");
    }

    /// <summary>KvAppend with keys and values of different types into pools of different types gives the reference's bits.</summary>
    [Fact]
    public void KvAppendOfMixedTypesIsBitwiseTheReference()
    {
        const int tokens = 6, pageSize = 4, pool = 5, keyWidth = 20, valueWidth = 12;
        var fused = RandomValues(tokens * 40, 41, 3f);
        var values = RandomValues(tokens * valueWidth, 42, 3f);
        int[] slots = [19, 0, 7, 8, 12, 3];
        (float[] Keys, float[] Values) Run(Ops ops, DeviceBuffer<int> s, out DeviceIndexException? error)
        {
            using var keyRows = new Buffer(ElementType.BF16, fused);
            using var valueRows = new Buffer(ElementType.F32, values);
            using var keyPages = new Buffer(ElementType.F32, Nan(pool * pageSize * keyWidth));
            using var valuePages = new Buffer(ElementType.BF16, Nan(pool * pageSize * valueWidth));
            error = null;
            try
            {
                ops.KvAppend(keyRows.Tensor(tokens, 40).Columns(5, keyWidth), valueRows.Tensor(tokens, valueWidth), s.View,
                    keyPages.Tensor(pool, pageSize, keyWidth), valuePages.Tensor(pool, pageSize, valueWidth));
                CpuRuntime.Synchronize();
            }
            catch (DeviceIndexException e)
            {
                error = e;
            }
            return (keyPages.Read(), valuePages.Read());
        }
        using var good = Upload(slots);
        var (k1, v1) = Run(ReferenceOps, good, out var e1);
        var (k2, v2) = Run(Ilgpu, good, out var e2);
        SameError(e1, e2, "good slots");
        Bitwise(k1, k2, "key pages");
        Bitwise(v1, v2, "value pages");
        using var bad = Upload(new[] { 19, 20, 7, -4, 12, 3 });
        Run(ReferenceOps, bad, out e1);
        Run(Ilgpu, bad, out e2);
        Assert.NotNull(e1);
        SameError(e1, e2, "bad slots");
    }

    /// <summary>
    /// With a caller's workspace (<see cref="PagedBatch.Workspace"/>) holding the split partials of 1, 3 or 7 query rows, the
    /// ILGPU kernels take the 43 rows of a mixed batch (a decode of 3000 keys in 100 splits, a 40-row prefill chunk, a short
    /// chunk) in 43, 15 or 7 passes: the output is bit for bit that of one pass over the backend's own scratch, for the
    /// vector kernel (GQA, 16-wide heads), the warp kernel (GQA, 6-wide heads) and MLA; the workspace starts full of NaN
    /// (never read before written).
    /// </summary>
    [Theory]
    [InlineData("vector", 1), InlineData("vector", 3), InlineData("vector", 7)]
    [InlineData("warp", 1), InlineData("warp", 7)]
    [InlineData("mla", 1), InlineData("mla", 3)]
    public void ACallersWorkspaceTakesTheRowsInPassesBitForBit(string kernel, int rowsPerPass)
    {
        const int pageSize = 16, maxPages = 200, poolPages = 260;
        (int, int)[] sequences = [(3000, 1), (100, 40), (10, 0), (45, 2)];
        var (table, lengths, starts, pages) = Layout(sequences, pageSize, maxPages, poolPages, seed: 7);
        int splits = PagedAttentionIlgpu.Plan(cuda: false, (long)maxPages * pageSize).Splits;
        int tokens = starts[^1];
        using var dTable = Upload(table);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
        int qHeads = kernel == "mla" ? 3 : 4, kvHeads = kernel == "mla" ? 1 : 2;
        int headDim = kernel switch { "vector" => 16, "warp" => 6, _ => 40 };
        int vHeadDim = kernel switch { "vector" => 8, "warp" => 5, _ => 32 };
        using var q = new Buffer(ElementType.F32, RandomValues(tokens * qHeads * headDim, 11));
        using var keys = new Buffer(ElementType.BF16, Pool(pages, lengths, pageSize, poolPages, kvHeads * headDim, 12));
        using var values = new Buffer(ElementType.BF16, Pool(pages, lengths, pageSize, poolPages, kvHeads * vHeadDim, 13));
        float[] Run(PagedBatch b)
        {
            using var y = new Buffer(ElementType.F32, Nan(tokens * qHeads * vHeadDim));
            if (kernel == "mla")
                Ilgpu.PagedMlaAttention(q.Tensor(tokens, qHeads, headDim), keys.Tensor(poolPages, pageSize, headDim), b, y.Tensor(tokens, qHeads, vHeadDim), 0.2f);
            else
                Ilgpu.PagedAttention(q.Tensor(tokens, qHeads, headDim), keys.Tensor(poolPages, pageSize, kvHeads * headDim),
                    values.Tensor(poolPages, pageSize, kvHeads * vHeadDim), b, y.Tensor(tokens, qHeads, vHeadDim), kvHeads, 0.25f);
            CpuRuntime.Synchronize();
            return y.Read();
        }
        var onePass = Run(batch);
        long perRow = (long)qHeads * splits * (vHeadDim + 2);
        using var workspace = Upload(Enumerable.Repeat(BitConverter.SingleToInt32Bits(float.NaN), (int)(rowsPerPass * perRow + perRow - 1)).ToArray());
        var passes = Run(batch with { Workspace = workspace.View });
        Bitwise(onePass, passes, $"{kernel}, {rowsPerPass} row(s) a pass");
        Assert.DoesNotContain(onePass.Take(4 * qHeads * vHeadDim), float.IsNaN); // the decode row and the chunk's first rows were written
    }

    /// <summary>
    /// A workspace that cannot hold one query row's split partials is refused before anything runs (the destination keeps
    /// its NaN), naming the sizes and the way to size it; one that overlaps the step's metadata is refused by the op API.
    /// </summary>
    [Fact]
    public void AWorkspaceTooSmallOrOverlappingTheMetadataIsRefused()
    {
        const int pageSize = 16, maxPages = 20, poolPages = 30, qHeads = 2, headDim = 8;
        var (table, lengths, starts, pages) = Layout([(300, 1)], pageSize, maxPages, poolPages, seed: 9);
        int splits = PagedAttentionIlgpu.Plan(cuda: false, (long)maxPages * pageSize).Splits;
        Assert.True(splits > 1);
        using var dTable = Upload(table);
        using var dLengths = Upload(lengths);
        using var dStarts = Upload(starts);
        using var q = new Buffer(ElementType.F32, RandomValues(qHeads * headDim, 14));
        using var rows = new Buffer(ElementType.F32, Pool(pages, lengths, pageSize, poolPages, headDim, 15));
        using var y = new Buffer(ElementType.F32, Nan(qHeads * headDim));
        long perRow = (long)qHeads * splits * (headDim + 2);
        using var small = Upload(new int[perRow - 1]);
        var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
        var e = Assert.Throws<ArgumentException>(() => Ilgpu.PagedMlaAttention(q.Tensor(1, qHeads, headDim), rows.Tensor(poolPages, pageSize, headDim),
            batch with { Workspace = small.View }, y.Tensor(1, qHeads, headDim), 0.3f));
        Assert.Contains($"PagedMlaAttention: batch.Workspace holds {(perRow - 1) * 4:N0} bytes; one query row's split partials take {perRow * 4:N0}", e.Message);
        Assert.Contains("PagedBatch.WorkspaceBytes", e.Message);
        CpuRuntime.Synchronize();
        Assert.All(y.Read(), v => Assert.True(float.IsNaN(v)));

        var overlap = Assert.Throws<ArgumentException>(() => Ilgpu.PagedMlaAttention(q.Tensor(1, qHeads, headDim), rows.Tensor(poolPages, pageSize, headDim),
            batch with { Workspace = dTable.View }, y.Tensor(1, qHeads, headDim), 0.3f));
        Assert.Contains("batch.Workspace overlaps batch.BlockTable", overlap.Message);
        var reference = Assert.Throws<ArgumentException>(() => ReferenceOps.PagedMlaAttention(q.Tensor(1, qHeads, headDim), rows.Tensor(poolPages, pageSize, headDim),
            batch with { Workspace = dStarts.View }, y.Tensor(1, qHeads, headDim), 0.3f));
        Assert.Contains("batch.Workspace overlaps batch.QueryStarts", reference.Message); // checked by the op API on every backend
    }

    /// <summary>
    /// <see cref="PagedBatch.WorkspaceBytes"/>: a multiple of 256 bytes that holds the partials of max(rows, 8) query rows in
    /// splits of 256 keys plus the fixed part, no more whole rows than fit in 256 MiB unless 8 rows need more; at least one row
    /// at every backend's split size (ILGPU's CPU accelerator splits at 32 keys); refusals of sizes below 1.
    /// </summary>
    [Fact]
    public void TheWorkspaceFormulaHoldsItsRowsAtEverySplitSize()
    {
        foreach (var (rows, heads, dim, keys, batch) in new[] { (1, 128, 512, 4096, 1), (64, 32, 128, 2048, 64), (3, 4, 8, 300, 3), (200, 16, 512, 163840, 200),
                     (128, 128, 512, 4096, 128), (4, 128, 512, 163840, 4) })
        {
            long bytes = PagedBatch.WorkspaceBytes(rows, heads, dim, keys, batch);
            Assert.Equal(0, bytes % 256);
            long splits = (keys + 255) / 256, perRow = heads * splits * (dim + 2L) * 4;
            long need = Math.Max(8, Math.Min(rows, (256L << 20) / perRow)) * perRow; // 128 x 128 heads at 4096 keys: capped; 4 x 128 at 163840: 8 rows, past the cap
            Assert.Equal((Math.Max(8, Math.Min(rows, (256L << 20) / perRow)), splits, perRow), PagedBatch.WorkspaceRows(rows, heads, dim, keys));
            Assert.InRange(bytes - PagedBatch.WorkspaceFixedBytes(batch), need, need + 255);
            long cpuRow = (long)heads * PagedAttentionIlgpu.Plan(cuda: false, keys).Splits * (dim + 2) * 4;
            Assert.True(bytes >= cpuRow, $"{heads} heads over {keys} keys: one CPU-accelerator row ({cpuRow} B) must fit in {bytes} B");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => PagedBatch.WorkspaceBytes(0, 1, 1, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => PagedBatch.WorkspaceBytes(1, 1, 1, 0, 1));
    }
}
