using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The cuBLAS and cuBLASLt bindings (the GEMM baselines of the benchmarks) and NVML on a GPU: both compute
/// on the runtime's own stream and buffers, their errors become exceptions naming the call, NVML reads the
/// device. The cuBLASLt structs' layout is checked everywhere (no GPU needed).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class CublasAndNvmlTests
{
    public static TheoryData<int, int, int> GemmShapes => new() { { 1, 7168, 512 }, { 37, 53, 256 }, { 130, 257, 129 } };

    [DeviceTheory, NeedsCudaGpu, MemberData(nameof(GemmShapes))]
    public void GemmNTMatchesAFloat64LoopOnTheRuntimeStream(int m, int n, int k)
    {
        var runtime = TestDevices.RequireCuda();
        var (a, b, expected) = GemmCase(m, n, k);
        using var da = runtime.Upload<BFloat16>(a);
        using var db = runtime.Upload<BFloat16>(b);
        using var dc = runtime.Upload<float>(TestData.Poison<float>(m * n));
        runtime.Bind();
        using (var cublas = new Cublas(runtime.CudaStreamHandle))
        {
            Assert.True(cublas.Version > 0);
            cublas.GemmNT(m, n, k, da.View.Pointer, db.View.Pointer, dc.View.Pointer, CudaDataType.R16BF, CudaDataType.R32F);
            runtime.Synchronize();
        }
        AssertMatches(expected, dc.ToArray());
    }

    [DeviceTheory, NeedsCudaGpu, MemberData(nameof(GemmShapes))]
    public void CublasLtMatmulMatchesAFloat64LoopOnTheRuntimeStream(int m, int n, int k)
    {
        var runtime = TestDevices.RequireCuda();
        var (a, b, expected) = GemmCase(m, n, k);
        using var da = runtime.Upload<BFloat16>(a);
        using var db = runtime.Upload<BFloat16>(b);
        using var dc = runtime.Upload<float>(TestData.Poison<float>(m * n));
        const long workspaceBytes = 32L << 20;
        using var workspace = runtime.Allocate<int>(workspaceBytes / sizeof(int)); // raw bytes; buffers are typed by element
        runtime.Bind();
        using (var cublas = new Cublas(runtime.CudaStreamHandle))
        using (var matmul = new CublasLtMatmul(cublas, m, n, k, CudaDataType.R16BF, CudaDataType.R32F, workspace.View.Pointer, workspaceBytes))
        {
            Assert.InRange(matmul.WorkspaceUsed, 0, workspaceBytes);
            matmul.Run(da.View.Pointer, db.View.Pointer, dc.View.Pointer, runtime.CudaStreamHandle);
            runtime.Synchronize();
        }
        AssertMatches(expected, dc.ToArray());
    }

    /// <summary>bf16 A[m,k] and B[n,k] and their product A @ B^T in float64.</summary>
    static (BFloat16[] A, BFloat16[] B, double[] Expected) GemmCase(int m, int n, int k)
    {
        var a = TestData.As<BFloat16>(TestData.Activations(m * k, m));
        var b = TestData.As<BFloat16>(TestData.Weights(n * k, n));
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (double)a[i * k + p].ToSingle() * b[j * k + p].ToSingle();
                expected[i * n + j] = sum;
            }
        return (a, b, expected);
    }

    /// <summary>bf16 products are exact in fp32; only the fp32 accumulation order differs from the float64 loop.</summary>
    static void AssertMatches(double[] expected, float[] actual)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"C[{i}] was not written");
            err += Math.Pow(actual[i] - expected[i], 2);
            norm += expected[i] * expected[i];
        }
        Assert.True(Math.Sqrt(err / norm) < 1e-5, $"relative error {Math.Sqrt(err / norm):E2}");
    }

    [Fact]
    public void CublasLtStructsHaveTheCHeadersLayout()
    {
        // cublasLt.h: cublasLtMatmulAlgo_t is 64 bytes; cublasLtMatmulHeuristicResult_t is 96, with
        // workspaceSize at 64 and state at 72 (checked with the CUDA 11.8 header; unchanged through 13).
        var result = typeof(CublasLtMatmul).GetNestedType("HeuristicResult", System.Reflection.BindingFlags.NonPublic)!;
        var algo = typeof(CublasLtMatmul).GetNestedType("Algo", System.Reflection.BindingFlags.NonPublic)!;
        Assert.Equal(64, System.Runtime.InteropServices.Marshal.SizeOf(algo));
        Assert.Equal(96, System.Runtime.InteropServices.Marshal.SizeOf(result));
        Assert.Equal(64, (int)System.Runtime.InteropServices.Marshal.OffsetOf(result, "WorkspaceSize"));
        Assert.Equal(72, (int)System.Runtime.InteropServices.Marshal.OffsetOf(result, "State"));
    }

    [Fact]
    public void AnInvalidCallIsAnExceptionNamingTheCallAndTheStatus()
    {
        var runtime = TestDevices.RequireCuda();
        using var buffer = runtime.Allocate<float>(64);
        runtime.Bind();
        using var cublas = new Cublas(runtime.CudaStreamHandle);
        var e = Assert.Throws<InvalidOperationException>(() =>
            cublas.GemmNT(-1, 8, 8, buffer.View.Pointer, buffer.View.Pointer, buffer.View.Pointer, CudaDataType.R32F, CudaDataType.R32F));
        Assert.Contains("cublasGemmEx", e.Message);
        Assert.Contains("CUBLAS_STATUS_INVALID_VALUE", e.Message);
        Assert.True(Cublas.LtVersion > 0);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            new CublasLtMatmul(cublas, 0, 8, 8, CudaDataType.R16BF, CudaDataType.R32F, buffer.View.Pointer, 256));
    }

    [Fact]
    public void NvmlReadsTheGpuTheRuntimeUses()
    {
        var runtime = TestDevices.RequireCuda();
        var gpus = Nvml.ReadAll();
        Assert.NotEmpty(gpus);
        var gpu = gpus[0];
        Assert.Equal(runtime.DeviceName, gpu.Name);
        Assert.InRange(gpu.MemoryUsed, 1, gpu.MemoryTotal);
        // ILGPU reports the memory CUDA can address; NVML the board's total, which is at least that.
        Assert.True(gpu.MemoryTotal >= runtime.Accelerator.MemorySize, $"NVML {gpu.MemoryTotal} B < CUDA {runtime.Accelerator.MemorySize} B");
        Assert.InRange(gpu.GpuUtilizationPercent, 0, 100);
    }
}
