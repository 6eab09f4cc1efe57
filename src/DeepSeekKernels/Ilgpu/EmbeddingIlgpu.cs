using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// Embedding as an ILGPU kernel: y[i, :] = table[ids[i], :] for a dense f32/bf16 or INT4 table, each element dequantised as
/// <see cref="WeightMatrix"/> says (<see cref="IWeightDecoder{TW}"/>), widened exactly and rounded once to y's dtype. One group
/// per id, its threads striding over the row. The ids are device data, checked here: a group whose id is outside
/// [0, vocab) writes nothing, and warp 0 of group 0 scans the ids in order and records the first bad one in the runtime's
/// error word (<see cref="DeviceErrors"/>: compare-and-swap of word[0] from 0 to the site, then word[1] = its index,
/// word[2] = the id, word[3] = vocab), so the reported id is the first in order, as the reference reports it, and the
/// runtime throws <see cref="DeviceIndexException"/> at the next synchronisation.
/// </summary>
internal sealed class EmbeddingIlgpu(DeviceRuntime runtime)
{
    /// <summary>Threads per group (fewer for narrow rows, or where the device allows fewer).</summary>
    const int Threads = 256;

    /// <summary>Shape of one launch.</summary>
    internal struct Shape
    {
        public int Ids, Site;
        public WeightShape W;
    }

    readonly ConcurrentDictionary<(Type Y, Type W), Delegate> _kernels = new();
    readonly Lazy<MemoryBuffer1D<float, Stride1D.Dense>> _noScales = new(() => runtime.Accelerator.Allocate1D<float>(1));
    readonly Lazy<MemoryBuffer1D<BFloat16, Stride1D.Dense>> _noGroups = new(() => runtime.Accelerator.Allocate1D<BFloat16>(1));

    /// <summary>y [ids.Length * table.Cols] (contiguous, f32 or bf16) = the rows of the table the ids name.</summary>
    public void Run(DeviceView<int> ids, WeightMatrix table, DeviceTensor y)
    {
        if (y.ElementType == ElementType.BF16)
            Run<BFloat16>(ids, table, y);
        else
            Run<float>(ids, table, y);
    }

    void Run<TY>(DeviceView<int> ids, WeightMatrix table, DeviceTensor y) where TY : unmanaged
    {
        switch (table.ElementType)
        {
            case ElementType.F32: Launch<TY, float>(ids, table, table.F32, y); break;
            case ElementType.BF16: Launch<TY, BFloat16>(ids, table, table.BF16, y); break;
            case ElementType.Int4: Launch<TY, Int4x2>(ids, table, table.Int4Data, y); break;
            default: throw new NotSupportedException($"Embedding: a table stored as {table.ElementType.Name()} has no row-wise lookup; the table is dense or INT4.");
        }
    }

    void Launch<TY, TW>(DeviceView<int> ids, WeightMatrix table, DeviceView<TW> data, DeviceTensor y) where TY : unmanaged where TW : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<TY>, ArrayView<TW>, ArrayView<float>, ArrayView<BFloat16>,
            ArrayView<BFloat16>, ArrayView<int>, Shape>)_kernels.GetOrAdd((typeof(TY), typeof(TW)), _ => Load<TY, TW>(table));
        int warp = accelerator.WarpSize;
        int cap = Math.Max(warp, Math.Min(Threads, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((table.Cols + warp - 1) / warp * warp, warp, cap);
        bool int4 = table.ElementType == ElementType.Int4;
        var shape = new Shape { Ids = (int)ids.Length, Site = DeviceErrorSite.EmbeddingIds.Id, W = WeightShape.Of(table) };
        kernel(runtime.Stream, new KernelConfig((int)ids.Length, threads), ids.IlgpuView, LinearIlgpu.ViewOf<TY>(y), data.IlgpuView,
            _noScales.Value.View, int4 ? table.Int4Scales.IlgpuView : _noGroups.Value.View, int4 ? table.Int4Zeros.IlgpuView : _noGroups.Value.View,
            runtime.Errors.Word.View.IlgpuView, shape);
    }

    Delegate Load<TY, TW>(WeightMatrix table) where TY : unmanaged where TW : unmanaged
    {
        var (element, decoder) = WeightDecoders.For(table);
        var method = typeof(EmbeddingIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TY), ElementCodecs.CodecFor(typeof(TY)), element, decoder);
        var type = typeof(Action<ArrayView<int>, ArrayView<TY>, ArrayView<TW>, ArrayView<float>, ArrayView<BFloat16>, ArrayView<BFloat16>,
            ArrayView<int>, Shape>);
        var action = (Action<ArrayView<int>, ArrayView<TY>, ArrayView<TW>, ArrayView<float>, ArrayView<BFloat16>, ArrayView<BFloat16>,
            ArrayView<int>, Shape>)method.CreateDelegate(type);
        return runtime.Accelerator.LoadKernel(action);
    }

    // group i: row i of y from row ids[i] of the table
    static void Kernel<TY, TYC, TW, TD>(ArrayView<int> ids, ArrayView<TY> y, ArrayView<TW> data, ArrayView<float> fp8Scales,
        ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, ArrayView<int> errorWord, Shape s)
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
        where TW : unmanaged where TD : struct, IWeightDecoder<TW>
    {
        TD decoder = default;
        TYC yc = default;
        int vocab = s.W.Rows, cols = s.W.Cols;
        if (Grid.IdxX == 0 && Warp.WarpIdx == 0)
        {
            // one warp: the first id outside [0, vocab), in index order, recorded in the error word (if none is yet)
            int bad = DeviceIndexChecks.FirstOutOfRange(ids, 0, s.Ids, vocab);
            if (bad >= 0)
                DeviceIndexChecks.Report(errorWord, s.Site, bad, ids[bad], vocab, outOfOrder: false);
        }
        long i = Grid.IdxX;
        int id = ids[i];
        if ((uint)id >= (uint)vocab)
            return;
        for (int c = Group.IdxX; c < cols; c += Group.DimX)
            y[i * cols + c] = yc.Store(decoder.Element(data, fp8Scales, scales, zeros, s.W, 0, id, c));
    }
}
