using ILGPU;

namespace DeepSeekKernels.Ilgpu;

/// <summary>Group-wide reductions for explicitly grouped kernels.</summary>
internal static class BlockReduce
{
    /// <summary>Most warps a group may have (1024 threads / 32 lanes on CUDA; the CPU accelerator's warps are smaller).</summary>
    public const int MaxWarps = 64;

    /// <summary>Sum of <paramref name="value"/> over the group; every thread gets the total. One call per kernel.</summary>
    public static float Sum(float value)
    {
        var partials = SharedMemory.Allocate<float>(MaxWarps);
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            value += Warp.ShuffleDown(value, offset);
        if (Warp.IsFirstLane)
            partials[Warp.WarpIdx] = value;
        Group.Barrier();
        int warps = (Group.DimX + Warp.WarpSize - 1) / Warp.WarpSize;
        float total = 0f;
        for (int i = 0; i < warps; i++)
            total += partials[i];
        return total;
    }
}
