using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// MoeCombine as an ILGPU kernel (the algorithm of the hand-CUDA <c>kernels/moe_combine.cu</c>): a group per token, its
/// threads over the hidden features; each feature sums w[t, k] * expertOutput[slotRows[t * topK + k], i] in fp32 in k order,
/// then y = round(accumulate ? y + sum : sum), one rounding. slotRows is device data, checked here: a token with a row outside
/// [0, slots) is left as it was, and warp 0 of group 0 reports the lowest bad index to the error word.
/// </summary>
internal sealed class MoeCombineIlgpu(DeviceRuntime runtime)
{
    const int Threads = 256;

    /// <summary>Shape of one launch.</summary>
    internal struct Shape
    {
        public int Tokens, TopK, Hidden, Slots, Accumulate, Site;
    }

    readonly ConcurrentDictionary<(Type E, Type Y), Delegate> _kernels = new();

    public void Run(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights, DeviceTensor y, int tokens, int topK, int hidden,
        bool accumulate)
    {
        var s = new Shape
        {
            Tokens = tokens, TopK = topK, Hidden = hidden, Slots = tokens * topK, Accumulate = accumulate ? 1 : 0, Site = DeviceErrorSite.MoeCombineRows.Id,
        };
        switch ((expertOutput.ElementType, y.ElementType))
        {
            case (ElementType.F32, ElementType.F32): Launch<float, float>(expertOutput, slotRows, weights, y, s); break;
            case (ElementType.F32, ElementType.BF16): Launch<float, BFloat16>(expertOutput, slotRows, weights, y, s); break;
            case (ElementType.BF16, ElementType.F32): Launch<BFloat16, float>(expertOutput, slotRows, weights, y, s); break;
            default: Launch<BFloat16, BFloat16>(expertOutput, slotRows, weights, y, s); break;
        }
    }

    void Launch<TE, TY>(DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights, DeviceTensor y, Shape s)
        where TE : unmanaged where TY : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TE>, ArrayView<int>, ArrayView<float>, ArrayView<TY>, ArrayView<int>, Shape>)
            _kernels.GetOrAdd((typeof(TE), typeof(TY)), _ =>
            {
                var method = typeof(MoeCombineIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
                    .MakeGenericMethod(typeof(TE), ElementCodecs.CodecFor(typeof(TE)), typeof(TY), ElementCodecs.CodecFor(typeof(TY)));
                var type = typeof(Action<ArrayView<TE>, ArrayView<int>, ArrayView<float>, ArrayView<TY>, ArrayView<int>, Shape>);
                return accelerator.LoadKernel((Action<ArrayView<TE>, ArrayView<int>, ArrayView<float>, ArrayView<TY>, ArrayView<int>, Shape>)
                    method.CreateDelegate(type));
            });
        int warp = accelerator.WarpSize;
        int cap = Math.Max(warp, Math.Min(Threads, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int threads = Math.Clamp((s.Hidden + warp - 1) / warp * warp, warp, cap);
        kernel(runtime.Stream, new KernelConfig(s.Tokens, threads), LinearIlgpu.ViewOf<TE>(expertOutput), slotRows.IlgpuView, weights.IlgpuView,
            LinearIlgpu.ViewOf<TY>(y), runtime.Errors.Word.View.IlgpuView, s);
    }

    // group t: y[t, :] from token t's topK expert rows
    static void Kernel<TE, TEC, TY, TYC>(ArrayView<TE> expertOutput, ArrayView<int> slotRows, ArrayView<float> weights, ArrayView<TY> y,
        ArrayView<int> errorWord, Shape s)
        where TE : unmanaged where TEC : struct, IElementCodec<TE>
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
    {
        TEC ec = default;
        TYC yc = default;
        if (Grid.IdxX == 0 && Warp.WarpIdx == 0)
        {
            int bad = DeviceIndexChecks.FirstOutOfRange(slotRows, 0, s.Slots, s.Slots);
            if (bad >= 0)
                DeviceIndexChecks.Report(errorWord, s.Site, bad, slotRows[bad], s.Slots, outOfOrder: false);
        }
        long t = Grid.IdxX;
        long first = t * s.TopK;
        for (int k = 0; k < s.TopK; k++)
        {
            if ((uint)slotRows[first + k] >= (uint)s.Slots)
                return; // the whole group: every thread reads the same rows
        }
        long at = t * s.Hidden;
        for (int i = Group.IdxX; i < s.Hidden; i += Group.DimX)
        {
            float sum = 0f;
            for (int k = 0; k < s.TopK; k++)
                sum += weights[first + k] * ec.Load(expertOutput[(long)slotRows[first + k] * s.Hidden + i]);
            y[at + i] = yc.Store(s.Accumulate != 0 ? yc.Load(y[at + i]) + sum : sum);
        }
    }
}
