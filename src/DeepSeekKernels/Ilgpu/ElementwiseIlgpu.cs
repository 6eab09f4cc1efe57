using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// The small ops as ILGPU kernels: CopyColumns, SiluAndMul, Softmax, Add and Scale, on f32 or bf16 operands (all of one
/// element type, as the op API gives them), with the semantics of <see cref="Reference.ElementwiseReference"/> (the same
/// formulas in the same order: <c>silu(g) = g / (1 + exp(-g))</c>; softmax with the row maximum subtracted): each element
/// loaded as fp32 (bf16 widened exactly, as raw bits through <see cref="BF16Codec"/>), fp32 arithmetic, one rounding per
/// output; CopyColumns copies the elements as they are. One thread per output element, except Softmax: one group per row,
/// which reduces the row's maximum and sum in the group. Kernels are compiled on first use, per runtime and element type.
/// </summary>
internal sealed class ElementwiseIlgpu(DeviceRuntime runtime)
{
    /// <summary>Threads per Softmax group (fewer for short rows), as long as the device allows.</summary>
    const int SoftmaxThreads = 256;

    readonly ConcurrentDictionary<(string Kernel, Type Element), Delegate> _kernels = new();

    /// <summary>Columns [Offset, Offset + Width) of rows of XColumns / YColumns elements.</summary>
    internal readonly record struct CopyShape(int XColumns, int XOffset, int YColumns, int YOffset, int Width);

    Accelerator Accelerator => runtime.Accelerator;

    public void Add(DeviceTensor x, DeviceTensor y, DeviceTensor z)
    {
        if (z.ElementType == ElementType.BF16)
            Add<BFloat16>(x, y, z);
        else
            Add<float>(x, y, z);
    }

    public void Scale(DeviceTensor x, float factor, DeviceTensor y)
    {
        if (y.ElementType == ElementType.BF16)
            Scale<BFloat16>(x, factor, y);
        else
            Scale<float>(x, factor, y);
    }

    public void SiluAndMul(DeviceTensor x, DeviceTensor y, int rows, int intermediate)
    {
        if (y.ElementType == ElementType.BF16)
            SiluAndMul<BFloat16>(x, y, rows, intermediate);
        else
            SiluAndMul<float>(x, y, rows, intermediate);
    }

    public void CopyColumns(DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns, int yOffset, int width, int rows)
    {
        var shape = new CopyShape(xColumns, xOffset, yColumns, yOffset, width);
        if (y.ElementType == ElementType.BF16)
            CopyColumns<BFloat16>(x, y, shape, rows);
        else
            CopyColumns<float>(x, y, shape, rows);
    }

    public void Softmax(DeviceTensor x, DeviceTensor y, int rows, int rowLength)
    {
        if (y.ElementType == ElementType.BF16)
            Softmax<BFloat16>(x, y, rows, rowLength);
        else
            Softmax<float>(x, y, rows, rowLength);
    }

    void Add<T>(DeviceTensor x, DeviceTensor y, DeviceTensor z) where T : unmanaged
    {
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>>)_kernels.GetOrAdd((nameof(AddKernel), typeof(T)),
            _ => Accelerator.LoadAutoGroupedKernel(Closed<Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>>>(nameof(AddKernel), typeof(T))));
        kernel(runtime.Stream, (int)z.Length, View<T>(x), View<T>(y), View<T>(z));
    }

    void Scale<T>(DeviceTensor x, float factor, DeviceTensor y) where T : unmanaged
    {
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, Index1D, ArrayView<T>, float, ArrayView<T>>)_kernels.GetOrAdd((nameof(ScaleKernel), typeof(T)),
            _ => Accelerator.LoadAutoGroupedKernel(Closed<Action<Index1D, ArrayView<T>, float, ArrayView<T>>>(nameof(ScaleKernel), typeof(T))));
        kernel(runtime.Stream, (int)y.Length, View<T>(x), factor, View<T>(y));
    }

    void SiluAndMul<T>(DeviceTensor x, DeviceTensor y, int rows, int intermediate) where T : unmanaged
    {
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, int>)_kernels.GetOrAdd((nameof(SiluAndMulKernel), typeof(T)),
            _ => Accelerator.LoadAutoGroupedKernel(Closed<Action<Index1D, ArrayView<T>, ArrayView<T>, int>>(nameof(SiluAndMulKernel), typeof(T))));
        kernel(runtime.Stream, checked(rows * intermediate), View<T>(x), View<T>(y), intermediate);
    }

    void CopyColumns<T>(DeviceTensor x, DeviceTensor y, CopyShape shape, int rows) where T : unmanaged
    {
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, CopyShape>)_kernels.GetOrAdd((nameof(CopyColumnsKernel), typeof(T)),
            _ => Accelerator.LoadAutoGroupedKernel(Closed<Action<Index1D, ArrayView<T>, ArrayView<T>, CopyShape>>(nameof(CopyColumnsKernel), typeof(T))));
        kernel(runtime.Stream, checked(rows * shape.Width), View<T>(x), View<T>(y), shape);
    }

    void Softmax<T>(DeviceTensor x, DeviceTensor y, int rows, int rowLength) where T : unmanaged
    {
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, int>)_kernels.GetOrAdd((nameof(SoftmaxKernel), typeof(T)),
            _ => Accelerator.LoadKernel(Closed<Action<ArrayView<T>, ArrayView<T>, int>>(nameof(SoftmaxKernel), typeof(T))));
        int warp = Accelerator.WarpSize;
        int cap = Math.Min(SoftmaxThreads, Accelerator.MaxNumThreadsPerGroup) / warp * warp;
        int threads = Math.Clamp((rowLength + warp - 1) / warp * warp, warp, Math.Max(warp, cap));
        kernel(runtime.Stream, new KernelConfig(rows, threads), View<T>(x), View<T>(y), rowLength);
    }

    static ArrayView<T> View<T>(DeviceTensor t) where T : unmanaged => LinearIlgpu.ViewOf<T>(t);

    /// <summary>
    /// The kernel <paramref name="name"/> closed over element type <paramref name="element"/> (and its codec, for the kernels
    /// that compute), as <typeparamref name="TDelegate"/>.
    /// </summary>
    internal static TDelegate Closed<TDelegate>(string name, Type element) where TDelegate : Delegate
    {
        var method = typeof(ElementwiseIlgpu).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)!;
        method = method.GetGenericArguments().Length == 1 ? method.MakeGenericMethod(element)
            : method.MakeGenericMethod(element, ElementCodecs.CodecFor(element));
        return (TDelegate)method.CreateDelegate(typeof(TDelegate));
    }

    static void AddKernel<T, TC>(Index1D i, ArrayView<T> x, ArrayView<T> y, ArrayView<T> z)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        z[i] = codec.Store(codec.Load(x[i]) + codec.Load(y[i]));
    }

    static void ScaleKernel<T, TC>(Index1D i, ArrayView<T> x, float factor, ArrayView<T> y)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        y[i] = codec.Store(codec.Load(x[i]) * factor);
    }

    // x [rows, 2 * intermediate] = [gate | up]; y [rows, intermediate]; thread i = (row, column).
    static void SiluAndMulKernel<T, TC>(Index1D i, ArrayView<T> x, ArrayView<T> y, int intermediate)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        long row = i / intermediate, column = i % intermediate;
        float gate = codec.Load(x[2 * row * intermediate + column]);
        float up = codec.Load(x[(2 * row + 1) * intermediate + column]);
        y[i] = codec.Store(gate / (1f + XMath.Exp(-gate)) * up);
    }

    // thread i = (row, column of the block); the element is copied as it is
    static void CopyColumnsKernel<T>(Index1D i, ArrayView<T> x, ArrayView<T> y, CopyShape s) where T : unmanaged
    {
        long row = i / s.Width, column = i % s.Width;
        y[row * s.YColumns + s.YOffset + column] = x[row * s.XColumns + s.XOffset + column];
    }

    // One group per row: the row's maximum, then the sum of exp(x - max), then exp(x - max) / sum. Each thread
    // rewrites only the elements it read, so y may be exactly x.
    static void SoftmaxKernel<T, TC>(ArrayView<T> x, ArrayView<T> y, int rowLength)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        long start = (long)Grid.IdxX * rowLength;
        float max = float.NegativeInfinity;
        for (int c = Group.IdxX; c < rowLength; c += Group.DimX)
            max = XMath.Max(max, codec.Load(x[start + c]));
        max = BlockReduce.Max(max);
        float sum = 0f;
        for (int c = Group.IdxX; c < rowLength; c += Group.DimX)
            sum += XMath.Exp(codec.Load(x[start + c]) - max);
        sum = BlockReduce.Sum(sum);
        for (int c = Group.IdxX; c < rowLength; c += Group.DimX)
            y[start + c] = codec.Store(XMath.Exp(codec.Load(x[start + c]) - max) / sum);
    }
}
