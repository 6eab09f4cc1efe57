using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using ILGPU;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// 16 bytes of activations (8 bf16 or 4 f32). A view of these, marked 16-byte aligned in the kernel
/// (<c>AsAligned(16)</c>), lets ILGPU's PTX backend load and store it with one 16-byte access
/// (<c>ld.global.v4.u32</c>) instead of 8 or 4 scalar ones.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal struct Vec16
{
    public uint A, B, C, D;
}

/// <summary>Up to 8 fp32 lanes: the unpacked form of one <see cref="Vec16"/> (f32 activations use F0..F3).</summary>
internal struct Lanes8
{
    public float F0, F1, F2, F3, F4, F5, F6, F7;
}

/// <summary>
/// The activation dtype's side of a vectorised kernel: unpack 16 bytes to fp32 lanes, pack back with the
/// dtype's rounding, and the per-lane arithmetic of RMSNorm. Struct type parameter, so ILGPU specialises.
/// </summary>
internal interface IActivationVector
{
    /// <summary>Elements per 16 bytes.</summary>
    int Lanes { get; }
    Lanes8 Unpack(Vec16 v);
    Vec16 Pack(Lanes8 f);
    float SumOfSquares(Lanes8 f);
    Lanes8 Add(Lanes8 a, Lanes8 b);
    /// <summary>(v * scale) * w per lane, in this order.</summary>
    Lanes8 Scale(Lanes8 v, float scale, Lanes8 w);
}

internal readonly struct BF16Vector : IActivationVector
{
    public int Lanes => 8;

    static float Lo(uint u) => Interop.IntAsFloat(u << 16);
    static float Hi(uint u) => Interop.IntAsFloat(u & 0xFFFF_0000u);
    static uint Round(float f) => BFloat16.RoundToBits(Interop.FloatAsInt(f));
    static uint Pair(float lo, float hi) => Round(lo) | (Round(hi) << 16);

    public Lanes8 Unpack(Vec16 v) => new()
    {
        F0 = Lo(v.A), F1 = Hi(v.A), F2 = Lo(v.B), F3 = Hi(v.B), F4 = Lo(v.C), F5 = Hi(v.C), F6 = Lo(v.D), F7 = Hi(v.D),
    };

    public Vec16 Pack(Lanes8 f) => new() { A = Pair(f.F0, f.F1), B = Pair(f.F2, f.F3), C = Pair(f.F4, f.F5), D = Pair(f.F6, f.F7) };

    public float SumOfSquares(Lanes8 f) =>
        f.F0 * f.F0 + f.F1 * f.F1 + f.F2 * f.F2 + f.F3 * f.F3 + f.F4 * f.F4 + f.F5 * f.F5 + f.F6 * f.F6 + f.F7 * f.F7;

    public Lanes8 Add(Lanes8 a, Lanes8 b) => new()
    {
        F0 = a.F0 + b.F0, F1 = a.F1 + b.F1, F2 = a.F2 + b.F2, F3 = a.F3 + b.F3,
        F4 = a.F4 + b.F4, F5 = a.F5 + b.F5, F6 = a.F6 + b.F6, F7 = a.F7 + b.F7,
    };

    public Lanes8 Scale(Lanes8 v, float s, Lanes8 w) => new()
    {
        F0 = v.F0 * s * w.F0, F1 = v.F1 * s * w.F1, F2 = v.F2 * s * w.F2, F3 = v.F3 * s * w.F3,
        F4 = v.F4 * s * w.F4, F5 = v.F5 * s * w.F5, F6 = v.F6 * s * w.F6, F7 = v.F7 * s * w.F7,
    };
}

internal readonly struct F32Vector : IActivationVector
{
    public int Lanes => 4;

    public Lanes8 Unpack(Vec16 v) => new()
    {
        F0 = Interop.IntAsFloat(v.A), F1 = Interop.IntAsFloat(v.B), F2 = Interop.IntAsFloat(v.C), F3 = Interop.IntAsFloat(v.D),
    };

    public Vec16 Pack(Lanes8 f) => new()
    {
        A = Interop.FloatAsInt(f.F0), B = Interop.FloatAsInt(f.F1), C = Interop.FloatAsInt(f.F2), D = Interop.FloatAsInt(f.F3),
    };

    public float SumOfSquares(Lanes8 f) => f.F0 * f.F0 + f.F1 * f.F1 + f.F2 * f.F2 + f.F3 * f.F3;

    public Lanes8 Add(Lanes8 a, Lanes8 b) => new() { F0 = a.F0 + b.F0, F1 = a.F1 + b.F1, F2 = a.F2 + b.F2, F3 = a.F3 + b.F3 };

    public Lanes8 Scale(Lanes8 v, float s, Lanes8 w) => new() { F0 = v.F0 * s * w.F0, F1 = v.F1 * s * w.F1, F2 = v.F2 * s * w.F2, F3 = v.F3 * s * w.F3 };
}

/// <summary>
/// The weight's side: the fp32 lanes of the weight that go with activation vector <c>j</c>, read from the
/// weight as 8-byte words (the weight's bytes per activation vector are 8, 16 or 32: always whole words).
/// One struct per (activation lanes, weight dtype).
/// </summary>
internal interface IWeightVector
{
    Lanes8 Load(ArrayView<ulong> w, long vector);
}

internal static class WeightWords
{
    public static float Bf16(ulong word, int lane) => Interop.IntAsFloat((uint)(word >> (16 * lane)) << 16);
    public static float F32(ulong word, int lane) => Interop.IntAsFloat((uint)(word >> (32 * lane)));
}

/// <summary>8 bf16 weights (bf16 activations): two words.</summary>
internal readonly struct Bf16WeightsOf8 : IWeightVector
{
    public Lanes8 Load(ArrayView<ulong> w, long vector)
    {
        ulong a = w[2 * vector], b = w[2 * vector + 1];
        return new()
        {
            F0 = WeightWords.Bf16(a, 0), F1 = WeightWords.Bf16(a, 1), F2 = WeightWords.Bf16(a, 2), F3 = WeightWords.Bf16(a, 3),
            F4 = WeightWords.Bf16(b, 0), F5 = WeightWords.Bf16(b, 1), F6 = WeightWords.Bf16(b, 2), F7 = WeightWords.Bf16(b, 3),
        };
    }
}

/// <summary>8 f32 weights (bf16 activations): four words.</summary>
internal readonly struct F32WeightsOf8 : IWeightVector
{
    public Lanes8 Load(ArrayView<ulong> w, long vector)
    {
        ulong a = w[4 * vector], b = w[4 * vector + 1], c = w[4 * vector + 2], d = w[4 * vector + 3];
        return new()
        {
            F0 = WeightWords.F32(a, 0), F1 = WeightWords.F32(a, 1), F2 = WeightWords.F32(b, 0), F3 = WeightWords.F32(b, 1),
            F4 = WeightWords.F32(c, 0), F5 = WeightWords.F32(c, 1), F6 = WeightWords.F32(d, 0), F7 = WeightWords.F32(d, 1),
        };
    }
}

/// <summary>4 bf16 weights (f32 activations): one word.</summary>
internal readonly struct Bf16WeightsOf4 : IWeightVector
{
    public Lanes8 Load(ArrayView<ulong> w, long vector)
    {
        ulong a = w[vector];
        return new() { F0 = WeightWords.Bf16(a, 0), F1 = WeightWords.Bf16(a, 1), F2 = WeightWords.Bf16(a, 2), F3 = WeightWords.Bf16(a, 3) };
    }
}

/// <summary>4 f32 weights (f32 activations): two words.</summary>
internal readonly struct F32WeightsOf4 : IWeightVector
{
    public Lanes8 Load(ArrayView<ulong> w, long vector)
    {
        ulong a = w[2 * vector], b = w[2 * vector + 1];
        return new() { F0 = WeightWords.F32(a, 0), F1 = WeightWords.F32(a, 1), F2 = WeightWords.F32(b, 0), F3 = WeightWords.F32(b, 1) };
    }
}

/// <summary>
/// How many 16-byte vectors each thread of a vectorised kernel holds, as a type: ILGPU compiles one kernel
/// per count and folds every test on <see cref="Count"/>, so the one-vector kernel carries no code or
/// registers for the others (the way a C++ template parameter would).
/// </summary>
internal interface IVectorsPerThread
{
    int Count { get; }
}

/// <summary>One vector per thread: the few-rows (decode) launch, where a row is spread over the most threads.</summary>
internal readonly struct OneVectorPerThread : IVectorsPerThread
{
    public int Count => 1;
}

/// <summary>Up to four vectors per thread: the many-rows launch, and rows too wide for one vector per thread.</summary>
internal readonly struct FourVectorsPerThread : IVectorsPerThread
{
    public int Count => 4;
}

internal static class VectorCodecs
{
    /// <summary>The activation codec for element type <paramref name="t"/>, or null where there is none.</summary>
    public static Type? ActivationFor(Type t) =>
        t == typeof(float) ? typeof(F32Vector) : t == typeof(BFloat16) ? typeof(BF16Vector) : null;

    /// <summary>The weight loader for activations of type <paramref name="t"/> and weights of type <paramref name="tw"/>.</summary>
    public static Type? WeightFor(Type t, Type tw) => (t, tw) switch
    {
        _ when t == typeof(BFloat16) && tw == typeof(BFloat16) => typeof(Bf16WeightsOf8),
        _ when t == typeof(BFloat16) && tw == typeof(float) => typeof(F32WeightsOf8),
        _ when t == typeof(float) && tw == typeof(BFloat16) => typeof(Bf16WeightsOf4),
        _ when t == typeof(float) && tw == typeof(float) => typeof(F32WeightsOf4),
        _ => null,
    };
}
