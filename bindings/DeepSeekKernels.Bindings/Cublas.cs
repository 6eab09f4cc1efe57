using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>cuBLAS data types (<c>cudaDataType_t</c>) used by the GEMM baselines.</summary>
public enum CudaDataType
{
    R32F = 0,
    R16F = 2,
    R16BF = 14,
    R8FE4M3 = 28,
}

/// <summary>
/// cuBLAS and cuBLASLt, the baselines our GEMM kernels are measured against. Column-major, as cuBLAS is:
/// callers computing row-major <c>D = A @ B^T</c> pass the operands swapped. Handles are bound to the
/// stream the ILGPU runtime owns, so baseline and kernel run in the same stream and context.
/// </summary>
public sealed partial class Cublas : IDisposable
{
    const string Lib = NativeLibraryLocator.Cublas;
    const string LtLib = NativeLibraryLocator.CublasLt;
    internal const int ComputeType32F = 68; // CUBLAS_COMPUTE_32F
    const int GemmDefault = -1;    // CUBLAS_GEMM_DEFAULT

    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")] private static partial int Create(out IntPtr handle);
    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")] private static partial int Destroy(IntPtr handle);
    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")] private static partial int SetStream(IntPtr handle, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cublasGetVersion_v2")] private static partial int GetVersion(IntPtr handle, out int version);
    [LibraryImport(Lib, EntryPoint = "cublasGetStatusName")] private static partial IntPtr GetStatusName(int status);
    [LibraryImport(Lib, EntryPoint = "cublasGemmEx")]
    private static unsafe partial int GemmEx(IntPtr handle, int transa, int transb, int m, int n, int k,
        float* alpha, IntPtr a, int aType, int lda, IntPtr b, int bType, int ldb,
        float* beta, IntPtr c, int cType, int ldc, int computeType, int algo);

    [LibraryImport(LtLib, EntryPoint = "cublasLtCreate")] private static partial int LtCreate(out IntPtr handle);
    [LibraryImport(LtLib, EntryPoint = "cublasLtDestroy")] private static partial int LtDestroy(IntPtr handle);
    [LibraryImport(LtLib, EntryPoint = "cublasLtGetVersion")] private static partial nuint LtGetVersion();

    IntPtr _handle;
    IntPtr _ltHandle;

    /// <summary>Creates cuBLAS and cuBLASLt handles on the current context, bound to <paramref name="stream"/>.</summary>
    public Cublas(IntPtr stream)
    {
        NativeLibraryLocator.Require(Lib);
        NativeLibraryLocator.Require(LtLib);
        Check(Create(out _handle), "cublasCreate");
        Check(SetStream(_handle, stream), "cublasSetStream");
        Check(LtCreate(out _ltHandle), "cublasLtCreate");
    }

    /// <summary>cuBLAS version (e.g. 130000).</summary>
    public int Version
    {
        get { Check(GetVersion(_handle, out int v), "cublasGetVersion"); return v; }
    }

    /// <summary>cuBLASLt version.</summary>
    public static long LtVersion => (long)LtGetVersion();

    /// <summary>The cuBLASLt handle, for matmul baselines.</summary>
    public IntPtr LtHandle => _ltHandle;

    /// <summary>
    /// Row-major <c>C[m,n] = alpha * A[m,k] @ B[n,k]^T + beta * C</c> with fp32 accumulation (the "NT" layout
    /// of a linear layer: activations times weight transposed). Dense operands, no padding.
    /// </summary>
    public unsafe void GemmNT(int m, int n, int k, IntPtr a, IntPtr b, IntPtr c, CudaDataType abType, CudaDataType cType,
        float alpha = 1f, float beta = 0f)
    {
        // Column-major view: C^T[n,m] = B[n,k] (as k x n, transposed) @ A^T.
        Check(GemmEx(_handle, 1, 0, n, m, k, &alpha, b, (int)abType, k, a, (int)abType, k, &beta, c, (int)cType, n,
            ComputeType32F, GemmDefault), "cublasGemmEx");
    }

    /// <summary>Throws naming <paramref name="operation"/> and the status (e.g. CUBLAS_STATUS_INVALID_VALUE) unless it is success.</summary>
    internal static void Check(int status, string operation)
    {
        if (status != 0)
            throw new InvalidOperationException($"{operation}: {Marshal.PtrToStringUTF8(GetStatusName(status)) ?? "status " + status}");
    }

    public void Dispose()
    {
        if (_ltHandle != IntPtr.Zero) { LtDestroy(_ltHandle); _ltHandle = IntPtr.Zero; }
        if (_handle != IntPtr.Zero) { Destroy(_handle); _handle = IntPtr.Zero; }
    }
}
