using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.RmsNorm;

/// <summary>
/// The decode shapes of <see cref="RmsNormBenchmarks"/> with the host's launch cost taken out: each method's
/// <see cref="Operations"/> operations (consecutive slots of the 128 MiB arenas, so still from DRAM) are
/// captured once into a CUDA graph, and an invocation replays the graph and synchronises. The figure per
/// operation is then the GPU's own time per op plus the gap between graph nodes: what an op costs inside a
/// decode step replayed as a graph. CUDA only (graphs); smoke runs leave it out.
/// </summary>
[CudaOnly]
public class RmsNormGraphBenchmarks : IBandwidthBenchmark, IDisposable
{
    const int Operations = 4096;

    [Params(false, true)] public bool Fused;
    [Params(1, 16)] public int Tokens;
    [Params(4096, 7168)] public int Hidden;

    RmsNormWorkload? _work;
    DeviceGraph? _copy, _native, _ilgpu;

    public long BytesMoved(string method) => RmsNormWorkload.BytesMoved(method, Fused, Tokens, Hidden);

    [GlobalSetup]
    public void Setup()
    {
        var work = _work = new RmsNormWorkload(Fused, Tokens, Hidden, DevicePreference.Cuda);
        _copy = Capture(work.Copy);
        _native = Capture(() => work.Launch(work.Native!));
        _ilgpu = Capture(() => work.Launch(work.Ilgpu));
    }

    DeviceGraph Capture(Action operation) => _work!.Runtime.CaptureGraph(() =>
    {
        for (int i = 0; i < Operations; i++)
            operation();
    });

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public void Copy() => Replay(_copy!);

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Native() => Replay(_native!);

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Ilgpu() => Replay(_ilgpu!);

    void Replay(DeviceGraph graph)
    {
        graph.Replay();
        _work!.Runtime.Synchronize();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _copy?.Dispose(); _native?.Dispose(); _ilgpu?.Dispose();
        _work?.Dispose();
        _work = null;
        GC.SuppressFinalize(this);
    }
}
