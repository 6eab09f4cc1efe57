using ILGPU;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// Reductions over one warp's lanes by butterfly shuffles, every lane getting the result. Unlike <see cref="BlockReduce"/>
/// they use no shared memory, so a kernel may call them any number of times, inside loops (the attention kernels do, once
/// per key). Every lane of the warp must make the call. On CUDA the warp is 32 lanes and the butterfly is unrolled.
/// </summary>
internal static class WarpReduce
{
    /// <summary>Sum over the warp's lanes.</summary>
    public static float Sum(float value)
    {
        if (CudaAsm.IsSupported)
        {
            value += Warp.ShuffleXor(value, 16);
            value += Warp.ShuffleXor(value, 8);
            value += Warp.ShuffleXor(value, 4);
            value += Warp.ShuffleXor(value, 2);
            return value + Warp.ShuffleXor(value, 1);
        }
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            value += Warp.ShuffleXor(value, mask);
        return value;
    }

    /// <summary>Minimum over the warp's lanes.</summary>
    public static int Min(int value)
    {
        if (CudaAsm.IsSupported)
        {
            value = Lesser(value, Warp.ShuffleXor(value, 16));
            value = Lesser(value, Warp.ShuffleXor(value, 8));
            value = Lesser(value, Warp.ShuffleXor(value, 4));
            value = Lesser(value, Warp.ShuffleXor(value, 2));
            return Lesser(value, Warp.ShuffleXor(value, 1));
        }
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            value = Lesser(value, Warp.ShuffleXor(value, mask));
        return value;
    }

    static int Lesser(int a, int b) => a < b ? a : b;

    /// <summary>True in every lane when <paramref name="condition"/> holds in any lane.</summary>
    public static bool Any(bool condition) => Min(condition ? 0 : 1) == 0;
}
