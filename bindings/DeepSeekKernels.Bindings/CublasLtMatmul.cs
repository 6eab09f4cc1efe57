using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>
/// One cuBLASLt matmul, planned once and run many times, as cuBLASLt is meant to be used: row-major
/// <c>C[m,n] = A[m,k] @ B[n,k]^T</c> (a linear layer: activations times weight transposed) with fp32
/// accumulation, its descriptors and the heuristic's first algorithm for this shape, dtype, row strides, pointer
/// alignment and workspace. A and C may have row strides (lda, ldc: a column block of a wider matrix); B is dense.
/// C's type may differ from A's and B's (bf16 in, f32 or bf16 out: the product rounded once).
/// The baseline beside <see cref="Cublas.GemmNT"/>; the FP8 block-scaled GEMMs to come extend this plan
/// with scale pointers. The caller owns the device workspace and keeps it alive while the plan runs.
/// </summary>
public sealed partial class CublasLtMatmul : IDisposable
{
    const string Lib = NativeLibraryLocator.CublasLt;
    const int DescTransA = 3, DescTransB = 4;   // CUBLASLT_MATMUL_DESC_TRANSA / _TRANSB
    const int PrefMaxWorkspaceBytes = 1;        // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    const int PrefMinAlignmentA = 5;            // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (then _B = 6, _C = 7, _D = 8)
    const int OpN = 0, OpT = 1;                 // CUBLAS_OP_N / _T

    /// <summary>cublasLtMatmulHeuristicResult_t: the algorithm (64 opaque bytes), its workspace and state.</summary>
    [StructLayout(LayoutKind.Sequential)]
    unsafe struct HeuristicResult
    {
        public Algo Algorithm;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    /// <summary>cublasLtMatmulAlgo_t: 64 opaque bytes.</summary>
    unsafe struct Algo
    {
        public fixed ulong Data[8];
    }

    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulDescCreate")] private static partial int DescCreate(out IntPtr desc, int computeType, int scaleType);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulDescDestroy")] private static partial int DescDestroy(IntPtr desc);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulDescSetAttribute")] private static unsafe partial int DescSetAttribute(IntPtr desc, int attribute, void* value, nuint size);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatrixLayoutCreate")] private static partial int LayoutCreate(out IntPtr layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatrixLayoutDestroy")] private static partial int LayoutDestroy(IntPtr layout);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulPreferenceCreate")] private static partial int PreferenceCreate(out IntPtr preference);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulPreferenceDestroy")] private static partial int PreferenceDestroy(IntPtr preference);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulPreferenceSetAttribute")] private static unsafe partial int PreferenceSetAttribute(IntPtr preference, int attribute, void* value, nuint size);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulAlgoGetHeuristic")]
    private static unsafe partial int AlgoGetHeuristic(IntPtr handle, IntPtr desc, IntPtr aDesc, IntPtr bDesc, IntPtr cDesc, IntPtr dDesc,
        IntPtr preference, int requested, HeuristicResult* results, out int returned);
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmul")]
    private static unsafe partial int Matmul(IntPtr handle, IntPtr desc, float* alpha, IntPtr a, IntPtr aDesc, IntPtr b, IntPtr bDesc,
        float* beta, IntPtr c, IntPtr cDesc, IntPtr d, IntPtr dDesc, Algo* algo, IntPtr workspace, nuint workspaceSize, IntPtr stream);

    readonly IntPtr _handle;
    readonly IntPtr _workspace;
    readonly long _workspaceBytes;
    IntPtr _desc, _aLayout, _bLayout, _cLayout;
    Algo _algo;

    /// <summary>
    /// Plans <c>C[m,n] = A[m,k] @ B[n,k]^T</c> for dense row-major operands of <paramref name="abType"/> and a
    /// <paramref name="cType"/> output, on <paramref name="cublas"/>'s cuBLASLt handle, allowing the algorithm
    /// up to <paramref name="workspaceBytes"/> of <paramref name="workspace"/> (32 MiB suits Hopper).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or the workspace size is negative.</exception>
    /// <exception cref="InvalidOperationException">cuBLASLt refused the plan or has no algorithm for it (the message names the call and status).</exception>
    public CublasLtMatmul(Cublas cublas, int m, int n, int k, CudaDataType abType, CudaDataType cType,
        IntPtr workspace, long workspaceBytes)
        : this(cublas, m, n, k, abType, cType, workspace, workspaceBytes, lda: k, ldc: n, alignmentBytes: 256)
    {
    }

    /// <summary>
    /// Plans <c>C[m,n] = A[m,k] @ B[n,k]^T</c> as the other constructor does, with A's rows <paramref name="lda"/>
    /// elements apart (at least k) and C's <paramref name="ldc"/> apart (at least n; B dense), for pointers and row strides
    /// in bytes that are multiples of <paramref name="alignmentBytes"/> (a power of two from 1 to 256): the heuristic then
    /// only offers algorithms that work at that alignment (cuBLASLt assumes 256 bytes unless told).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, a row stride is too short, the alignment is not a power of two in 1..256, or the workspace size is negative.</exception>
    /// <exception cref="InvalidOperationException">cuBLASLt refused the plan or has no algorithm for it (the message names the call and status).</exception>
    public unsafe CublasLtMatmul(Cublas cublas, int m, int n, int k, CudaDataType abType, CudaDataType cType,
        IntPtr workspace, long workspaceBytes, long lda, long ldc, int alignmentBytes)
    {
        ArgumentNullException.ThrowIfNull(cublas);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(m);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, k);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldc, n);
        if (alignmentBytes is < 1 or > 256 || (alignmentBytes & (alignmentBytes - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignmentBytes), alignmentBytes, "The alignment must be a power of two from 1 to 256 bytes.");
        ArgumentOutOfRangeException.ThrowIfNegative(workspaceBytes);
        (M, N, K, Lda, Ldc, AlignmentBytes) = (m, n, k, lda, ldc, alignmentBytes);
        _handle = cublas.LtHandle;
        _workspace = workspace;
        _workspaceBytes = workspaceBytes;
        IntPtr preference = IntPtr.Zero;
        try
        {
            // Column-major, as cuBLASLt is: C^T[n,m] = op_T(B as k x n) @ (A^T as k x m), as in Cublas.GemmNT.
            Cublas.Check(DescCreate(out _desc, Cublas.ComputeType32F, (int)CudaDataType.R32F), "cublasLtMatmulDescCreate");
            int transA = OpT, transB = OpN;
            Cublas.Check(DescSetAttribute(_desc, DescTransA, &transA, sizeof(int)), "cublasLtMatmulDescSetAttribute(TRANSA)");
            Cublas.Check(DescSetAttribute(_desc, DescTransB, &transB, sizeof(int)), "cublasLtMatmulDescSetAttribute(TRANSB)");
            Cublas.Check(LayoutCreate(out _aLayout, (int)abType, (ulong)k, (ulong)n, k), "cublasLtMatrixLayoutCreate(B)");
            Cublas.Check(LayoutCreate(out _bLayout, (int)abType, (ulong)k, (ulong)m, lda), "cublasLtMatrixLayoutCreate(A)");
            Cublas.Check(LayoutCreate(out _cLayout, (int)cType, (ulong)n, (ulong)m, ldc), "cublasLtMatrixLayoutCreate(C)");
            Cublas.Check(PreferenceCreate(out preference), "cublasLtMatmulPreferenceCreate");
            ulong maxWorkspace = (ulong)workspaceBytes;
            Cublas.Check(PreferenceSetAttribute(preference, PrefMaxWorkspaceBytes, &maxWorkspace, sizeof(ulong)),
                "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
            uint alignment = (uint)alignmentBytes;
            for (int operand = 0; operand < 4; operand++) // A, B, C, D (cuBLASLt's names: its A is our B, the weight)
                Cublas.Check(PreferenceSetAttribute(preference, PrefMinAlignmentA + operand, &alignment, sizeof(uint)),
                    "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_BYTES)");
            HeuristicResult result = default;
            Cublas.Check(AlgoGetHeuristic(_handle, _desc, _aLayout, _bLayout, _cLayout, _cLayout, preference, 1, &result, out int returned),
                "cublasLtMatmulAlgoGetHeuristic");
            if (returned < 1)
                throw new InvalidOperationException(
                    $"cublasLtMatmulAlgoGetHeuristic: no algorithm for {m}x{n}x{k} {abType} -> {cType} (lda {lda}, ldc {ldc}, {alignmentBytes}-byte alignment) within {workspaceBytes:N0} bytes of workspace.");
            _algo = result.Algorithm;
            WorkspaceUsed = (long)result.WorkspaceSize;
        }
        catch
        {
            Dispose();
            throw;
        }
        finally
        {
            if (preference != IntPtr.Zero)
                PreferenceDestroy(preference);
        }
    }

    public int M { get; }
    public int N { get; }
    public int K { get; }

    /// <summary>Elements between rows of A.</summary>
    public long Lda { get; }

    /// <summary>Elements between rows of C.</summary>
    public long Ldc { get; }

    /// <summary>The alignment, in bytes, that the plan assumes of every pointer passed to <see cref="Run"/>.</summary>
    public int AlignmentBytes { get; }

    /// <summary>Bytes of the workspace the chosen algorithm uses.</summary>
    public long WorkspaceUsed { get; }

    /// <summary>Enqueues <c>C = alpha * A @ B^T + beta * C</c> on <paramref name="stream"/> (device pointers, row-major, with the plan's row strides and alignment).</summary>
    public unsafe void Run(IntPtr a, IntPtr b, IntPtr c, IntPtr stream, float alpha = 1f, float beta = 0f)
    {
        ObjectDisposedException.ThrowIf(_desc == IntPtr.Zero, this);
        Algo algo = _algo;
        Cublas.Check(Matmul(_handle, _desc, &alpha, b, _aLayout, a, _bLayout, &beta, c, _cLayout, c, _cLayout, &algo,
            _workspace, (nuint)_workspaceBytes, stream), "cublasLtMatmul");
    }

    public void Dispose()
    {
        if (_cLayout != IntPtr.Zero) { LayoutDestroy(_cLayout); _cLayout = IntPtr.Zero; }
        if (_bLayout != IntPtr.Zero) { LayoutDestroy(_bLayout); _bLayout = IntPtr.Zero; }
        if (_aLayout != IntPtr.Zero) { LayoutDestroy(_aLayout); _aLayout = IntPtr.Zero; }
        if (_desc != IntPtr.Zero) { DescDestroy(_desc); _desc = IntPtr.Zero; }
    }
}
