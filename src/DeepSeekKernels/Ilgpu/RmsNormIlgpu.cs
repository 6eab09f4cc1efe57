using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// RMSNorm (and the fused residual add) as an ILGPU kernel: one group per row, each thread strides over the
/// row, a group-wide fp32 sum, then a second pass that scales and stores (the second read of the row
/// normally hits L2). Semantics exactly those of <see cref="Reference.RmsNormReference"/>.
/// </summary>
internal sealed class RmsNormIlgpu(DeviceRuntime runtime)
{
    /// <summary>Shape and scalars of one launch; strides in elements.</summary>
    internal struct Shape
    {
        public int Cols;
        public long XStride, ResidualStride, YStride, RStride;
        public float Eps;
        public int Fused;
    }

    readonly ConcurrentDictionary<(Type, Type), Delegate> _kernels = new();

    /// <summary>Enqueues the op on the runtime's stream. residual/r are default for the plain op.</summary>
    public void Run<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y, DeviceView<T> r,
        int rows, int cols, float eps)
        where T : unmanaged where TW : unmanaged
    {
        bool fused = !residual.IsNull;
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<TW>, ArrayView<T>, ArrayView<T>, Shape>)
            _kernels.GetOrAdd((typeof(T), typeof(TW)), _ => Load<T, TW>());
        var shape = new Shape
        {
            Cols = cols, XStride = cols, ResidualStride = cols, YStride = cols, RStride = cols, Eps = eps, Fused = fused ? 1 : 0,
        };
        var accelerator = runtime.Accelerator;
        int warp = accelerator.WarpSize;
        // About 8 elements per thread, at least one warp, at most 256 threads (or what the device allows).
        int threads = Math.Clamp((cols / 8 + warp - 1) / warp * warp, warp, Math.Min(256, accelerator.MaxNumThreadsPerGroup));
        runtime.Bind();
        kernel(runtime.Stream, new KernelConfig(rows, threads),
            x.IlgpuView, fused ? residual.IlgpuView : x.IlgpuView, w.IlgpuView, y.IlgpuView, fused ? r.IlgpuView : y.IlgpuView, shape);
    }

    Delegate Load<T, TW>() where T : unmanaged where TW : unmanaged
    {
        var method = typeof(RmsNormIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(T), ElementCodecs.CodecFor(typeof(T)), typeof(TW), ElementCodecs.CodecFor(typeof(TW)));
        var action = (Action<ArrayView<T>, ArrayView<T>, ArrayView<TW>, ArrayView<T>, ArrayView<T>, Shape>)
            method.CreateDelegate(typeof(Action<ArrayView<T>, ArrayView<T>, ArrayView<TW>, ArrayView<T>, ArrayView<T>, Shape>));
        return runtime.Accelerator.LoadKernel(action);
    }

    // [rows, cols] per view; one group per row.
    static void Kernel<T, TC, TW, TWC>(ArrayView<T> x, ArrayView<T> residual, ArrayView<TW> w, ArrayView<T> y, ArrayView<T> r, Shape s)
        where T : unmanaged where TC : struct, IElementCodec<T>
        where TW : unmanaged where TWC : struct, IElementCodec<TW>
    {
        TC codec = default;
        TWC weightCodec = default;
        long row = Grid.IdxX;
        long xRow = row * s.XStride, resRow = row * s.ResidualStride, yRow = row * s.YStride, rRow = row * s.RStride;

        // Pass 1: sum of squares (of the rounded x + residual when fused; r is written here).
        float sum = 0f;
        for (int c = Group.IdxX; c < s.Cols; c += Group.DimX)
        {
            float v = codec.Load(x[xRow + c]);
            if (s.Fused != 0)
            {
                T rounded = codec.Store(v + codec.Load(residual[resRow + c]));
                r[rRow + c] = rounded;
                v = codec.Load(rounded);
            }
            sum += v * v;
        }
        float invRms = XMath.Rsqrt(BlockReduce.Sum(sum) / s.Cols + s.Eps);

        // Pass 2: y = (v * inv_rms) * w, reading back what pass 1 read (r when fused), by the same thread.
        for (int c = Group.IdxX; c < s.Cols; c += Group.DimX)
        {
            float v = s.Fused != 0 ? codec.Load(r[rRow + c]) : codec.Load(x[xRow + c]);
            y[yRow + c] = codec.Store(v * invRms * weightCodec.Load(w[c]));
        }
    }
}
