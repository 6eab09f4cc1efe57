using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Bench.Cpu;

/// <summary>
/// The CPU backend's paged attention (<see cref="CpuPagedAttention"/>) at the 0.31B Llama's shape (16 q heads, 4 kv heads,
/// head size 64, bf16 pages of 16 slots handed out in a shuffled order): decode (1 query) at contexts 512 and 4096 and a
/// prefill of 512 tokens, one layer per operation, against the reference (<see cref="PagedKvReference.Sequence"/>, which
/// gathers the bf16 pages into float32 arrays and runs a loop per (token, head)) and a copy of the layer's key and value
/// bytes (Copy, the baseline of "% of copy"). Sixteen layers' pools rotate, as a decode step walks them: 64 MB at
/// context 4096 (twice this machine's L3), 8 MB at 512. GB/s counts the key and value bytes read, q and y.
/// Run with <c>--cpu --filter '*CpuAttention*'</c>.
/// </summary>
[CpuBenchmark]
public unsafe class CpuAttentionBenchmarks : IBandwidthBenchmark, IDisposable
{
    const int QHeads = 16, KvHeads = 4, HeadDim = 64, PageSize = 16, Layers = 16;
    const int Width = KvHeads * HeadDim;

    [Params("decode 512", "decode 4096", "prefill 512")] public string Case = "";

    int _length, _count, _next;
    long _layerElements;
    ushort* _keys, _values, _copy; // [Layers, pages, PageSize, Width] bf16
    float* _q, _y;
    int[] _pages = [];
    PagedAttentionShape _shape;
    CpuThreadPool _pool = null!, _one = null!;

    (int Length, int Count) Parse() => Case switch
    {
        "decode 512" => (512, 1),
        "decode 4096" => (4096, 1),
        _ => (512, 512),
    };

    public long BytesMoved(string method)
    {
        var (length, count) = Parse();
        long kv = 2L * length * Width * sizeof(ushort);
        return method == BandwidthColumn.CopyMethod ? 2 * kv : kv + 4L * count * QHeads * HeadDim * 2;
    }

    [GlobalSetup]
    public void Setup()
    {
        (_length, _count) = Parse();
        _pool = CpuThreadPool.Shared;
        _one = new CpuThreadPool(1);
        int pages = _length / PageSize;
        _pages = Enumerable.Range(0, pages).ToArray();
        var random = new Random(1);
        random.Shuffle(_pages);
        _layerElements = (long)pages * PageSize * Width;
        _keys = (ushort*)NativeMemory.AlignedAlloc((nuint)(Layers * _layerElements * 2), 64);
        _values = (ushort*)NativeMemory.AlignedAlloc((nuint)(Layers * _layerElements * 2), 64);
        _copy = (ushort*)NativeMemory.AlignedAlloc((nuint)(2 * _layerElements * 2), 64);
        for (long i = 0; i < Layers * _layerElements; i++)
        {
            _keys[i] = BFloat16.FromSingle(random.NextSingle() * 2 - 1).Bits;
            _values[i] = BFloat16.FromSingle(random.NextSingle() * 2 - 1).Bits;
        }
        _q = (float*)NativeMemory.AlignedAlloc((nuint)((long)_count * QHeads * HeadDim * 4), 64);
        _y = (float*)NativeMemory.AlignedAlloc((nuint)((long)_count * QHeads * HeadDim * 4), 64);
        for (long i = 0; i < (long)_count * QHeads * HeadDim; i++)
            _q[i] = random.NextSingle() * 2 - 1;
        _shape = new PagedAttentionShape(_count, 1, pages, pages, PageSize, QHeads, KvHeads, HeadDim, HeadDim, 0.125f);
    }

    [Benchmark(Baseline = true)]
    public void Copy()
    {
        long layer = _next++ % Layers * _layerElements, half = _layerElements;
        ushort* keys = _keys + layer, values = _values + layer;
        Parallel.For(0, 2, t => Buffer.MemoryCopy(t == 0 ? keys : values, _copy + t * half, half * 2, half * 2));
    }

    [Benchmark]
    public void Reference()
    {
        long layer = _next++ % Layers * _layerElements;
        PagedKvReference.Sequence((nint)_q, (nint)(_keys + layer), (nint)(_values + layer), ElementType.BF16, _pages, _length, _count,
            (nint)_y, _shape, mla: false);
    }

    [Benchmark]
    public void Cpu() => Ours(_pool);

    [Benchmark]
    public void CpuOneThread() => Ours(_one);

    void Ours(CpuThreadPool pool)
    {
        long layer = _next++ % Layers * _layerElements;
        CpuPagedAttention.Sequence(pool, (nint)_q, (nint)(_keys + layer), (nint)(_values + layer), ElementType.BF16, _pages, _length, _count,
            (nint)_y, _shape, mla: false);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        NativeMemory.AlignedFree(_keys);
        NativeMemory.AlignedFree(_values);
        NativeMemory.AlignedFree(_copy);
        NativeMemory.AlignedFree(_q);
        NativeMemory.AlignedFree(_y);
        _keys = _values = _copy = null;
        _q = _y = null;
        _one?.Dispose();
        GC.SuppressFinalize(this);
    }
}
