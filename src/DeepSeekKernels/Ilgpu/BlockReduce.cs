using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Ilgpu;

/// <summary>Group-wide reductions for explicitly grouped kernels.</summary>
internal static class BlockReduce
{
    /// <summary>Most warps a group may have (1024 threads / 32 lanes on CUDA; the CPU accelerator's warps are smaller).</summary>
    public const int MaxWarps = 64;

    /// <summary>
    /// Sum of <paramref name="value"/> over the group; every thread gets the total. One call per kernel.
    /// Each warp sums its lanes with shuffles and leaves its partial in shared memory; after one barrier every
    /// warp reads all partials in parallel (one per lane) and sums them with a butterfly, so no thread walks
    /// the partials one by one (a 32-step chain of shared-memory loads at 1024 threads, measured as most of
    /// the kernel's time at one row on an H100) and no second barrier is needed.
    /// </summary>
    public static float Sum(float value) => Reduce<SumOf>(value);

    /// <summary>
    /// Maximum of <paramref name="value"/> over the group; every thread gets it. One call per kernel, as
    /// <see cref="Sum"/>; each reduction has its own shared memory, so the two may follow each other in one kernel.
    /// </summary>
    public static float Max(float value) => Reduce<MaxOf>(value);

    interface IReduction
    {
        float Identity { get; }
        float Combine(float a, float b);
    }

    readonly struct SumOf : IReduction
    {
        public float Identity => 0f;
        public float Combine(float a, float b) => a + b;
    }

    readonly struct MaxOf : IReduction
    {
        public float Identity => float.NegativeInfinity;
        public float Combine(float a, float b) => XMath.Max(a, b);
    }

    // One specialisation, and so one shared-memory array, per reduction. On CUDA the warp is 32 lanes, so the
    // warp index and warp count are shifts and the butterflies are unrolled: ILGPU lowers Warp.WarpIdx and a
    // division by Warp.WarpSize to integer divisions (a reciprocal sequence in SASS) and leaves the shuffle
    // loop a loop, and at one row every instruction here is on the kernel's critical path.
    static float Reduce<TOp>(float value) where TOp : struct, IReduction
    {
        TOp op = default;
        var partials = SharedMemory.Allocate<float>(MaxWarps);
        bool cuda = CudaAsm.IsSupported;
        value = WarpReduce(op, value);
        if (Warp.IsFirstLane)
            partials[cuda ? Group.IdxX >> 5 : Warp.WarpIdx] = value;
        Group.Barrier();
        if (cuda) // at most 1024 threads: at most 32 partials, one per lane
            return WarpReduce(op, Warp.LaneIdx < (Group.DimX + 31) >> 5 ? partials[Warp.LaneIdx] : op.Identity);
        int warps = (Group.DimX + Warp.WarpSize - 1) / Warp.WarpSize;
        float total = op.Identity;
        for (int i = Warp.LaneIdx; i < warps; i += Warp.WarpSize)
            total = op.Combine(total, partials[i]);
        return WarpReduce(op, total);
    }

    /// <summary>The reduction over the warp's lanes, in every lane (butterfly exchange).</summary>
    static float WarpReduce<TOp>(TOp op, float value) where TOp : struct, IReduction
    {
        if (CudaAsm.IsSupported)
        {
            value = op.Combine(value, Warp.ShuffleXor(value, 16));
            value = op.Combine(value, Warp.ShuffleXor(value, 8));
            value = op.Combine(value, Warp.ShuffleXor(value, 4));
            value = op.Combine(value, Warp.ShuffleXor(value, 2));
            return op.Combine(value, Warp.ShuffleXor(value, 1));
        }
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            value = op.Combine(value, Warp.ShuffleXor(value, mask));
        return value;
    }
}
