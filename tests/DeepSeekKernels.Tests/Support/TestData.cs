using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Support;

/// <summary>Seeded test inputs (never all zeros) and the conversions tests need.</summary>
public static class TestData
{
    /// <summary>Values in ±[0.05, 3), with both signs, seeded.</summary>
    public static float[] Activations(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            float magnitude = 0.05f + 2.95f * random.NextSingle();
            values[i] = random.Next(2) == 0 ? magnitude : -magnitude;
        }
        return values;
    }

    /// <summary>Weights around 1 (0.5 to 1.5), seeded.</summary>
    public static float[] Weights(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = 0.5f + random.NextSingle();
        return values;
    }

    /// <summary>float[] as <typeparamref name="T"/> (f32 or bf16, rounded to nearest even).</summary>
    public static T[] As<T>(float[] values) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return (T[])(object)values.ToArray();
        if (typeof(T) == typeof(BFloat16))
            return (T[])(object)values.Select(BFloat16.FromSingle).ToArray();
        throw new NotSupportedException(typeof(T).Name);
    }

    /// <summary><typeparamref name="T"/>[] (f32 or bf16) as float[] (exact).</summary>
    public static float[] ToFloat<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(values).ToArray();
        if (typeof(T) == typeof(BFloat16))
        {
            var result = new float[values.Length];
            BFloat16Conversions.ToSingle(System.Runtime.InteropServices.MemoryMarshal.Cast<T, BFloat16>(values), result);
            return result;
        }
        throw new NotSupportedException(typeof(T).Name);
    }

    /// <summary>An array of <paramref name="length"/> NaNs in <typeparamref name="T"/>: outputs start poisoned.</summary>
    public static T[] Poison<T>(int length) where T : unmanaged
    {
        var nan = new float[length];
        Array.Fill(nan, float.NaN);
        return As<T>(nan);
    }
}
