using System.Runtime.CompilerServices;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// The native backend's dense bf16 linear layer through cuBLASLt, the same library call the benchmarks take as their
/// baseline (<see cref="CublasLtMatmul"/>): <c>y[m, n] = x[m, k] @ w[n, k]^T</c>, bf16 x and w, y bf16 or f32, fp32
/// accumulation, y rounded once. One per runtime (<see cref="For"/>): one cuBLAS/cuBLASLt handle bound to the runtime's
/// stream, one 32 MiB workspace, and a plan per (m, n, k, row strides, dtypes, alignment), all made on first use and
/// released when the runtime is disposed (its accelerator's Disposed event: Ops and backends are not disposable, so the
/// runtime's lifetime is the one they share). Plans are made on the host (no device work), so a shape run once before a
/// CUDA graph capture is captured as one cublasLtMatmul; the handle and workspace are made by the first call, which must
/// therefore not be inside a capture (the runtime's rule already: run the work once before capturing it).
/// </summary>
internal sealed class DenseGemmCublasLt : IDisposable
{
    /// <summary>The workspace cuBLASLt may use (32 MiB suits Hopper; NVIDIA recommends it for sm_90).</summary>
    public const long WorkspaceBytes = 32L << 20;

    static readonly ConditionalWeakTable<DeviceRuntime, DenseGemmCublasLt> PerRuntime = new();

    readonly DeviceRuntime _runtime;
    readonly Lock _lock = new();
    readonly Dictionary<PlanKey, CublasLtMatmul?> _plans = [];
    Cublas? _cublas;
    DeviceBuffer<int>? _workspace; // raw bytes; buffers are typed by element
    string? _unavailable; // why cuBLASLt cannot run here (library not found, handle refused); null while it can
    bool _disposed;

    DenseGemmCublasLt(DeviceRuntime runtime)
    {
        _runtime = runtime;
        runtime.Accelerator.Disposed += (_, _) => Dispose();
    }

    /// <summary>The runtime's instance (made on first use; nothing is allocated until the first matmul).</summary>
    public static DenseGemmCublasLt For(DeviceRuntime runtime) => PerRuntime.GetValue(runtime, static r => new DenseGemmCublasLt(r));

    /// <summary>What a plan depends on besides the pointers' values.</summary>
    readonly record struct PlanKey(int M, int N, int K, long Lda, long Ldc, CudaDataType AbType, CudaDataType CType, int Alignment);

    /// <summary>
    /// Enqueues <c>y = x @ w^T</c> on the runtime's stream when cuBLASLt can run it, and returns true; returns false (having
    /// enqueued nothing) where cuBLASLt is not available or has no algorithm for this shape, stride and alignment, so the
    /// caller runs dsk_linear instead.
    /// </summary>
    /// <remarks>x: bf16 [m, k], rows <paramref name="lda"/> elements apart; w: bf16 [n, k], dense; y: [m, n] of
    /// <paramref name="yType"/> (bf16 or f32), rows <paramref name="ldc"/> elements apart.</remarks>
    public bool TryRun(IntPtr x, IntPtr w, IntPtr y, int m, int n, int k, long lda, long ldc, CudaDataType yType)
    {
        int ySize = yType == CudaDataType.R32F ? 4 : 2;
        int alignment = Alignment(x, lda * 2, Alignment(w, (long)k * 2, Alignment(y, ldc * ySize, 256)));
        var key = new PlanKey(m, n, k, m == 1 ? k : lda, m == 1 ? n : ldc, CudaDataType.R16BF, yType, alignment);
        lock (_lock)
        {
            if (_disposed || !Ready())
                return false;
            if (!_plans.TryGetValue(key, out var plan))
            {
                try
                {
                    plan = new CublasLtMatmul(_cublas!, m, n, k, CudaDataType.R16BF, yType, _workspace!.View.Pointer, WorkspaceBytes,
                        key.Lda, key.Ldc, alignment);
                }
                catch (InvalidOperationException)
                {
                    plan = null; // no algorithm for this case: dsk_linear runs it, now and every time
                }
                _plans[key] = plan;
            }
            if (plan == null)
                return false;
            _runtime.Bind();
            plan.Run(x, w, y, _runtime.CudaStreamHandle);
            return true;
        }
    }

    /// <summary>Makes the handle and the workspace on first use; false (for good) where cuBLAS cannot be loaded or refuses.</summary>
    bool Ready()
    {
        if (_cublas != null)
            return true;
        if (_unavailable != null)
            return false;
        try
        {
            _runtime.Bind();
            _workspace = _runtime.Allocate<int>(WorkspaceBytes / sizeof(int));
            _cublas = new Cublas(_runtime.CudaStreamHandle);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException or EntryPointNotFoundException or DeviceMemoryException)
        {
            _unavailable = e.Message;
            _workspace?.Dispose();
            _workspace = null;
            return false;
        }
    }

    /// <summary>The largest power of two up to <paramref name="limit"/> dividing both the address and the row stride in bytes.</summary>
    static int Alignment(IntPtr pointer, long strideBytes, int limit)
    {
        long bits = (long)pointer | strideBytes | (long)limit;
        return (int)(bits & -bits);
    }

    /// <summary>Plans made so far (for tests): including the cases cuBLASLt had no algorithm for.</summary>
    internal int PlanCount
    {
        get { lock (_lock) return _plans.Count; }
    }

    /// <summary>Why cuBLASLt cannot run here, once a call found out; else null.</summary>
    internal string? Unavailable => _unavailable;

    /// <summary>Destroys the plans, the handle and the workspace (the runtime does this when it is disposed).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (var plan in _plans.Values)
                plan?.Dispose();
            _plans.Clear();
            _cublas?.Dispose(); // cublasDestroy waits for the device; the context is still alive during the Disposed event
            _cublas = null;
            _workspace?.Dispose();
            _workspace = null;
        }
    }
}
