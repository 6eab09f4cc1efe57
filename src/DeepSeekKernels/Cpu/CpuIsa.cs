using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekKernels.Cpu;

/// <summary>The SIMD level a CPU kernel runs at, lowest first.</summary>
internal enum CpuIsaLevel
{
    /// <summary>Scalar C#, any CPU.</summary>
    Portable,
    /// <summary>Vector256 with AVX2 and FMA.</summary>
    Avx2,
    /// <summary>Vector512 with AVX-512 F, BW, DQ, VL.</summary>
    Avx512,
}

/// <summary>
/// The SIMD level the CPU kernels use: the highest this CPU and the JIT support, detected once. Tests lower it on their own
/// thread with <see cref="Force"/> so every path runs on one machine; a kernel reads <see cref="Level"/> once per call, on
/// the calling thread, and hands it to the pool's threads.
/// </summary>
internal static class CpuIsa
{
    [ThreadStatic]
    static CpuIsaLevel? t_forced;

    /// <summary>The highest level this machine runs.</summary>
    public static CpuIsaLevel Detected { get; } = Detect();

    /// <summary>The level in use on this thread: <see cref="Detected"/>, or lower inside a <see cref="Force"/> scope.</summary>
    public static CpuIsaLevel Level => t_forced is { } forced && forced < Detected ? forced : Detected;

    /// <summary>Uses <paramref name="level"/> (at most <see cref="Detected"/>) on this thread until the scope is disposed.</summary>
    internal static Scope Force(CpuIsaLevel level)
    {
        var scope = new Scope(t_forced);
        t_forced = level;
        return scope;
    }

    /// <summary>Restores the previous forced level when disposed.</summary>
    internal readonly struct Scope(CpuIsaLevel? previous) : IDisposable
    {
        public void Dispose() => t_forced = previous;
    }

    static CpuIsaLevel Detect()
    {
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported && Avx512DQ.IsSupported && Avx512F.VL.IsSupported)
            return CpuIsaLevel.Avx512;
        if (Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported)
            return CpuIsaLevel.Avx2;
        return CpuIsaLevel.Portable;
    }
}
