using BenchmarkDotNet.Attributes;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Gemm;

/// <summary>
/// The GEMM baselines our linear-layer kernels will be judged against: cuBLAS (cublasGemmEx) and cuBLASLt
/// (cublasLtMatmul with the heuristic's first algorithm and a 32 MiB workspace) bf16 <c>C = A @ W^T</c>
/// (fp32 accumulation and output) at decode (1, 16 tokens) and prefill (4096 tokens) on real weight shapes,
/// beside a device copy of the weight's bytes. At one token a linear layer is memory-bound (its floor is reading W
/// once: see "% of copy"); at 4096 tokens it is compute-bound (see TFLOP/s). Weights are 117-264 MB, more
/// than the H100's 50 MB L2, so every call reads them from DRAM. GPU only (no smoke mode: ILGPU's CPU
/// accelerator has no cuBLAS).
/// </summary>
[CudaOnly]
public class CublasGemmBenchmarks : IBandwidthBenchmark, IComputeBenchmark, IDisposable
{
    const int Launches = 20;

    [Params(1, 16, 4096)] public int Tokens;

    /// <summary>out x in of the weight: DeepSeek-V3's dense MLP gate/up (18432 x 7168) and Llama-8B's (14336 x 4096).</summary>
    [Params("18432x7168", "14336x4096")] public string Weight = "18432x7168";

    int N => int.Parse(Weight.Split('x')[0]);
    int K => int.Parse(Weight.Split('x')[1]);

    DeviceRuntime? _runtime;
    const long WorkspaceBytes = 32L << 20;

    Cublas? _cublas;
    CublasLtMatmul? _lt;
    DeviceBuffer<BFloat16>? _a, _w, _wCopy;
    DeviceBuffer<int>? _workspace; // raw bytes for cuBLASLt; int because buffers are typed by element
    DeviceBuffer<float>? _c;

    public long BytesMoved(string method) => method == BandwidthColumn.CopyMethod
        ? 2L * N * K * 2                                      // the copy reads and writes the weight
        : 2L * N * K + 2L * Tokens * K + 4L * Tokens * N;     // W and A read, C written

    public double FloatingPointOperations(string method) =>
        method == BandwidthColumn.CopyMethod ? 0 : 2.0 * Tokens * N * K;

    [GlobalSetup]
    public void Setup()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _a = _runtime.Upload<BFloat16>(BenchData.RandomBf16((long)Tokens * K));
        _w = _runtime.Upload<BFloat16>(BenchData.RandomBf16((long)N * K));
        _wCopy = _runtime.Allocate<BFloat16>((long)N * K);
        _c = _runtime.Allocate<float>((long)Tokens * N);
        _workspace = _runtime.Allocate<int>(WorkspaceBytes / sizeof(int));
        _runtime.Bind();
        _cublas = new Cublas(_runtime.CudaStreamHandle);
        _lt = new CublasLtMatmul(_cublas, Tokens, N, K, CudaDataType.R16BF, CudaDataType.R32F, _workspace.View.Pointer, WorkspaceBytes);
        Cublas(); // warm: handle workspace, kernel selection
        CublasLt();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Launches)]
    public void Copy()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            CudaDriver.CopyDeviceToDeviceAsync(_wCopy!.View.Pointer, _w!.View.Pointer, 2L * N * K, runtime.CudaStreamHandle);
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void Cublas()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            _cublas!.GemmNT(Tokens, N, K, _a!.View.Pointer, _w!.View.Pointer, _c!.View.Pointer, CudaDataType.R16BF, CudaDataType.R32F);
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void CublasLt()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            _lt!.Run(_a!.View.Pointer, _w!.View.Pointer, _c!.View.Pointer, runtime.CudaStreamHandle);
        runtime.Synchronize();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _lt?.Dispose();
        _cublas?.Dispose();
        _a?.Dispose(); _w?.Dispose(); _wCopy?.Dispose(); _c?.Dispose(); _workspace?.Dispose();
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }
}
