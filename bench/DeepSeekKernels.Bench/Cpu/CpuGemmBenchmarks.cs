using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Bench.Cpu;

/// <summary>
/// The CPU backend's prefill GEMM (<see cref="CpuGemm.Run"/>) at the 0.31B Llama's shapes for 512 tokens,
/// <c>y [512, out] = x [512, in] @ W^T</c>: the attention-size projection (1024 x 1024), the fused gate|up (8192 x 1024),
/// the down projection (1024 x 4096), bf16 weights, and the gate|up with FP8 (128x128 blocks) and INT4 (group 128)
/// weights; against the reference's <see cref="LinearReference.Run"/> on the same data and a loop of independent
/// fused multiply-adds on every pool thread (<see cref="FmaPeak"/>, the machine's real FMA peak, measured in the same
/// run: the "% of FMA peak" column). Compute-bound: weights are not rotated (decoding a panel once per call and reading
/// it from DRAM is a small share of the time). Run with <c>--cpu --filter '*CpuGemm*'</c>.
/// </summary>
[CpuBenchmark]
[Config(typeof(CpuComputeConfig))]
public unsafe class CpuGemmBenchmarks : IComputeBenchmark, IDisposable
{
    const long PeakIterations = 4_000_000; // per thread, 12 vector FMAs each
    const int Rows = 512;

    [ParamsSource(nameof(Shapes))] public string Shape = "";

    /// <summary>rows x out x in, weight form.</summary>
    public static IEnumerable<string> Shapes => ["512x1024x1024 bf16", "512x8192x1024 bf16", "512x1024x4096 bf16", "512x8192x1024 fp8", "512x8192x1024 int4"];

    byte* _data;
    void* _scales, _zeros;
    float* _x, _y;
    WeightData _w;
    CpuThreadPool _pool = null!;

    static (int Out, int In, ElementType Type) Parse(string shape)
    {
        var parts = shape.Split(' ', 'x');
        var type = parts[3] switch { "fp8" => ElementType.Fp8E4M3, "int4" => ElementType.Int4, "f32" => ElementType.F32, _ => ElementType.BF16 };
        return (int.Parse(parts[1]), int.Parse(parts[2]), type);
    }

    public double FloatingPointOperations(string method)
    {
        if (method == CpuComputeColumn.PeakMethod)
            return 2.0 * PeakIterations * 12 * Vector512<float>.Count * CpuThreadPool.Shared.Threads / (Avx512F.IsSupported ? 1 : 2);
        var (outF, inF, _) = Parse(Shape);
        return 2.0 * Rows * outF * inF;
    }

    [GlobalSetup]
    public void Setup()
    {
        _pool = CpuThreadPool.Shared;
        var (outF, inF, type) = Parse(Shape);
        var random = new Random(1);
        long elements = (long)outF * inF;
        switch (type)
        {
            case ElementType.BF16:
                _data = (byte*)NativeMemory.AlignedAlloc((nuint)(elements * 2), 64);
                for (long i = 0; i < elements; i++)
                    ((BFloat16*)_data)[i] = BFloat16.FromSingle(random.NextSingle() * 0.2f - 0.1f);
                _w = new WeightData(type, (nint)_data, 0, outF, inF, 1, 0, 0);
                break;
            case ElementType.Fp8E4M3:
            {
                _data = (byte*)NativeMemory.AlignedAlloc((nuint)elements, 64);
                for (long i = 0; i < elements; i++)
                    _data[i] = Float8E4M3.FromSingle(random.NextSingle() * 400f - 200f).Bits;
                int scales = (outF + 127) / 128 * ((inF + 127) / 128);
                _scales = NativeMemory.Alloc((nuint)scales, sizeof(float));
                for (int i = 0; i < scales; i++)
                    ((float*)_scales)[i] = (0.5f + random.NextSingle()) * 1e-3f;
                _w = new WeightData(type, (nint)_data, (nint)_scales, outF, inF, 1, 128, 128);
                break;
            }
            default:
            {
                _data = (byte*)NativeMemory.AlignedAlloc((nuint)(elements / 2), 64);
                for (long i = 0; i < elements / 2; i++)
                    _data[i] = (byte)random.Next(256);
                int groups = (int)(elements / 128);
                _scales = NativeMemory.Alloc((nuint)groups, sizeof(ushort));
                _zeros = NativeMemory.Alloc((nuint)groups, sizeof(ushort));
                for (int i = 0; i < groups; i++)
                {
                    ((BFloat16*)_scales)[i] = BFloat16.FromSingle((0.5f + random.NextSingle()) * 0.01f);
                    ((BFloat16*)_zeros)[i] = BFloat16.FromSingle(random.Next(16));
                }
                _w = new WeightData(type, (nint)_data, (nint)_scales, outF, inF, 1, 0, 0, (nint)_zeros, 128);
                break;
            }
        }
        _x = (float*)NativeMemory.AlignedAlloc((nuint)((long)Rows * inF * sizeof(float)), 64);
        _y = (float*)NativeMemory.AlignedAlloc((nuint)((long)Rows * outF * sizeof(float)), 64);
        for (long i = 0; i < (long)Rows * inF; i++)
            _x[i] = random.NextSingle() * 2 - 1;
    }

    /// <summary>The FMA peak: 12 independent chains of vector fused multiply-adds per pool thread (512-bit where the CPU has AVX-512).</summary>
    [Benchmark]
    public float FmaPeak()
    {
        float total = 0;
        _pool.For(_pool.Threads, _ =>
        {
            float sum = Avx512F.IsSupported ? Chains512() : Chains256();
            lock (_pool)
                total += sum;
        });
        return total;
    }

    static float Chains512()
    {
        var a0 = Vector512.Create(1f);
        Vector512<float> a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        var m = Vector512.Create(0.999999f);
        var b = Vector512.Create(1e-6f);
        for (long i = 0; i < PeakIterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, b); a1 = Avx512F.FusedMultiplyAdd(a1, m, b); a2 = Avx512F.FusedMultiplyAdd(a2, m, b);
            a3 = Avx512F.FusedMultiplyAdd(a3, m, b); a4 = Avx512F.FusedMultiplyAdd(a4, m, b); a5 = Avx512F.FusedMultiplyAdd(a5, m, b);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, b); a7 = Avx512F.FusedMultiplyAdd(a7, m, b); a8 = Avx512F.FusedMultiplyAdd(a8, m, b);
            a9 = Avx512F.FusedMultiplyAdd(a9, m, b); a10 = Avx512F.FusedMultiplyAdd(a10, m, b); a11 = Avx512F.FusedMultiplyAdd(a11, m, b);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    static float Chains256()
    {
        var a0 = Vector256.Create(1f);
        Vector256<float> a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        var m = Vector256.Create(0.999999f);
        var b = Vector256.Create(1e-6f);
        for (long i = 0; i < PeakIterations; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, b); a1 = Vector256.FusedMultiplyAdd(a1, m, b); a2 = Vector256.FusedMultiplyAdd(a2, m, b);
            a3 = Vector256.FusedMultiplyAdd(a3, m, b); a4 = Vector256.FusedMultiplyAdd(a4, m, b); a5 = Vector256.FusedMultiplyAdd(a5, m, b);
            a6 = Vector256.FusedMultiplyAdd(a6, m, b); a7 = Vector256.FusedMultiplyAdd(a7, m, b); a8 = Vector256.FusedMultiplyAdd(a8, m, b);
            a9 = Vector256.FusedMultiplyAdd(a9, m, b); a10 = Vector256.FusedMultiplyAdd(a10, m, b); a11 = Vector256.FusedMultiplyAdd(a11, m, b);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [Benchmark(Baseline = true)]
    public void Gemm() => CpuGemm.Run(_pool, _w, _x, _w.Cols, Rows, null, _y, _w.Rows);

    [Benchmark]
    public void Reference() =>
        LinearReference.Run([new LinearReference.Product(_w, (nint)_x, _w.Cols, Rows, 0, (nint)_y, _w.Rows)]);

    [GlobalCleanup]
    public void Dispose()
    {
        NativeMemory.AlignedFree(_data);
        NativeMemory.Free(_scales);
        NativeMemory.Free(_zeros);
        NativeMemory.AlignedFree(_x);
        NativeMemory.AlignedFree(_y);
        _data = null;
        _scales = _zeros = null;
        _x = _y = null;
        GC.SuppressFinalize(this);
    }
}
