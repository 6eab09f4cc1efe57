using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// DequantizeFp8 as an ILGPU kernel: y[m, r, c] = bf16((float)fp8[m, r, c] * scaleInv[m, r / BlockRows, c / BlockCols]) as
/// float32, bit-exact with <see cref="Float8E4M3.Dequantize"/> (<see cref="WeightDecode.Fp8Dequantize"/>). One group per weight row (of the
/// whole stack), its threads striding over the columns.
/// </summary>
internal sealed class DequantizeFp8Ilgpu(DeviceRuntime runtime)
{
    /// <summary>Threads per group (fewer for narrow rows, or where the device allows fewer).</summary>
    const int Threads = 256;

    Action<AcceleratorStream, KernelConfig, ArrayView<Float8E4M3>, ArrayView<float>, ArrayView<float>, WeightShape>? _kernel;

    public void Run(WeightMatrix w, DeviceView<float> y)
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        _kernel ??= accelerator.LoadKernel<ArrayView<Float8E4M3>, ArrayView<float>, ArrayView<float>, WeightShape>(Kernel);
        int warp = accelerator.WarpSize;
        int cap = Math.Max(warp, Math.Min(Threads, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((w.Cols + warp - 1) / warp * warp, warp, cap);
        _kernel(runtime.Stream, new KernelConfig(checked(w.Count * w.Rows), threads), w.Fp8Data.IlgpuView, w.ScaleInv.IlgpuView,
            y.IlgpuView, WeightShape.Of(w));
    }

    // group g = row g of the stack [count * rows, cols]
    static void Kernel(ArrayView<Float8E4M3> data, ArrayView<float> scaleInv, ArrayView<float> y, WeightShape w)
    {
        int row = Grid.IdxX;
        int matrix = row / w.Rows, r = row % w.Rows;
        for (int c = Group.IdxX; c < w.Cols; c += Group.DimX)
            y[(long)row * w.Cols + c] = WeightDecode.Fp8Dequantize(data[(long)row * w.Cols + c].Bits, WeightDecode.Fp8Scale(scaleInv, w, matrix, r, c));
    }
}
