using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// <see cref="CpuPagedAttention"/> against the reference (<see cref="PagedKvReference.Sequence"/>, one sequence at a time)
/// on random data: f32 and bf16 pools, page sizes 1, 16, 64, head sizes 16, 64, 128 (and 20/36, 192/128, MLA's 576/512),
/// groups 1, 4, 8; each batch mixes a decode token, a whole prefill, a chunk continuing a cache and a sequence with no
/// queries, with lengths that are not multiples of the page size, over pages handed out in a shuffled order. Every unused
/// slot and page of the pool is NaN and every output row starts NaN, so a read outside a sequence's keys or an unwritten
/// output shows; the rows of the sequence without queries must stay NaN. Pools of 1 and 3 threads, and every vector width
/// this machine runs (512, 256, 128 bits). Tolerance: 1e-5 of sum_j w[j] |v[j]| (the magnitude of the output's terms).
/// </summary>
public unsafe class CpuPagedAttentionTests
{
    static readonly CpuThreadPool One = new(1), Three = new(3);

    static readonly int[] Widths = [.. new[] { 512, 256, 128 }.Where(b => b <= CpuPagedAttention.VectorBits)];

    public static TheoryData<ElementType, int, int, int> Grid()
    {
        var data = new TheoryData<ElementType, int, int, int>();
        foreach (var type in new[] { ElementType.F32, ElementType.BF16 })
            foreach (int pageSize in new[] { 1, 16, 64 })
                foreach (int headDim in new[] { 16, 64, 128 })
                    foreach (int group in new[] { 1, 4, 8 })
                        data.Add(type, pageSize, headDim, group);
        return data;
    }

    /// <summary>Two kv heads of <paramref name="group"/> q heads each; a decode token, a whole prefill, a chunk, an idle sequence.</summary>
    [Theory]
    [MemberData(nameof(Grid))]
    public void MatchesReference(ElementType type, int pageSize, int headDim, int group)
    {
        int seed = HashCode.Combine(type, pageSize, headDim, group) & 0x7fff;
        int index = (int)type * 31 + pageSize * 7 + headDim + group; // spreads threads and widths over the grid
        var shape = new[] { (83 + seed % 5, 1), (29 + seed % 3, 29 + seed % 3), (70 + seed % 7, 21), (12, 0) };
        Check(type, pageSize, kvHeads: 2, qHeads: 2 * group, headDim, headDim, shape, mla: false, threads: index % 2 == 0 ? 1 : 3,
            bits: Widths[index % Widths.Length], seed);
    }

    /// <summary>Head sizes that are not multiples of any vector (scalar tails), and a value size unlike the key size.</summary>
    [Theory]
    [InlineData(ElementType.F32, 512)]
    [InlineData(ElementType.BF16, 512)]
    [InlineData(ElementType.BF16, 256)]
    [InlineData(ElementType.F32, 128)]
    public void OddHeadSizes(ElementType type, int bits)
    {
        if (bits > CpuPagedAttention.VectorBits)
            Assert.Skip($"this machine runs at most {CpuPagedAttention.VectorBits}-bit vectors");
        Check(type, pageSize: 16, kvHeads: 3, qHeads: 6, headDim: 20, vHeadDim: 36, [(40, 1), (35, 35), (51, 9)], mla: false, threads: 3, bits, seed: 5);
        Check(type, pageSize: 16, kvHeads: 1, qHeads: 3, headDim: 3, vHeadDim: 5, [(17, 17), (9, 1)], mla: false, threads: 1, bits, seed: 6);
    }

    /// <summary>DeepSeek's non-absorbed head (192 key elements, 128 value elements), 8 heads as 8 kv heads.</summary>
    [Theory]
    [InlineData(ElementType.F32)]
    [InlineData(ElementType.BF16)]
    public void DeepSeekHeads(ElementType type) =>
        Check(type, pageSize: 16, kvHeads: 8, qHeads: 8, headDim: 192, vHeadDim: 128, [(45, 1), (33, 33), (60, 7)], mla: false, threads: 3, bits: 0, seed: 7);

    /// <summary>MLA: one latent kv head [512 | 64] whose first 512 elements are the values, 16 q heads.</summary>
    [Theory]
    [InlineData(ElementType.F32, 16, 3)]
    [InlineData(ElementType.BF16, 64, 1)]
    [InlineData(ElementType.BF16, 1, 3)]
    public void Mla(ElementType type, int pageSize, int threads) =>
        Check(type, pageSize, kvHeads: 1, qHeads: 16, headDim: 576, vHeadDim: 512, [(70, 1), (24, 24), (50, 5), (3, 0)], mla: true, threads, bits: 0, seed: 8);

    /// <summary>A long context: many tiles and pages, decode and a 40-token chunk, the 0.31B Llama's heads.</summary>
    [Theory]
    [InlineData(ElementType.BF16, 16)]
    [InlineData(ElementType.F32, 64)]
    public void LongContext(ElementType type, int pageSize) =>
        Check(type, pageSize, kvHeads: 4, qHeads: 16, headDim: 64, vHeadDim: 64, [(1500, 1), (700, 40)], mla: false, threads: 3, bits: 0, seed: 9);

    /// <summary>
    /// After a first call has sized the scratch, a call allocates nothing. Counted call by call on the calling thread: once in a
    /// full CI run (2026-12-02) the call after the warm one allocated 5,648 bytes, never reproduced alone, with its class, or
    /// under forced JIT tiering and OSR settings; the runtime's own work on the thread (a tier-up, a background worker started) is one-off
    /// where an allocation in the kernel would show in every call. So most of 8 warm calls must allocate nothing.
    /// </summary>
    [Fact]
    public void AllocatesNothingPerCall()
    {
        var data = new Data(ElementType.BF16, 16, kvHeads: 2, qHeads: 8, headDim: 64, vHeadDim: 64, [(100, 1), (50, 50)], mla: false, seed: 3);
        var (q, y) = data.Buffers();
        data.Call(One, 0, q, y);
        var bytes = new long[8];
        for (int i = 0; i < bytes.Length; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            data.Call(One, 0, q, y);
            bytes[i] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        string figures = $"bytes allocated by each of 8 warm calls: {string.Join(", ", bytes)}";
        TestContext.Current.TestOutputHelper?.WriteLine(figures);
        Assert.True(bytes.Count(b => b == 0) >= 6, figures);
    }

    static void Check(ElementType type, int pageSize, int kvHeads, int qHeads, int headDim, int vHeadDim, (int Length, int Count)[] shape,
        bool mla, int threads, int bits, int seed)
    {
        var data = new Data(type, pageSize, kvHeads, qHeads, headDim, vHeadDim, shape, mla, seed);
        var (expected, magnitude) = data.RunReference();
        var actual = data.RunCpu(threads == 1 ? One : Three, bits);
        string what = $"{type} pages of {pageSize}, {qHeads}/{kvHeads} heads of {headDim}/{vHeadDim}{(mla ? " (MLA)" : "")}, {threads} threads, {bits} bits";
        long row = (long)qHeads * vHeadDim;
        for (int b = 0; b < shape.Length; b++)
        {
            for (long i = data.Starts[b] * row; i < data.Starts[b + 1] * row; i++)
            {
                Assert.False(float.IsNaN(expected[i]), $"{what}: reference[{i}] is NaN (bad test data)");
                Assert.False(float.IsNaN(actual[i]), $"{what}: sequence {b}, element {i} is NaN (not written, or a NaN slot read)");
                double bound = 1e-5 * magnitude[i] + 1e-7;
                Assert.True(Math.Abs(actual[i] - expected[i]) <= bound,
                    $"{what}: sequence {b}, element {i}: expected {expected[i]}, got {actual[i]} (|diff| {Math.Abs(actual[i] - expected[i]):g3} > {bound:g3})");
            }
        }
        // rows of no sequence's queries (the idle sequence's are none; the extra token row after them) stay NaN
        for (long i = data.Starts[^1] * row; i < actual.Length; i++)
            Assert.True(float.IsNaN(actual[i]), $"{what}: element {i} of a row no query owns was written");
    }

    /// <summary>One batch: the pools (NaN where unused), its block table, q, and the shape.</summary>
    sealed class Data
    {
        public readonly int[] Starts;
        readonly ElementType _type;
        readonly int _pageSize, _tokens;
        readonly bool _mla;
        readonly byte[] _keys, _values, _absValues; // pinned pools: [poolPages, pageSize, width] of _type
        readonly int[] _table;
        readonly CpuPagedSequence[] _sequences;
        readonly float[] _q;
        readonly PagedAttentionShape _shape;

        public Data(ElementType type, int pageSize, int kvHeads, int qHeads, int headDim, int vHeadDim, (int Length, int Count)[] shape, bool mla, int seed)
        {
            (_type, _pageSize, _mla) = (type, pageSize, mla);
            var random = new Random(seed);
            int used = shape.Sum(s => (s.Length + pageSize - 1) / pageSize), poolPages = used + 3, maxPages = shape.Max(s => (s.Length + pageSize - 1) / pageSize) + 1;
            var order = Enumerable.Range(0, poolPages).ToArray();
            random.Shuffle(order);
            _table = Enumerable.Repeat(-1, shape.Length * maxPages).ToArray();
            int next = 0;
            for (int b = 0; b < shape.Length; b++)
                for (int p = 0; p < (shape[b].Length + pageSize - 1) / pageSize; p++)
                    _table[b * maxPages + p] = order[next++];
            Starts = new int[shape.Length + 1];
            for (int b = 0; b < shape.Length; b++)
                Starts[b + 1] = Starts[b] + shape[b].Count;
            _tokens = Starts[^1] + 1; // one more q / y row that no sequence owns
            _sequences = [.. shape.Select((s, b) => new CpuPagedSequence(Starts[b], s.Count, s.Length, b * maxPages))];
            int keyWidth = kvHeads * headDim, valueWidth = mla ? keyWidth : kvHeads * vHeadDim;
            long slots = (long)poolPages * pageSize;
            var keys = Nan(slots * keyWidth);
            var values = Nan(slots * valueWidth);
            for (int b = 0; b < shape.Length; b++)
            {
                for (int p = 0; p < shape[b].Length; p++)
                {
                    long slot = (long)_table[b * maxPages + p / pageSize] * pageSize + p % pageSize;
                    for (int e = 0; e < keyWidth; e++)
                        keys[slot * keyWidth + e] = Value(random);
                    for (int e = 0; e < valueWidth; e++)
                        values[slot * valueWidth + e] = Value(random);
                }
            }
            _keys = Pool(keys, type);
            _values = Pool(values, type);
            _absValues = Pool([.. values.Select(Math.Abs)], type);
            _q = new float[(long)_tokens * qHeads * headDim];
            for (long i = 0; i < _q.Length; i++)
                _q[i] = Value(random);
            _shape = new PagedAttentionShape(_tokens, shape.Length, maxPages, poolPages, pageSize, qHeads, kvHeads, headDim, vHeadDim,
                1f / MathF.Sqrt(headDim));
        }

        static float Value(Random random) => (0.05f + 1.45f * random.NextSingle()) * (random.Next(2) == 0 ? 1 : -1);

        static float[] Nan(long length)
        {
            var values = new float[length];
            Array.Fill(values, float.NaN);
            return values;
        }

        static byte[] Pool(float[] values, ElementType type)
        {
            if (type == ElementType.F32)
            {
                var bytes = GC.AllocateArray<byte>(values.Length * sizeof(float), pinned: true);
                MemoryMarshal.Cast<float, byte>(values).CopyTo(bytes);
                return bytes;
            }
            var rounded = GC.AllocateArray<byte>(values.Length * 2, pinned: true);
            BFloat16Conversions.FromSingle(values, MemoryMarshal.Cast<byte, BFloat16>(rounded.AsSpan()));
            return rounded;
        }

        /// <summary>A pinned array's address: the caller keeps the array alive while the address is used (GC.KeepAlive).</summary>
        static nint Address<T>(T[] array) where T : unmanaged => (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));

        long OutputLength => (long)_tokens * _shape.QHeads * _shape.VHeadDim;

        /// <summary>The reference, sequence by sequence, and sum_j w[j] |v[j]| (the reference over |values|; MLA: max |v| bound).</summary>
        public (float[] Output, double[] Magnitude) RunReference()
        {
            var y = Nan(OutputLength);
            var magnitude = new float[y.Length];
            fixed (float* q = _q, py = y, pm = magnitude)
            {
                long qRow = (long)_shape.QHeads * _shape.HeadDim, yRow = (long)_shape.QHeads * _shape.VHeadDim;
                foreach (var s in _sequences)
                {
                    if (s.Count == 0)
                        continue;
                    var pages = _table.AsSpan(s.TableOffset, (s.Length + _pageSize - 1) / _pageSize);
                    PagedKvReference.Sequence((nint)(q + s.QueryStart * qRow), Address(_keys), Address(_mla ? _keys : _values), _type, pages,
                        s.Length, s.Count, (nint)(py + s.QueryStart * yRow), _shape, _mla);
                    if (!_mla)
                        PagedKvReference.Sequence((nint)(q + s.QueryStart * qRow), Address(_keys), Address(_absValues), _type, pages,
                            s.Length, s.Count, (nint)(pm + s.QueryStart * yRow), _shape, false);
                }
            }
            GC.KeepAlive(this); // _keys, _values, _absValues were read through raw addresses
            if (_mla)
                MlaBound(magnitude);
            return (y, [.. magnitude.Select(m => (double)m)]);
        }

        /// <summary>MLA (values are the keys, so |values| would change the weights): the largest |v| a row's outputs sum.</summary>
        void MlaBound(float[] magnitude)
        {
            int width = _shape.HeadDim, dv = _shape.VHeadDim;
            foreach (var s in _sequences)
            {
                var largest = new float[dv];
                for (int p = 0; p < s.Length; p++)
                {
                    long slot = (long)_table[s.TableOffset + p / _pageSize] * _pageSize + p % _pageSize;
                    for (int e = 0; e < dv; e++)
                    {
                        float v = _type == ElementType.F32
                            ? BitConverter.ToSingle(_keys, (int)((slot * width + e) * 4))
                            : BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(_keys, (int)((slot * width + e) * 2)) << 16);
                        largest[e] = Math.Max(largest[e], Math.Abs(v));
                    }
                }
                for (int t = s.QueryStart; t < s.QueryStart + s.Count; t++)
                    for (int h = 0; h < _shape.QHeads; h++)
                        largest.CopyTo(magnitude, ((long)t * _shape.QHeads + h) * dv);
            }
        }

        /// <summary>Pinned q and a NaN output.</summary>
        public (float[] Q, float[] Y) Buffers()
        {
            var y = GC.AllocateArray<float>((int)OutputLength, pinned: true);
            Array.Fill(y, float.NaN);
            var q = GC.AllocateArray<float>(_q.Length, pinned: true);
            _q.CopyTo(q, 0);
            return (q, y);
        }

        public void Call(CpuThreadPool pool, int bits, float[] q, float[] y)
        {
            CpuPagedAttention.Run(pool, Address(q), Address(_keys), Address(_mla ? _keys : _values), _type, _table, _sequences,
                Address(y), _shape, _mla, bits);
            // The kernel reads these arrays through raw addresses: a GC while it runs must not free them (they are pinned,
            // not otherwise referenced once their addresses are taken).
            GC.KeepAlive(q);
            GC.KeepAlive(y);
            GC.KeepAlive(this);
        }

        public float[] RunCpu(CpuThreadPool pool, int bits)
        {
            var (q, y) = Buffers();
            Call(pool, bits, q, y);
            return y;
        }
    }
}
