using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Bench.Cpu;

/// <summary>
/// The CPU backend's decode GEMV (<see cref="CpuGemv.Run"/>, one x row) on the 0.31B Llama's matrices (q/o 1024x1024,
/// gate|up 8192x1024, down 1024x4096, lm_head 32000x1024) in each stored form, against the reference's Linear on the same
/// weight and a copy of the weight's bytes, on <see cref="CpuThreadPool.Shared"/> (the physical cores). GB/s counts the
/// bytes the op must move: the weight with its scales (and zero points) read once, x read, y written; the copy reads and
/// writes the weight's bytes. The weights rotate through copies that fill 96 MiB (3x this machine's 32 MiB L3), so every
/// call reads its weight from DRAM, as decode does. Run with <c>--cpu</c>; needs no GPU.
/// </summary>
[CpuBenchmark]
public unsafe class CpuGemvBenchmarks : IBandwidthBenchmark, IDisposable
{
    const long ArenaBytes = 96L << 20;

    [ParamsSource(nameof(Shapes))] public string Shape = "";
    [Params("bf16", "fp8", "int4", "f32")] public string Form = "";

    /// <summary>out x in.</summary>
    public static IEnumerable<string> Shapes => ["1024x1024", "8192x1024", "1024x4096", "32000x1024"];

    byte* _arena, _copy, _scales, _zeros;
    float* _x, _y;
    long _weightBytes, _scaleBytes;
    int _slots, _next, _out, _in;
    ElementType _type;

    static (int Out, int In) Parse(string shape)
    {
        var parts = shape.Split('x');
        return (int.Parse(parts[0]), int.Parse(parts[1]));
    }

    static ElementType TypeOf(string form) => form switch
    {
        "bf16" => ElementType.BF16,
        "fp8" => ElementType.Fp8E4M3,
        "int4" => ElementType.Int4,
        _ => ElementType.F32,
    };

    static (long Weight, long Scales) Bytes(string shape, string form)
    {
        var (o, i) = Parse(shape);
        long n = (long)o * i;
        return form switch
        {
            "bf16" => (2 * n, 0),
            "fp8" => (n, 4L * ((o + 127) / 128) * ((i + 127) / 128)),
            "int4" => (n / 2, 2 * 2L * o * (i / 128)), // bf16 scales and zero points per group of 128
            _ => (4 * n, 0),
        };
    }

    public long BytesMoved(string method)
    {
        var (weight, scales) = Bytes(Shape, Form);
        var (o, i) = Parse(Shape);
        return method == BandwidthColumn.CopyMethod ? 2 * weight : weight + scales + 4L * i + 4L * o;
    }

    [GlobalSetup]
    public void Setup()
    {
        (_out, _in) = Parse(Shape);
        _type = TypeOf(Form);
        (_weightBytes, _scaleBytes) = Bytes(Shape, Form);
        _slots = (int)Math.Max(2, ArenaBytes / _weightBytes);
        _arena = (byte*)NativeMemory.AlignedAlloc((nuint)(_slots * _weightBytes), 64);
        _copy = (byte*)NativeMemory.AlignedAlloc((nuint)_weightBytes, 64);
        var random = new Random(1);
        random.NextBytes(new Span<byte>(_arena, (int)Math.Min(int.MaxValue, _slots * _weightBytes)));
        if (_slots * _weightBytes > int.MaxValue)
            random.NextBytes(new Span<byte>(_arena + int.MaxValue, (int)(_slots * _weightBytes - int.MaxValue)));
        long total = _slots * _weightBytes;
        // random bytes made into ordinary values: no NaN, infinity or subnormal
        switch (_type)
        {
            case ElementType.BF16:
                for (long k = 0; k < total / 2; k++)
                    ((ushort*)_arena)[k] = (ushort)((((ushort*)_arena)[k] & 0x80FF) | 0x3C00);
                break;
            case ElementType.F32:
                for (long k = 0; k < total / 4; k++)
                    ((uint*)_arena)[k] = (((uint*)_arena)[k] & 0x807F_FFFF) | 0x3C00_0000;
                break;
            case ElementType.Fp8E4M3:
                for (long k = 0; k < total; k++)
                    if ((_arena[k] & 0x7F) == 0x7F) _arena[k] ^= 1;
                break;
        }
        _scales = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, _scaleBytes), 64);
        _zeros = _scales + _scaleBytes / 2;
        if (_type == ElementType.Fp8E4M3)
        {
            for (long k = 0; k < _scaleBytes / 4; k++)
                ((float*)_scales)[k] = (0.5f + random.NextSingle()) * 1e-3f;
        }
        else if (_type == ElementType.Int4)
        {
            for (long k = 0; k < _scaleBytes / 4; k++)
            {
                ((ushort*)_scales)[k] = BFloat16.FromSingle((0.5f + random.NextSingle()) * 1e-2f).Bits;
                ((ushort*)_zeros)[k] = BFloat16.FromSingle(random.Next(16)).Bits;
            }
        }
        _x = (float*)NativeMemory.AlignedAlloc((nuint)_in * sizeof(float), 64);
        _y = (float*)NativeMemory.AlignedAlloc((nuint)_out * sizeof(float), 64);
        for (int k = 0; k < _in; k++)
            _x[k] = random.NextSingle() * 2 - 1;
    }

    WeightData Next()
    {
        nint data = (nint)(_arena + _next++ % _slots * _weightBytes);
        return _type switch
        {
            ElementType.Fp8E4M3 => new WeightData(_type, data, (nint)_scales, _out, _in, 1, 128, 128),
            ElementType.Int4 => new WeightData(_type, data, (nint)_scales, _out, _in, 1, 0, 0, (nint)_zeros, 128),
            _ => new WeightData(_type, data, 0, _out, _in, 1, 0, 0),
        };
    }

    [Benchmark(Baseline = true)]
    public void Copy()
    {
        byte* source = _arena + _next++ % _slots * _weightBytes;
        int threads = CpuThreadPool.Shared.Threads;
        long chunk = (_weightBytes + threads - 1) / threads;
        CpuThreadPool.Shared.For(threads, t =>
        {
            long begin = t * chunk, count = Math.Min(chunk, _weightBytes - begin);
            Buffer.MemoryCopy(source + begin, _copy + begin, count, count);
        });
    }

    [Benchmark]
    public void Gemv()
    {
        var w = Next();
        CpuGemv.Run(CpuThreadPool.Shared, w, _x, _in, 1, null, _y, _out);
    }

    [Benchmark]
    public void Reference()
    {
        var w = Next();
        LinearReference.Linear(w, (nint)_x, 1, 0, (nint)_y);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        NativeMemory.AlignedFree(_arena);
        NativeMemory.AlignedFree(_copy);
        NativeMemory.AlignedFree(_scales);
        NativeMemory.AlignedFree(_x);
        NativeMemory.AlignedFree(_y);
        _arena = _copy = _scales = _zeros = null;
        _x = _y = null;
        GC.SuppressFinalize(this);
    }
}
