using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// KvAppend as an ILGPU kernel, semantics those of the reference (<see cref="Reference.PagedKvReference.WriteRow"/>):
/// <c>pages[slot, :] = rows[t, :]</c> with slot = slotMapping[t], each element widened exactly to fp32 and rounded once to
/// the pages' dtype (bf16: to nearest even, the reference's rounding), so pages hold bit for bit what the reference writes.
/// One group per token, its threads striding over the row; rows may be strided, pages are contiguous [slots, width]. Keys
/// and values go in two launches (their dtypes may differ). Slots are device data, checked here: a token whose slot is
/// outside the pool is skipped, and warp 0 of group 0 of the first launch scans the slots in order and records the first bad
/// one in the error word, as the reference reports it.
/// </summary>
internal sealed class KvAppendIlgpu(DeviceRuntime runtime)
{
    const int Threads = 256;

    /// <summary>Shape of one launch; sizes and strides in elements.</summary>
    internal struct Shape
    {
        public int Tokens, Width, Slots, Report, Site;
        public long RowStride;
    }

    readonly ConcurrentDictionary<(Type Rows, Type Pages), Delegate> _kernels = new();

    public void Run(DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages, DeviceTensor valuePages)
    {
        Append(keys, slotMapping, keyPages, report: true);
        if (!values.IsNull)
            Append(values, slotMapping, valuePages, report: false);
    }

    void Append(DeviceTensor rows, DeviceView<int> slots, DeviceTensor pages, bool report)
    {
        var shape = new Shape
        {
            Tokens = (int)rows.Dim(0), Width = (int)rows.Dim(1), Slots = (int)(pages.Dim(0) * pages.Dim(1)), Report = report ? 1 : 0,
            Site = DeviceErrorSite.KvAppendSlots.Id, RowStride = rows.Stride(0),
        };
        switch ((rows.ElementType, pages.ElementType))
        {
            case (ElementType.F32, ElementType.F32): Launch<float, float>(rows, slots, pages, shape); break;
            case (ElementType.F32, ElementType.BF16): Launch<float, BFloat16>(rows, slots, pages, shape); break;
            case (ElementType.BF16, ElementType.F32): Launch<BFloat16, float>(rows, slots, pages, shape); break;
            default: Launch<BFloat16, BFloat16>(rows, slots, pages, shape); break;
        }
    }

    void Launch<TR, TP>(DeviceTensor rows, DeviceView<int> slots, DeviceTensor pages, Shape s) where TR : unmanaged where TP : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TR>, ArrayView<int>, ArrayView<TP>, ArrayView<int>, Shape>)
            _kernels.GetOrAdd((typeof(TR), typeof(TP)), _ => Load<TR, TP>());
        int warp = accelerator.WarpSize;
        int cap = Math.Max(warp, Math.Min(Threads, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((s.Width + warp - 1) / warp * warp, warp, cap);
        kernel(runtime.Stream, new KernelConfig(s.Tokens, threads), LinearIlgpu.ViewOf<TR>(rows), slots.IlgpuView, LinearIlgpu.ViewOf<TP>(pages),
            runtime.Errors.Word.View.IlgpuView, s);
    }

    Delegate Load<TR, TP>() where TR : unmanaged where TP : unmanaged
    {
        var method = typeof(KvAppendIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TR), ElementCodecs.CodecFor(typeof(TR)), typeof(TP), ElementCodecs.CodecFor(typeof(TP)));
        var type = typeof(Action<ArrayView<TR>, ArrayView<int>, ArrayView<TP>, ArrayView<int>, Shape>);
        return runtime.Accelerator.LoadKernel((Action<ArrayView<TR>, ArrayView<int>, ArrayView<TP>, ArrayView<int>, Shape>)method.CreateDelegate(type));
    }

    // group t: row t of rows [tokens, width] (row stride RowStride) into row slots[t] of pages [slots, width]
    static void Kernel<TR, TRC, TP, TPC>(ArrayView<TR> rows, ArrayView<int> slots, ArrayView<TP> pages, ArrayView<int> errorWord, Shape s)
        where TR : unmanaged where TRC : struct, IElementCodec<TR>
        where TP : unmanaged where TPC : struct, IElementCodec<TP>
    {
        TRC rc = default;
        TPC pc = default;
        if (s.Report != 0 && Grid.IdxX == 0 && Warp.WarpIdx == 0)
        {
            int bad = DeviceIndexChecks.FirstOutOfRange(slots, 0, s.Tokens, s.Slots);
            if (bad >= 0)
                DeviceIndexChecks.Report(errorWord, s.Site, bad, slots[bad], s.Slots, outOfOrder: false);
        }
        int t = Grid.IdxX;
        int slot = slots[t];
        if ((uint)slot >= (uint)s.Slots)
            return;
        long source = t * s.RowStride, target = (long)slot * s.Width;
        for (int c = Group.IdxX; c < s.Width; c += Group.DimX)
            pages[target + c] = pc.Store(rc.Load(rows[source + c]));
    }
}
