using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// Rope in place as an ILGPU kernel, semantics those of <see cref="Reference.RopeReference.Rope"/>: x [tokens, heads,
/// headStride] f32 or bf16, the rotary part [ropeOffset, ropeOffset + rotaryDim) of each head, HalfSplit pairs (v[i],
/// v[i + half]) or Interleaved pairs (v[2i], v[2i + 1]); a pair (a, b) at angle index i becomes (a c - b s, b c + a s) in
/// fp32 with c, s from the table row of the token's position, rounded once to x's dtype. One group per token, its threads
/// striding over the token's heads * half pairs (each pair read and written by one thread). Positions are device data,
/// checked here: a token whose position is outside [0, maxPositions) is skipped, and warp 0 of group 0 scans the positions in
/// order and records the first bad one (its token index) in the error word, as the reference reports it.
/// </summary>
internal sealed class RopeIlgpu(DeviceRuntime runtime)
{
    const int Threads = 256;

    /// <summary>Shape of one launch; sizes in elements.</summary>
    internal struct Shape
    {
        public int Tokens, Heads, HeadStride, RopeOffset, Half, MaxPositions, Interleaved, Site;
    }

    readonly ConcurrentDictionary<Type, Delegate> _kernels = new();

    public void Run(DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads, int headStride, int ropeOffset,
        RopeLayout layout)
    {
        var shape = new Shape
        {
            Tokens = tokens, Heads = heads, HeadStride = headStride, RopeOffset = ropeOffset, Half = table.RotaryDim / 2,
            MaxPositions = table.MaxPositions, Interleaved = layout == RopeLayout.Interleaved ? 1 : 0, Site = DeviceErrorSite.RopePositions.Id,
        };
        if (x.ElementType == ElementType.BF16)
            Launch<BFloat16>(x, positions, table, shape);
        else
            Launch<float>(x, positions, table, shape);
    }

    void Launch<T>(DeviceTensor x, DeviceView<int> positions, RopeTable table, Shape s) where T : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)
            _kernels.GetOrAdd(typeof(T), _ => Load<T>());
        int warp = accelerator.WarpSize;
        int cap = Math.Max(warp, Math.Min(Threads, accelerator.MaxNumThreadsPerGroup) / warp * warp);
        int pairs = s.Heads * s.Half;
        int threads = Math.Clamp((pairs + warp - 1) / warp * warp, warp, cap);
        kernel(runtime.Stream, new KernelConfig(s.Tokens, threads), LinearIlgpu.ViewOf<T>(x), positions.IlgpuView, table.Cos.IlgpuView,
            table.Sin.IlgpuView, runtime.Errors.Word.View.IlgpuView, s);
    }

    Delegate Load<T>() where T : unmanaged
    {
        var method = typeof(RopeIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(T), ElementCodecs.CodecFor(typeof(T)));
        var type = typeof(Action<ArrayView<T>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>);
        return runtime.Accelerator.LoadKernel((Action<ArrayView<T>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, Shape>)
            method.CreateDelegate(type));
    }

    // group t: every rotary pair of token t; cos/sin [maxPositions, half]
    static void Kernel<T, TC>(ArrayView<T> x, ArrayView<int> positions, ArrayView<float> cos, ArrayView<float> sin, ArrayView<int> errorWord,
        Shape s)
        where T : unmanaged where TC : struct, IElementCodec<T>
    {
        TC codec = default;
        if (Grid.IdxX == 0 && Warp.WarpIdx == 0)
        {
            int bad = DeviceIndexChecks.FirstOutOfRange(positions, 0, s.Tokens, s.MaxPositions);
            if (bad >= 0)
                DeviceIndexChecks.Report(errorWord, s.Site, bad, positions[bad], s.MaxPositions, outOfOrder: false);
        }
        int t = Grid.IdxX;
        int position = positions[t];
        if ((uint)position >= (uint)s.MaxPositions)
            return;
        long row = (long)position * s.Half;
        for (int k = Group.IdxX; k < s.Heads * s.Half; k += Group.DimX)
        {
            int h = k / s.Half, i = k - h * s.Half;
            long head = ((long)t * s.Heads + h) * s.HeadStride + s.RopeOffset;
            long ia = head + (s.Interleaved != 0 ? 2 * i : i);
            long ib = head + (s.Interleaved != 0 ? 2 * i + 1 : i + s.Half);
            float c = cos[row + i], sn = sin[row + i];
            float a = codec.Load(x[ia]), b = codec.Load(x[ib]);
            x[ia] = codec.Store(a * c - b * sn);
            x[ib] = codec.Store(b * c + a * sn);
        }
    }
}
