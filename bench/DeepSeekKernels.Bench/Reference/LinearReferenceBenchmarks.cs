using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Bench.Reference;

/// <summary>
/// The reference backend's Linear on the CPU (what <c>dsk generate</c> runs without a GPU):
/// <c>y [Rows, out] = x [Rows, in] @ W^T</c> for decode (1, 4 rows) and prefill (64 rows), against a copy of
/// the weight's bytes on as many threads. GB/s counts the bytes the op must move: the weight (and its FP8
/// scales) read once, x read, y written. The large weights rotate through copies that fill 96 MiB (3x this
/// machine's 32 MiB L3), so every call reads its weight from DRAM, as decode of a real model does; the embedded
/// model's matrix (256x768, 9.5 MB of weights in all) stays in cache, as it does when that model decodes.
/// Run with <c>--cpu</c> (Program.cs); needs no GPU.
/// </summary>
[CpuBenchmark]
public unsafe class LinearReferenceBenchmarks : IBandwidthBenchmark, IDisposable
{
    const long ArenaBytes = 96L << 20;
    const long ResidentBytes = 4L << 20; // weights below this are not rotated

    [Params(1, 4, 64)] public int Rows;
    [ParamsSource(nameof(Shapes))] public string Shape = "";

    /// <summary>out x in, stored form: a Llama-8B-size projection, DeepSeek-V3's expert down projection, the embedded model's MLP.</summary>
    public static IEnumerable<string> Shapes => ["4096x4096 bf16", "7168x2048 fp8", "256x768 bf16"];

    byte* _arena, _copy;
    float* _scales, _x, _y;
    long _weightBytes;
    int _slots, _next;
    (int Out, int In, ElementType Type) _shape;

    static (int Out, int In, ElementType Type) Parse(string shape)
    {
        var parts = shape.Split(' ', 'x');
        return (int.Parse(parts[0]), int.Parse(parts[1]), parts[2] == "fp8" ? ElementType.Fp8E4M3 : ElementType.BF16);
    }

    static int ScaleCount(int outFeatures, int inFeatures) => (outFeatures + 127) / 128 * ((inFeatures + 127) / 128);

    public long BytesMoved(string method)
    {
        var (outF, inF, type) = Parse(Shape);
        long weight = (long)outF * inF * (type == ElementType.BF16 ? 2 : 1) + (type == ElementType.BF16 ? 0 : 4L * ScaleCount(outF, inF));
        return method == BandwidthColumn.CopyMethod
            ? 2 * weight                                       // the copy reads and writes the weight's bytes
            : weight + 4L * Rows * inF + 4L * Rows * outF;     // W (+ scales) once, x in, y out
    }

    [GlobalSetup]
    public void Setup()
    {
        _shape = Parse(Shape);
        var (outF, inF, type) = _shape;
        _weightBytes = (long)outF * inF * (type == ElementType.BF16 ? 2 : 1);
        _slots = _weightBytes >= ResidentBytes ? (int)Math.Max(2, ArenaBytes / _weightBytes) : 1;
        _arena = (byte*)NativeMemory.AlignedAlloc((nuint)(_slots * _weightBytes), 64);
        _copy = (byte*)NativeMemory.AlignedAlloc((nuint)_weightBytes, 64);
        var random = new Random(1);
        long elements = _slots * (long)outF * inF;
        if (type == ElementType.BF16)
        {
            for (long i = 0; i < elements; i++)
                ((BFloat16*)_arena)[i] = BFloat16.FromSingle(random.NextSingle() * 0.2f - 0.1f);
        }
        else
        {
            for (long i = 0; i < elements; i++)
                _arena[i] = Float8E4M3.FromSingle(random.NextSingle() * 400f - 200f).Bits;
        }
        int scales = ScaleCount(outF, inF);
        _scales = (float*)NativeMemory.Alloc((nuint)scales, sizeof(float));
        for (int i = 0; i < scales; i++)
            _scales[i] = (0.5f + random.NextSingle()) * 1e-3f;
        _x = (float*)NativeMemory.Alloc((nuint)((long)Rows * inF), sizeof(float));
        _y = (float*)NativeMemory.Alloc((nuint)((long)Rows * outF), sizeof(float));
        for (long i = 0; i < (long)Rows * inF; i++)
            _x[i] = random.NextSingle() * 2 - 1;
    }

    [Benchmark(Baseline = true)]
    public void Copy()
    {
        byte* source = NextWeight();
        int threads = Environment.ProcessorCount;
        long chunk = (_weightBytes + threads - 1) / threads;
        Parallel.For(0, threads, t =>
        {
            long begin = t * chunk, count = Math.Min(chunk, _weightBytes - begin);
            Buffer.MemoryCopy(source + begin, _copy + begin, count, count);
        });
    }

    [Benchmark]
    public void Linear()
    {
        var (outF, inF, type) = _shape;
        var w = new WeightData(type, (nint)NextWeight(), type == ElementType.BF16 ? 0 : (nint)_scales, outF, inF, 1, 128, 128);
        LinearReference.Linear(w, (nint)_x, Rows, 0, (nint)_y);
    }

    byte* NextWeight() => _arena + _next++ % _slots * _weightBytes;

    [GlobalCleanup]
    public void Dispose()
    {
        NativeMemory.AlignedFree(_arena);
        NativeMemory.AlignedFree(_copy);
        NativeMemory.Free(_scales);
        NativeMemory.Free(_x);
        NativeMemory.Free(_y);
        _arena = _copy = null;
        _scales = _x = _y = null;
        GC.SuppressFinalize(this);
    }
}
