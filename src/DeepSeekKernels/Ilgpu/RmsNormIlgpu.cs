using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// RMSNorm (and the fused residual add) as ILGPU kernels, one group per row. Semantics exactly those of
/// <see cref="Reference.RmsNormReference"/>.
/// <list type="bullet">
/// <item><c>VectorKernel</c>, the fast path (f32/bf16 rows of whole 16-byte vectors, 16-byte-aligned views,
/// at most 4 vectors per thread): each thread loads its up to 4 vectors of x (and residual) with 16-byte
/// accesses into registers before using any, writes r, and after the group-wide sum scales the registers
/// and stores y; x is read from memory once, as in the hand-CUDA kernel. Compiled twice: for one vector per
/// thread (few rows; there the weights are loaded with x, ahead of the reduction) and for up to four.</item>
/// <item><c>ScalarKernel</c>, any shape and alignment: each thread strides over the row element by element,
/// then a second pass re-reads what it read (normally from L2) to scale and store.</item>
/// </list>
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

    /// <summary>Vectors of 16 bytes each thread of the fast path holds in registers.</summary>
    const int VectorsPerThread = 4;

    /// <summary>Below this many rows, spread a row over more threads (1 vector each where it fits): lower latency.</summary>
    const int FewRows = 256;

    readonly ConcurrentDictionary<(Type, Type), Delegate> _scalarKernels = new();
    readonly ConcurrentDictionary<(Type, Type, bool OneVector), Delegate> _vectorKernels = new();

    /// <summary>Enqueues the op on the runtime's stream. residual/r are default for the plain op.</summary>
    public void Run<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y, DeviceView<T> r,
        int rows, int cols, float eps)
        where T : unmanaged where TW : unmanaged
    {
        bool fused = !residual.IsNull;
        var shape = new Shape
        {
            Cols = cols, XStride = cols, ResidualStride = cols, YStride = cols, RStride = cols, Eps = eps, Fused = fused ? 1 : 0,
        };
        var accelerator = runtime.Accelerator;
        int warp = accelerator.WarpSize;
        int maxThreads = Math.Min(1024, accelerator.MaxNumThreadsPerGroup);
        runtime.Bind();

        if (VectorLaunch<T, TW>(x, residual, w, y, r, rows, cols, warp, maxThreads) is var (vectorThreads, oneVector))
        {
            var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<Vec16>, ArrayView<Vec16>, ArrayView<ulong>, ArrayView<Vec16>, ArrayView<Vec16>, Shape>)
                _vectorKernels.GetOrAdd((typeof(T), typeof(TW), oneVector), key => LoadVector<T, TW>(key.OneVector));
            kernel(runtime.Stream, new KernelConfig(rows, vectorThreads),
                AsVectors(x), AsVectors(fused ? residual : x), w.IlgpuView.AsContiguous().Cast<ulong>(), AsVectors(y), AsVectors(fused ? r : y), shape);
            return;
        }

        var scalar = (Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<TW>, ArrayView<T>, ArrayView<T>, Shape>)
            _scalarKernels.GetOrAdd((typeof(T), typeof(TW)), _ => LoadScalar<T, TW>());
        // About 8 elements per thread, at least one warp, at most 256 threads (or what the device allows).
        int threads = Math.Clamp((cols / 8 + warp - 1) / warp * warp, warp, Math.Min(256, maxThreads));
        scalar(runtime.Stream, new KernelConfig(rows, threads),
            x.IlgpuView, fused ? residual.IlgpuView : x.IlgpuView, w.IlgpuView, y.IlgpuView, fused ? r.IlgpuView : y.IlgpuView, shape);
    }

    /// <summary>
    /// The group size of the fast path and whether each thread holds one vector, or null where the path does
    /// not apply: f32/bf16 activations, rows of whole 16-byte vectors, every view 16-byte aligned (the weight
    /// 8-byte aligned), and the row held in registers at <see cref="VectorsPerThread"/> vectors per thread.
    /// With few rows, more threads and fewer vectors each.
    /// </summary>
    static (int Threads, bool OneVector)? VectorLaunch<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, int warp, int maxThreads)
        where T : unmanaged where TW : unmanaged
    {
        if (VectorCodecs.ActivationFor(typeof(T)) is null || VectorCodecs.WeightFor(typeof(T), typeof(TW)) is null)
            return null;
        int lanes = 16 / System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (cols % lanes != 0 || w.Pointer % 8 != 0)
            return null;
        foreach (var view in new[] { x, residual, y, r })
            if (!view.IsNull && view.Pointer % 16 != 0)
                return null;
        int vectors = cols / lanes;
        int fewest = (vectors + VectorsPerThread - 1) / VectorsPerThread;
        int threads = RoundUp(rows < FewRows ? vectors : fewest, warp);
        threads = Math.Max(RoundUp(fewest, warp), Math.Min(threads, maxThreads));
        return threads <= maxThreads ? (threads, threads >= vectors) : null;
    }

    static int RoundUp(int n, int multiple) => Math.Max(multiple, (n + multiple - 1) / multiple * multiple);

    static ArrayView<Vec16> AsVectors<T>(DeviceView<T> view) where T : unmanaged =>
        view.IlgpuView.AsContiguous().Cast<Vec16>();

    Delegate LoadVector<T, TW>(bool oneVector) where T : unmanaged where TW : unmanaged
    {
        var method = typeof(RmsNormIlgpu).GetMethod(nameof(VectorKernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(VectorCodecs.ActivationFor(typeof(T))!, VectorCodecs.WeightFor(typeof(T), typeof(TW))!,
                oneVector ? typeof(OneVectorPerThread) : typeof(FourVectorsPerThread));
        var action = (Action<ArrayView<Vec16>, ArrayView<Vec16>, ArrayView<ulong>, ArrayView<Vec16>, ArrayView<Vec16>, Shape>)
            method.CreateDelegate(typeof(Action<ArrayView<Vec16>, ArrayView<Vec16>, ArrayView<ulong>, ArrayView<Vec16>, ArrayView<Vec16>, Shape>));
        return runtime.Accelerator.LoadKernel(action);
    }

    Delegate LoadScalar<T, TW>() where T : unmanaged where TW : unmanaged
    {
        var method = typeof(RmsNormIlgpu).GetMethod(nameof(ScalarKernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(T), ElementCodecs.CodecFor(typeof(T)), typeof(TW), ElementCodecs.CodecFor(typeof(TW)));
        var action = (Action<ArrayView<T>, ArrayView<T>, ArrayView<TW>, ArrayView<T>, ArrayView<T>, Shape>)
            method.CreateDelegate(typeof(Action<ArrayView<T>, ArrayView<T>, ArrayView<TW>, ArrayView<T>, ArrayView<T>, Shape>));
        return runtime.Accelerator.LoadKernel(action);
    }

    // [rows, cols / lanes] vectors per view, rows dense (Run passes strides equal to cols; the vector path
    // ignores Shape's strides); w: [cols] weights as 8-byte words. One group per row; each
    // thread owns vectors t, t + D, t + 2D, t + 3D of its row (D = group size, so a warp's accesses are
    // contiguous), or only t when TV is one vector per thread. Every load of the row is issued before any
    // store: r and y may alias x or residual element for element, and each thread only rewrites what it read.
    static void VectorKernel<TA, TW, TV>(ArrayView<Vec16> x, ArrayView<Vec16> residual, ArrayView<ulong> w, ArrayView<Vec16> y,
        ArrayView<Vec16> r, Shape s)
        where TA : struct, IActivationVector where TW : struct, IWeightVector where TV : struct, IVectorsPerThread
    {
        TA a = default;
        TW weights = default;
        int count = default(TV).Count;
        x = x.AsAligned(16);
        residual = residual.AsAligned(16);
        y = y.AsAligned(16);
        r = r.AsAligned(16);
        int n = s.Cols / a.Lanes;
        int d = Group.DimX;
        int j0 = Group.IdxX, j1 = j0 + d, j2 = j1 + d, j3 = j2 + d;
        long row = (long)Grid.IdxX * n;
        bool h0 = j0 < n, h1 = count > 1 && j1 < n, h2 = count > 2 && j2 < n, h3 = count > 3 && j3 < n;

        Vec16 v0 = default, v1 = default, v2 = default, v3 = default;
        Vec16 q0 = default, q1 = default, q2 = default, q3 = default;
        Lanes8 early = default;
        if (count == 1)
        {
            // One vector per thread (few rows, as in decode): the kernel is a chain of latencies, so x, the
            // residual and the weights are loaded in one block, with nothing between them that waits for a
            // load. Branching on Fused here put register moves of the residual, and the widening of the
            // weights, between the loads, and each waited a full DRAM latency (measured on an H100 at one
            // row: fused 0.6-0.8 us slower than plain, against 0.24 us for the hand kernel). Run passes x as
            // the residual when not fused, so the plain kernel reads x twice, the same lines in flight.
            if (h0)
            {
                v0 = x[row + j0];
                q0 = residual[row + j0];
                early = weights.Load(w, j0);
            }
        }
        else
        {
            if (h0) v0 = x[row + j0];
            if (h1) v1 = x[row + j1];
            if (h2) v2 = x[row + j2];
            if (h3) v3 = x[row + j3];
            if (s.Fused != 0)
            {
                if (h0) q0 = residual[row + j0];
                if (h1) q1 = residual[row + j1];
                if (h2) q2 = residual[row + j2];
                if (h3) q3 = residual[row + j3];
            }
        }
        if (s.Fused != 0)
        {
            // r = round(x + residual); the norm is taken over the rounded r. Work only on vectors in the row:
            // at one row most threads hold one, and the rest would be latency on the critical path.
            if (h0) { v0 = a.Pack(a.Add(a.Unpack(v0), a.Unpack(q0))); r[row + j0] = v0; }
            if (h1) { v1 = a.Pack(a.Add(a.Unpack(v1), a.Unpack(q1))); r[row + j1] = v1; }
            if (h2) { v2 = a.Pack(a.Add(a.Unpack(v2), a.Unpack(q2))); r[row + j2] = v2; }
            if (h3) { v3 = a.Pack(a.Add(a.Unpack(v3), a.Unpack(q3))); r[row + j3] = v3; }
        }

        float sum = 0f;
        if (h0) sum += a.SumOfSquares(a.Unpack(v0));
        if (h1) sum += a.SumOfSquares(a.Unpack(v1));
        if (h2) sum += a.SumOfSquares(a.Unpack(v2));
        if (h3) sum += a.SumOfSquares(a.Unpack(v3));
        float invRms = DeviceMath.Rsqrt(BlockReduce.Sum(sum) / s.Cols + s.Eps);

        if (h0) y[row + j0] = a.Pack(a.Scale(a.Unpack(v0), invRms, count == 1 ? early : weights.Load(w, j0)));
        if (h1) y[row + j1] = a.Pack(a.Scale(a.Unpack(v1), invRms, weights.Load(w, j1)));
        if (h2) y[row + j2] = a.Pack(a.Scale(a.Unpack(v2), invRms, weights.Load(w, j2)));
        if (h3) y[row + j3] = a.Pack(a.Scale(a.Unpack(v3), invRms, weights.Load(w, j3)));
    }

    // [rows, cols] per view; one group per row.
    static void ScalarKernel<T, TC, TW, TWC>(ArrayView<T> x, ArrayView<T> residual, ArrayView<TW> w, ArrayView<T> y, ArrayView<T> r, Shape s)
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
        float invRms = DeviceMath.Rsqrt(BlockReduce.Sum(sum) / s.Cols + s.Eps);

        // Pass 2: y = (v * inv_rms) * w, reading back what pass 1 read (r when fused), by the same thread.
        for (int c = Group.IdxX; c < s.Cols; c += Group.DimX)
        {
            float v = s.Fused != 0 ? codec.Load(r[rRow + c]) : codec.Load(x[xRow + c]);
            y[yRow + c] = codec.Store(v * invRms * weightCodec.Load(w[c]));
        }
    }
}
