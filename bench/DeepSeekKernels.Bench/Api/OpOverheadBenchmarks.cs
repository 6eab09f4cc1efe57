using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Api;

/// <summary>
/// What the op API itself costs per call, before any kernel is launched: RMSNorm and add + RMSNorm on device
/// views at one token of DeepSeek-V3 (1 x 7168 bf16), over a backend that does nothing, so the time is the
/// argument checks (types, views, sizes, the overlap of every pair of operands) and the dispatch. At one token
/// a call's cost on the GPU is about what a launch costs (4-5 us on the H100), so this says how much of that
/// is ours. Run with --cpu (needs no GPU: the views are on ILGPU's CPU accelerator, which nothing here runs).
/// </summary>
[CpuBenchmark]
public class OpOverheadBenchmarks : IDisposable
{
    const int Hidden = 7168;
    const float Eps = 1e-6f;

    DeviceRuntime? _runtime;
    Ops? _ops;
    DeviceBuffer<BFloat16>? _x, _residual, _r, _y, _w;

    [GlobalSetup]
    public void Setup()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cpu);
        _ops = Ops.Over(_runtime, new NoKernelBackend());
        _x = _runtime.Allocate<BFloat16>(Hidden);
        _residual = _runtime.Allocate<BFloat16>(Hidden);
        _r = _runtime.Allocate<BFloat16>(Hidden);
        _y = _runtime.Allocate<BFloat16>(Hidden);
        _w = _runtime.Allocate<BFloat16>(Hidden);
    }

    [Benchmark]
    public void RmsNorm() => _ops!.RmsNorm(_x!.View, _w!.View, _y!.View, Hidden, Eps);

    [Benchmark]
    public void AddRmsNorm() => _ops!.AddRmsNorm(_x!.View, _residual!.View, _w!.View, _r!.View, _y!.View, Hidden, Eps);

    [GlobalCleanup]
    public void Dispose()
    {
        _x?.Dispose(); _residual?.Dispose(); _r?.Dispose(); _y?.Dispose(); _w?.Dispose();
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }

    /// <summary>Supports every op by doing nothing.</summary>
    sealed class NoKernelBackend : KernelBackend
    {
        public override Backend Kind => Backend.Native;
        public override bool Supports(in OpSignature op, out string? reason)
        {
            reason = null;
            return true;
        }
        public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
            DeviceView<T> r, int rows, int cols, float eps) { }
    }
}
