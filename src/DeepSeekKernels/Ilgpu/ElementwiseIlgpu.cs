using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// The small ops as ILGPU kernels: CopyColumns, SiluAndMul, Softmax, Add and Scale, in float32, with the
/// semantics of <see cref="Reference.ElementwiseReference"/> (the same formulas in the same order:
/// <c>silu(g) = g / (1 + exp(-g))</c>; softmax with the row maximum subtracted). One thread per output
/// element, except Softmax: one group per row, which reduces the row's maximum and sum in the group.
/// Kernels are compiled on first use, per runtime.
/// </summary>
internal sealed class ElementwiseIlgpu(DeviceRuntime runtime)
{
    /// <summary>Threads per Softmax group (fewer for short rows), as long as the device allows.</summary>
    const int SoftmaxThreads = 256;

    Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _add;
    Action<AcceleratorStream, Index1D, ArrayView<float>, float, ArrayView<float>>? _scale;
    Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, int>? _siluAndMul;
    Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, CopyShape>? _copyColumns;
    Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int>? _softmax;

    /// <summary>Columns [Offset, Offset + Width) of rows of XColumns / YColumns elements.</summary>
    internal readonly record struct CopyShape(int XColumns, int XOffset, int YColumns, int YOffset, int Width);

    Accelerator Accelerator => runtime.Accelerator;

    public void Add(DeviceView<float> x, DeviceView<float> y, DeviceView<float> z)
    {
        runtime.Bind();
        _add ??= Accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AddKernel);
        _add(runtime.Stream, (int)z.Length, x.IlgpuView, y.IlgpuView, z.IlgpuView);
    }

    public void Scale(DeviceView<float> x, float factor, DeviceView<float> y)
    {
        runtime.Bind();
        _scale ??= Accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, float, ArrayView<float>>(ScaleKernel);
        _scale(runtime.Stream, (int)y.Length, x.IlgpuView, factor, y.IlgpuView);
    }

    public void SiluAndMul(DeviceView<float> x, DeviceView<float> y, int rows, int intermediate)
    {
        runtime.Bind();
        _siluAndMul ??= Accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(SiluAndMulKernel);
        _siluAndMul(runtime.Stream, checked(rows * intermediate), x.IlgpuView, y.IlgpuView, intermediate);
    }

    public void CopyColumns(DeviceView<float> x, int xColumns, int xOffset, DeviceView<float> y, int yColumns, int yOffset, int width, int rows)
    {
        runtime.Bind();
        _copyColumns ??= Accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, CopyShape>(CopyColumnsKernel);
        _copyColumns(runtime.Stream, checked(rows * width), x.IlgpuView, y.IlgpuView, new CopyShape(xColumns, xOffset, yColumns, yOffset, width));
    }

    public void Softmax(DeviceView<float> x, DeviceView<float> y, int rows, int rowLength)
    {
        runtime.Bind();
        _softmax ??= Accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, int>(SoftmaxKernel);
        int warp = Accelerator.WarpSize;
        int cap = Math.Min(SoftmaxThreads, Accelerator.MaxNumThreadsPerGroup) / warp * warp;
        int threads = Math.Clamp((rowLength + warp - 1) / warp * warp, warp, Math.Max(warp, cap));
        _softmax(runtime.Stream, new KernelConfig(rows, threads), x.IlgpuView, y.IlgpuView, rowLength);
    }

    static void AddKernel(Index1D i, ArrayView<float> x, ArrayView<float> y, ArrayView<float> z) => z[i] = x[i] + y[i];

    static void ScaleKernel(Index1D i, ArrayView<float> x, float factor, ArrayView<float> y) => y[i] = x[i] * factor;

    // x [rows, 2 * intermediate] = [gate | up]; y [rows, intermediate]; thread i = (row, column).
    static void SiluAndMulKernel(Index1D i, ArrayView<float> x, ArrayView<float> y, int intermediate)
    {
        long row = i / intermediate, column = i % intermediate;
        float gate = x[2 * row * intermediate + column];
        float up = x[(2 * row + 1) * intermediate + column];
        y[i] = gate / (1f + XMath.Exp(-gate)) * up;
    }

    // thread i = (row, column of the block)
    static void CopyColumnsKernel(Index1D i, ArrayView<float> x, ArrayView<float> y, CopyShape s)
    {
        long row = i / s.Width, column = i % s.Width;
        y[row * s.YColumns + s.YOffset + column] = x[row * s.XColumns + s.XOffset + column];
    }

    // One group per row: the row's maximum, then the sum of exp(x - max), then exp(x - max) / sum. Each thread
    // rewrites only the elements it read, so y may be exactly x.
    static void SoftmaxKernel(ArrayView<float> x, ArrayView<float> y, int rowLength)
    {
        long start = (long)Grid.IdxX * rowLength;
        float max = float.NegativeInfinity;
        for (int c = Group.IdxX; c < rowLength; c += Group.DimX)
            max = XMath.Max(max, x[start + c]);
        max = BlockReduce.Max(max);
        float sum = 0f;
        for (int c = Group.IdxX; c < rowLength; c += Group.DimX)
            sum += XMath.Exp(x[start + c] - max);
        sum = BlockReduce.Sum(sum);
        for (int c = Group.IdxX; c < rowLength; c += Group.DimX)
            y[start + c] = XMath.Exp(x[start + c] - max) / sum;
    }
}
