using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The cuBLAS binding (the GEMM baseline of the benchmarks) and NVML on a GPU: cuBLAS computes on the
/// runtime's own stream and buffers, its errors become exceptions naming the call, NVML reads the device.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class CublasAndNvmlTests
{
    [Theory]
    [InlineData(1, 7168, 512)]
    [InlineData(37, 53, 256)]
    [InlineData(130, 257, 129)]
    public void GemmNTMatchesAFloat64LoopOnTheRuntimeStream(int m, int n, int k)
    {
        var runtime = TestDevices.RequireCuda();
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
        var actual = dc.ToArray();

        // bf16 products are exact in fp32; only the fp32 accumulation order differs from the float64 loop.
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
