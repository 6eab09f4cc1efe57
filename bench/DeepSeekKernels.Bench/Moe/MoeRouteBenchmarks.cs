using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Attention;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Moe;

/// <summary>
/// DeepSeek-V3's routing alone, <see cref="Ops.MoeRoute"/>: f32 router logits [tokens, 256] and the correction bias in, expert ids
/// and weights [tokens, 8] out (sigmoid, + bias, 8 groups scored by their two best, 4 kept, top-8, normalised, x 2.5), at 1, 16,
/// 128 and 512 tokens (all four are headline cases).
/// <list type="bullet">
/// <item>Copy: a device copy of the logits (the floor of a graph node that reads them);</item>
/// <item>Native: Ops.MoeRoute on the native backend (dsk_moe_route); Ilgpu: on the ILGPU backend (where it has the kernel: the
/// case says why not otherwise).</item>
/// </list>
/// Timed through a CUDA graph: <see cref="Calls"/> calls are captured once, each on its own slot of a logits arena (slots at least
/// 128 MiB / <see cref="Calls"/> apart, so the calls of one replay touch more than twice the H200's L2 and read DRAM), and an
/// invocation replays the graph and synchronises: the op API's host cost (validation, dispatch, a few µs) is not in the figure.
/// GB/s is over the logits and bias read and the ids and weights written. Goal: at most 10 µs per call up to 512 tokens
/// (SGLang's fused kernel takes about 8 µs; the chain of PyTorch ops transformers runs about 190 µs on an H100: see
/// bench/peers/moe_peers.py).
/// </summary>
[CudaOnly]
public class MoeRouteBenchmarks : IBandwidthBenchmark, IDisposable
{
    const int Calls = 512;

    [ParamsSource(nameof(TokenCounts))] public int Tokens = 1;

    /// <summary>Decode to a 512-token prefill chunk; DSK_BENCH_HEADLINE=1: the two ends of the goal's range.</summary>
    public static IEnumerable<int> TokenCounts => BenchEnvironment.Headline ? [1, 512] : [1, 16, 128, 512];

    DeviceRuntime? _runtime;
    DeviceBuffer<float>? _logits, _bias, _weights, _copyDestination;
    DeviceBuffer<int>? _ids;
    DeviceGraph? _graph;
    long _slotElements;

    long LogitElements => (long)Tokens * MoeShape.Experts;

    public long BytesMoved(string method) => method == BandwidthColumn.CopyMethod
        ? 2 * 4 * LogitElements
        : 4 * LogitElements + 4L * MoeShape.Experts + 2 * 4L * Tokens * MoeShape.TopK;

    /// <summary>The runtime and the arena: <see cref="Calls"/> slots of logits (random values in [-2, 2)), the bias, one output slot.</summary>
    void Start()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _slotElements = Math.Max(LogitElements, MoeShape.RotationBytes / Calls / 4);
        var values = BenchData.RandomBf16(LogitElements);
        var slot = new float[LogitElements];
        for (int i = 0; i < slot.Length; i++)
            slot[i] = (float)values[i];
        _logits = _runtime.Allocate<float>(Calls * _slotElements);
        for (int c = 0; c < Calls; c++) // one slot's values everywhere: the routing is the same, the addresses are not
            _logits.View.Slice(c * _slotElements, LogitElements).CopyFromHost(slot);
        var random = new Random(13);
        _bias = _runtime.Upload<float>(Enumerable.Range(0, MoeShape.Experts).Select(_ => (random.NextSingle() - 0.5f) / 10).ToArray());
        _ids = _runtime.Allocate<int>((long)Tokens * MoeShape.TopK);
        _weights = _runtime.Allocate<float>((long)Tokens * MoeShape.TopK);
        _runtime.Synchronize();
    }

    DeviceView<float> Logits(int call) => _logits!.View.Slice(call * _slotElements, LogitElements);

    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        Start();
        var runtime = _runtime!;
        _copyDestination = runtime.Allocate<float>(LogitElements);
        _graph = Capture(call => CudaDriver.CopyDeviceToDeviceAsync(_copyDestination.View.Pointer, Logits(call).Pointer, 4 * LogitElements,
            runtime.CudaStreamHandle));
    }

    [GlobalSetup(Target = nameof(Native))]
    public void SetupNative() => SetupOps(Backend.Native);

    [GlobalSetup(Target = nameof(Ilgpu))]
    public void SetupIlgpu() => SetupOps(Backend.Ilgpu);

    void SetupOps(Backend backend)
    {
        Start();
        var ops = Ops.Create(_runtime!, backend);
        AttentionWorkload.RequireSupport(ops, new OpSignature(nameof(Ops.MoeRoute), ElementType.F32));
        _graph = Capture(call => ops.MoeRoute(Logits(call), _bias!.View, _ids!.View, _weights!.View, MoeShape.Routing));
    }

    /// <summary>Runs <paramref name="enqueue"/> once (kernels compiled and loaded), then captures it for every slot into one graph.</summary>
    DeviceGraph Capture(Action<int> enqueue)
    {
        var runtime = _runtime!;
        runtime.Bind();
        enqueue(0);
        runtime.Synchronize();
        var graph = runtime.CaptureGraph(() =>
        {
            for (int call = 0; call < Calls; call++)
                enqueue(call);
        });
        graph.Replay();
        runtime.Synchronize();
        return graph;
    }

    /// <summary>A device copy of the logits, the floor of a node that reads them.</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public void Copy() => Replay();

    [Benchmark(OperationsPerInvoke = Calls)]
    public void Native() => Replay();

    [Benchmark(OperationsPerInvoke = Calls)]
    public void Ilgpu() => Replay();

    void Replay()
    {
        _graph!.Replay();
        _runtime!.Synchronize();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _graph?.Dispose();
        _logits?.Dispose(); _bias?.Dispose(); _ids?.Dispose(); _weights?.Dispose(); _copyDestination?.Dispose();
        (_graph, _logits, _bias, _ids, _weights, _copyDestination) = (null, null, null, null, null, null);
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }
}
