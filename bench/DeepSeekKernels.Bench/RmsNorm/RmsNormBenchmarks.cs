using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.RmsNorm;

/// <summary>
/// RMSNorm and fused add+RMSNorm (bf16), native and ILGPU, against a device copy of the op's input bytes
/// (<see cref="RmsNormWorkload"/>), launched from the host: each invocation enqueues <see cref="Launches"/>
/// operations through the op API and synchronises once, so the figure per operation is what back-to-back
/// calls sustain, host launch cost included. <see cref="RmsNormGraphBenchmarks"/> times the same operations
/// replayed from a CUDA graph. Run through Program.cs, which applies <see cref="BenchConfig"/>.
/// </summary>
public class RmsNormBenchmarks : IBandwidthBenchmark, IDisposable
{
    const int Launches = 200;

    [Params(false, true)] public bool Fused;
    [ParamsSource(nameof(TokenCounts))] public int Tokens;
    [ParamsSource(nameof(HiddenSizes))] public int Hidden;

    // Decode (1, 16 tokens) and prefill (4096) at DeepSeek-V2-Lite / Llama-8B (4096) and DeepSeek-V3 (7168)
    // widths; in smoke mode (ILGPU's CPU accelerator, no GPU) small shapes that only prove the code runs.
    // DSK_BENCH_HEADLINE=1: one decode and one prefill row count at DeepSeek-V3's width.
    public static IEnumerable<int> TokenCounts => BenchEnvironment.Smoke ? [1, 4] : BenchEnvironment.Headline ? [1, 4096] : [1, 16, 4096];
    public static IEnumerable<int> HiddenSizes => BenchEnvironment.Smoke ? [64] : BenchEnvironment.Headline ? [7168] : [4096, 7168];

    RmsNormWorkload? _work;

    public long BytesMoved(string method) => RmsNormWorkload.BytesMoved(method, Fused, Tokens, Hidden);

    [GlobalSetup]
    public void Setup() =>
        _work = new RmsNormWorkload(Fused, Tokens, Hidden, BenchEnvironment.Smoke ? DevicePreference.Cpu : DevicePreference.Cuda);

    [Benchmark(Baseline = true, OperationsPerInvoke = Launches)]
    public void Copy()
    {
        for (int i = 0; i < Launches; i++)
            _work!.Copy();
        _work!.Runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Native() => Run(_work!.Native ?? throw new InvalidOperationException("The native kernels need a CUDA GPU."));

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Ilgpu() => Run(_work!.Ilgpu);

    void Run(Ops ops)
    {
        for (int i = 0; i < Launches; i++)
            _work!.Launch(ops);
        _work!.Runtime.Synchronize();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _work?.Dispose();
        _work = null;
        GC.SuppressFinalize(this);
    }
}
