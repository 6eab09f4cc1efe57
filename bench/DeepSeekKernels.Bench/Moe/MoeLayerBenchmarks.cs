using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Attention;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Moe;

/// <summary>
/// One DeepSeek-V3 MoE layer's routed experts, <see cref="Ops.MoeLayer"/>: the router Linear (bf16 x, bf16 [256, 7168] weight,
/// f32 logits), MoeRoute, MoePermute, the grouped gate|up projection with SiLU (fused where the backend has
/// GroupedLinearSiluMul), the grouped down projection and MoeCombine, bf16 activations, at 1, 16, 128 and 4096 tokens, with the
/// experts (256 x (gate|up [4096, 7168] + down [7168, 2048]), one layer's, not 61) stored bf16 (22.5 GB), FP8 e4m3 with 128 x 128
/// block scales (11.3 GB) or INT4 g128 (6 GB; not a headline case); "fp8-w8a8": the FP8 experts with the scratch's FP8
/// inputs, so that from 32 tokens the experts run as W8A8 (QuantizeFp8Activations + GroupedLinearW8A8, DeepGEMM's grouped
/// FP8 GEMM; see Ops.MoeLayer), FLOPs and bytes counted as fp8's.
/// <list type="bullet">
/// <item>Native, Ilgpu: Ops.MoeLayer on that backend (a backend that lacks an op of the chain is refused before anything runs:
/// the case says which op);</item>
/// <item>PerExpertCublas: the baseline the issue names, the way a per-expert loop runs the experts: for the same routing, a host
/// loop over the used experts calling cublasGemmEx on each one's contiguous rows of a permuted [tokens x 8, 7168] buffer,
/// gate|up ([rows, 7168] x [4096, 7168]^T) then down ([rows, 2048] x [7168, 2048]^T), bf16 experts whatever the case's scheme.
/// Only the GEMMs: the router, the routing, the permutation, the SiLU (down reads a pre-filled [rows, 2048] buffer) and the
/// combine are left out, so the loop is timed faster than a real one would be and "x per-expert cuBLAS" understates the
/// layer's lead;</item>
/// <item>Copy: a device copy of the used experts' bytes in the case's scheme (at most 1 GiB: the copy rate is flat beyond), the
/// bandwidth ceiling of "% of copy";</item>
/// <item>CublasBf16: cuBLAS bf16 8192^3, the compute ceiling of "% of GEMM" (run once).</item>
/// </list>
/// The routing is fixed by the inputs (<see cref="MoeInputs"/>); the experts it uses are counted once per token count on the
/// reference (<see cref="MoeRoutingStats"/>, printed in the log). GB/s is over the floor a call must move: the used experts'
/// weights (data and scales) once, the router weight, x read and y written (the permuted and intermediate rows could stay on
/// chip and are not counted); at small token counts the layer is memory-bound and its goal is a share of the copy. TFLOP/s is
/// over 2 x (tokens x 8) x (2 x 2048 x 7168 + 7168 x 2048), the experts' GEMMs (the router's 2 x tokens x 256 x 7168 left
/// out); at 4096 tokens it is compute-bound and its goal is a share of the GEMM rate. Goal of the issue: at least 3x faster than
/// the per-expert cuBLAS loop at up to 128 tokens ("x per-expert cuBLAS").
/// <para>
/// Every method is timed through a CUDA graph: <see cref="Calls"/> calls are captured once (after one uncaptured call) and an
/// invocation replays the graph and synchronises, so the op API's host cost is not in the figures (the per-expert loop is
/// captured too, so its hundreds of cuBLAS launches cost it nothing either; if cuBLAS refuses the capture, the loop runs
/// eagerly and the log says so). The experts read per call (at least 8 x 88 MB in bf16, 8 x 44 MB in FP8) are more than twice
/// the H200's L2, so the weights come from DRAM without rotation; x (at most 58 MB) and the router weight (3.7 MB) may stay in L2.
/// </para>
/// </summary>
[CudaOnly, MoeLayerCases]
public class MoeLayerBenchmarks : IBandwidthBenchmark, IComputeBenchmark, IDisposable
{
    const int Calls = 8;
    const long MaxCopyBytes = 1L << 30;

    [ParamsSource(nameof(TokenCounts))] public int Tokens = 1;
    [ParamsSource(nameof(Schemes))] public string Weights = MoeExperts.Bf16;

    public static IEnumerable<int> TokenCounts => [1, 16, 128, 4096];
    public static IEnumerable<string> Schemes => BenchEnvironment.Headline
        ? [MoeExperts.Bf16, MoeExperts.Fp8, MoeExperts.Fp8W8A8]
        : [MoeExperts.Bf16, MoeExperts.Fp8, MoeExperts.Fp8W8A8, MoeExperts.Int4];

    DeviceRuntime? _runtime;
    readonly List<IDisposable> _owned = [];
    DeviceGraph? _graph;
    GemmCeiling? _gemm;
    Cublas? _cublas;
    (int Expert, int Start, int Rows)[] _runs = [];
    DeviceBuffer<BFloat16>? _permuted, _gateUpOut, _activated, _downOut;
    IntPtr _loopGateUp, _loopDown;

    long Slots => (long)Tokens * MoeShape.TopK;

    /// <summary>The scheme <paramref name="method"/> reads its experts in (the per-expert loop: always bf16).</summary>
    string SchemeOf(string method) => method == MoeRelativeColumn.LoopMethod ? MoeExperts.Bf16 : Weights;

    /// <summary>Bytes of the experts the routing of this token count used, in <paramref name="scheme"/>; 0 before any setup routed it.</summary>
    long UsedExpertBytes(string scheme) => (MoeRoutingStats.Find(Tokens)?.UsedExperts ?? 0) * MoeExperts.BytesPerExpert(scheme);

    long CopyBytes => Math.Min(UsedExpertBytes(Weights), MaxCopyBytes) / 256 * 256;

    public long BytesMoved(string method) => method switch
    {
        BandwidthColumn.CopyMethod => 2 * CopyBytes,
        RelativeToMethodColumn.GemmMethod => 0,
        _ => UsedExpertBytes(SchemeOf(method)) is long used and > 0 ? used + MoeInputs.RouterAndActivationBytes(Tokens) : 0,
    };

    public double FloatingPointOperations(string method) => method switch
    {
        BandwidthColumn.CopyMethod => 0,
        RelativeToMethodColumn.GemmMethod => AttentionWorkload.GemmFlops,
        _ => MoeShape.ExpertFlops(Slots),
    };

    /// <summary>The runtime, the inputs and the routing's statistics (routed on the reference the first time).</summary>
    (MoeInputs Inputs, MoeRoutingStats Stats) Start()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        var inputs = Keep(new MoeInputs(_runtime, Tokens));
        return (inputs, MoeRoutingStats.Of(_runtime, inputs));
    }

    [GlobalSetup(Target = nameof(CublasBf16))]
    public void SetupGemm()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _gemm = Keep(new GemmCeiling(_runtime));
        _graph = Capture(() => _gemm.Run());
    }

    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        Start();
        var runtime = _runtime!;
        long bytes = CopyBytes;
        var source = Keep(runtime.Allocate<byte>(bytes));
        var destination = Keep(runtime.Allocate<byte>(bytes));
        _graph = Capture(() => CudaDriver.CopyDeviceToDeviceAsync(destination.View.Pointer, source.View.Pointer, bytes, runtime.CudaStreamHandle));
    }

    [GlobalSetup(Target = nameof(Native))]
    public void SetupNative() => SetupLayer(Backend.Native);

    [GlobalSetup(Target = nameof(Ilgpu))]
    public void SetupIlgpu() => SetupLayer(Backend.Ilgpu);

    void SetupLayer(Backend backend)
    {
        var (inputs, _) = Start();
        var runtime = _runtime!;
        var ops = Ops.Create(runtime, backend);
        var experts = Keep(new MoeExperts(runtime, Weights));
        var layer = new MoeLayer(inputs.RouterWeight, inputs.Bias.View, MoeShape.Routing, experts.GateUp, null, null, experts.Down);
        var scratch = Keep(MoeLayerScratch.Allocate(layer, Tokens, ElementType.BF16, fp8Activations: Weights == MoeExperts.Fp8W8A8));
        var y = Keep(runtime.Allocate<BFloat16>((long)Tokens * MoeShape.Hidden));
        _graph = Capture(() => ops.MoeLayer(layer, inputs.X.View, scratch, y.View, accumulate: false));
    }

    [GlobalSetup(Target = nameof(PerExpertCublas))]
    public void SetupLoop()
    {
        var (_, stats) = Start();
        var runtime = _runtime!;
        var experts = Keep(new MoeExperts(runtime, MoeExperts.Bf16));
        (_loopGateUp, _loopDown) = (experts.GateUpData, experts.DownData);
        // the permuted rows (expert by expert, as MoePermute lays them out) and the SiLU's output: random bf16, filled on the device
        _permuted = Keep(runtime.Allocate<BFloat16>(Slots * MoeShape.Hidden));
        _gateUpOut = Keep(runtime.Allocate<BFloat16>(Slots * 2 * MoeShape.Intermediate));
        _activated = Keep(runtime.Allocate<BFloat16>(Slots * MoeShape.Intermediate));
        _downOut = Keep(runtime.Allocate<BFloat16>(Slots * MoeShape.Hidden));
        MoeExperts.RandomFill(runtime, _permuted.View.Pointer, _permuted.Length * 2);
        MoeExperts.RandomFill(runtime, _activated.View.Pointer, _activated.Length * 2);
        var runs = new List<(int, int, int)>();
        for (int e = 0, start = 0; e < MoeShape.Experts; start += stats.RowsPerExpert[e], e++)
            if (stats.RowsPerExpert[e] > 0)
                runs.Add((e, start, stats.RowsPerExpert[e]));
        _runs = [.. runs];
        runtime.Bind();
        _cublas = new Cublas(runtime.CudaStreamHandle);
        try
        {
            _graph = Capture(Loop);
        }
        catch (Exception e) when (e is CudaException or InvalidOperationException)
        {
            Console.WriteLine($"// PerExpertCublas: the capture failed ({e.Message}); the loop runs eagerly, host launches included.");
            _graph = null;
        }
    }

    /// <summary>Enqueues one call of the per-expert loop: for each used expert, its gate|up GEMM, then its down GEMM.</summary>
    void Loop()
    {
        const int h = MoeShape.Hidden, i = MoeShape.Intermediate;
        IntPtr gateUp = _loopGateUp, down = _loopDown;
        IntPtr x = _permuted!.View.Pointer, gu = _gateUpOut!.View.Pointer, act = _activated!.View.Pointer, y = _downOut!.View.Pointer;
        foreach (var (e, start, rows) in _runs)
        {
            _cublas!.GemmNT(rows, 2 * i, h, x + (nint)(2L * start * h), gateUp + (nint)(2L * e * 2 * i * h), gu + (nint)(2L * start * 2 * i),
                CudaDataType.R16BF, CudaDataType.R16BF);
            _cublas.GemmNT(rows, h, i, act + (nint)(2L * start * i), down + (nint)(2L * e * h * i), y + (nint)(2L * start * h),
                CudaDataType.R16BF, CudaDataType.R16BF);
        }
    }

    /// <summary>Runs <paramref name="enqueue"/> once (kernels compiled and loaded), then captures <see cref="Calls"/> of it into one graph.</summary>
    DeviceGraph Capture(Action enqueue)
    {
        var runtime = _runtime!;
        runtime.Bind();
        enqueue();
        runtime.Synchronize();
        var graph = runtime.CaptureGraph(() =>
        {
            for (int call = 0; call < Calls; call++)
                enqueue();
        });
        Keep(graph);
        graph.Replay();
        runtime.Synchronize();
        return graph;
    }

    /// <summary>The compute ceiling: cuBLAS bf16 GEMM, 8192^3.</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public void CublasBf16() => Replay();

    /// <summary>The bandwidth ceiling: a device copy of the used experts' bytes (at most 1 GiB).</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public void Copy() => Replay();

    [Benchmark(OperationsPerInvoke = Calls)]
    public void PerExpertCublas()
    {
        if (_graph != null)
        {
            Replay();
            return;
        }
        _runtime!.Bind();
        for (int call = 0; call < Calls; call++)
            Loop();
        _runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Calls)]
    public void Native() => Replay();

    [Benchmark(OperationsPerInvoke = Calls)]
    public void Ilgpu() => Replay();

    void Replay()
    {
        _graph!.Replay();
        _runtime!.Synchronize();
    }

    T Keep<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _cublas?.Dispose();
        _cublas = null;
        for (int k = _owned.Count - 1; k >= 0; k--)
            _owned[k].Dispose();
        _owned.Clear();
        (_graph, _gemm) = (null, null);
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }
}
