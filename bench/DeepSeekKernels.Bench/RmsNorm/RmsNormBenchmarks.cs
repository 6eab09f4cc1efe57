using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU.Runtime;

namespace DeepSeekKernels.Bench.RmsNorm;

/// <summary>
/// RMSNorm and fused add+RMSNorm on bf16 activations and weights, native and ILGPU, against a device copy
/// of the op's input bytes (read + written by the copy = the op's own traffic, less the weight).
/// Each invocation enqueues <see cref="Launches"/> operations and synchronises once, so the figure per
/// operation is what back-to-back launches sustain. Inputs rotate through 128 MiB arenas (2.5x the H100's
/// 50 MB L2), so every launch reads from DRAM. Run through Program.cs, which applies <see cref="BenchConfig"/>.
/// </summary>
public class RmsNormBenchmarks : IBandwidthBenchmark, IDisposable
{
    const int Launches = 200;
    const long ArenaBytes = 128L << 20;
    const float Eps = 1e-6f;

    [Params(false, true)] public bool Fused;
    [ParamsSource(nameof(TokenCounts))] public int Tokens;
    [ParamsSource(nameof(HiddenSizes))] public int Hidden;

    // Decode (1, 16 tokens) and prefill (4096) at DeepSeek-V2-Lite / Llama-8B (4096) and DeepSeek-V3 (7168)
    // widths; in smoke mode (ILGPU's CPU accelerator, no GPU) small shapes that only prove the code runs.
    public static IEnumerable<int> TokenCounts => BenchEnvironment.Smoke ? [1, 4] : [1, 16, 4096];
    public static IEnumerable<int> HiddenSizes => BenchEnvironment.Smoke ? [64] : [4096, 7168];

    DeviceRuntime? _runtime;
    Ops? _native, _ilgpu;
    DeviceBuffer<BFloat16>? _x, _residual, _r, _y, _w;
    long _slotElements, _slots, _next;

    public long BytesMoved(string method)
    {
        long activation = (long)Tokens * Hidden * 2;
        return method == BandwidthColumn.CopyMethod
            ? 2 * activation * (Fused ? 2 : 1)             // the copy reads and writes the op's input bytes
            : activation * (Fused ? 4 : 2) + Hidden * 2;   // x (+ residual) in, y (+ r) out, weight once
    }

    [GlobalSetup]
    public void Setup()
    {
        _runtime = DeviceRuntime.Create(BenchEnvironment.Smoke ? DevicePreference.Cpu : DevicePreference.Cuda);
        _native = _runtime.IsCuda ? Ops.Create(_runtime, Backend.Native) : null;
        _ilgpu = Ops.Create(_runtime, Backend.Ilgpu);
        // The copy baseline moves x and residual as one block, so each slot holds both, back to back.
        _slotElements = 2L * Tokens * Hidden;
        _slots = Math.Max(2, ArenaBytes / (_slotElements * 2));
        var random = new Random(1);
        var init = new BFloat16[_slots * _slotElements];
        for (long i = 0; i < init.Length; i++)
            init[i] = BFloat16.FromSingle(random.NextSingle() * 4 - 2);
        _x = _runtime.Upload<BFloat16>(init);
        _r = _runtime.Upload<BFloat16>(init);
        _y = _runtime.Allocate<BFloat16>(init.Length);
        _w = _runtime.Upload<BFloat16>(init.AsSpan(0, Hidden));
        _residual = _x; // residual = the second half of each x slot
        if (_native != null)
            Launch(_native);
        Launch(_ilgpu);
        _runtime.Synchronize();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Launches)]
    public void Copy()
    {
        var runtime = _runtime!;
        runtime.Bind();
        long elements = (Fused ? 2L : 1L) * Tokens * Hidden;
        for (int i = 0; i < Launches; i++)
        {
            long offset = NextSlot() * _slotElements;
            if (runtime.IsCuda)
                CudaDriver.CopyDeviceToDeviceAsync(_y!.Slice(offset, 1).Pointer, _x!.Slice(offset, 1).Pointer, elements * 2, runtime.CudaStreamHandle);
            else
                _x!.Slice(offset, elements).IlgpuView.CopyTo(runtime.Stream, _y!.Slice(offset, elements).IlgpuView);
        }
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Native() => Run(_native ?? throw new InvalidOperationException("The native kernels need a CUDA GPU."));

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Ilgpu() => Run(_ilgpu!);

    void Run(Ops ops)
    {
        for (int i = 0; i < Launches; i++)
            Launch(ops);
        _runtime!.Synchronize();
    }

    void Launch(Ops ops)
    {
        long n = (long)Tokens * Hidden;
        long offset = NextSlot() * _slotElements;
        var x = _x!.Slice(offset, n);
        var y = _y!.Slice(offset, n);
        if (Fused)
            ops.AddRmsNorm(x, _residual!.Slice(offset + n, n), _w!.View, _r!.Slice(offset, n), y, Hidden, Eps);
        else
            ops.RmsNorm(x, _w!.View, y, Hidden, Eps);
    }

    long NextSlot() => _next++ % _slots;

    [GlobalCleanup]
    public void Dispose()
    {
        _x?.Dispose(); _r?.Dispose(); _y?.Dispose(); _w?.Dispose();
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }
}
