using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// RMSNorm, the specification every backend is tested against. Per row of <c>cols</c> elements, in fp32:
/// <code>
///   y = round(x * (1 / sqrt(mean(x^2) + eps)) * w)                       (plain)
///   r = round(x + residual);  y = round(r * (1 / sqrt(mean(r^2) + eps)) * w)   (fused residual add)
/// </code>
/// round() is to the activation dtype (nearest even for bf16, identity for f32); the fused norm is taken
/// over the rounded r, the residual stream the next layer sees, as the Hugging Face models compute it.
/// The product is formed as (x * inv_rms) * w, the order every backend uses. NaN and Inf propagate by
/// IEEE rules: a NaN anywhere in a row makes the row NaN; an Inf makes the sum Inf, inv_rms 0, and the
/// Inf elements NaN. Rows run in parallel when the tensor is large.
/// </summary>
public static class RmsNormReference
{
    const long ParallelThreshold = 1 << 16; // elements; below this one thread is faster

    /// <summary>Plain RMSNorm over <c>x.Length / cols</c> rows. Arguments are assumed valid (the op API checks them).</summary>
    public static unsafe void RmsNorm<T, TW>(ReadOnlySpan<T> x, ReadOnlySpan<TW> w, Span<T> y, int cols, float eps)
        where T : unmanaged where TW : unmanaged
    {
        int rows = x.Length / cols;
        float[] weight = ToFloat(w);
        fixed (T* px = x)
        fixed (T* py = y)
        {
            nint xp = (nint)px, yp = (nint)py;
            ForEachRow(rows, cols, cols, (row, scratch) =>
            {
                var xRow = new ReadOnlySpan<T>((T*)xp + (long)row * cols, cols);
                var yRow = new Span<T>((T*)yp + (long)row * cols, cols);
                Load(xRow, scratch);
                Normalise(scratch, weight, eps);
                Store(scratch, yRow);
            });
        }
    }

    /// <summary>Fused <c>r = x + residual; y = rmsnorm(r)</c>. Arguments are assumed valid (the op API checks them).</summary>
    public static unsafe void AddRmsNorm<T, TW>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<TW> w,
        Span<T> residualOut, Span<T> y, int cols, float eps)
        where T : unmanaged where TW : unmanaged
    {
        int rows = x.Length / cols;
        float[] weight = ToFloat(w);
        fixed (T* px = x)
        fixed (T* pres = residual)
        fixed (T* pr = residualOut)
        fixed (T* py = y)
        {
            nint xp = (nint)px, resp = (nint)pres, rp = (nint)pr, yp = (nint)py;
            ForEachRow(rows, cols, 2 * cols, (row, buffers) =>
            {
                long offset = (long)row * cols;
                var rRow = new Span<T>((T*)rp + offset, cols);
                Span<float> scratch = buffers.AsSpan(0, cols), addend = buffers.AsSpan(cols, cols);
                Load(new ReadOnlySpan<T>((T*)xp + offset, cols), scratch);
                Load(new ReadOnlySpan<T>((T*)resp + offset, cols), addend);
                TensorPrimitives.Add(scratch, addend, scratch);
                Store(scratch, rRow);          // r = round(x + residual)
                Load(rRow, scratch);           // the norm sees the rounded r
                Normalise(scratch, weight, eps);
                Store(scratch, new Span<T>((T*)yp + offset, cols));
            });
        }
    }

    /// <summary>In place: v = (v * inv_rms) * w.</summary>
    static void Normalise(Span<float> v, float[] weight, float eps)
    {
        float meanSquare = TensorPrimitives.SumOfSquares(v) / v.Length;
        float invRms = 1f / MathF.Sqrt(meanSquare + eps);
        TensorPrimitives.Multiply(v, invRms, v);
        TensorPrimitives.Multiply(v, weight, v);
    }

    /// <summary>Runs body(row, scratch) for every row, with one scratch array of scratchLength floats per thread.</summary>
    static void ForEachRow(int rows, int cols, int scratchLength, Action<int, float[]> body)
    {
        if ((long)rows * cols < ParallelThreshold)
        {
            var scratch = new float[scratchLength];
            for (int row = 0; row < rows; row++)
                body(row, scratch);
            return;
        }
        Parallel.For(0, rows, () => new float[scratchLength], (row, _, scratch) => { body(row, scratch); return scratch; }, _ => { });
    }

    static float[] ToFloat<TW>(ReadOnlySpan<TW> w) where TW : unmanaged
    {
        var result = new float[w.Length];
        Load(w, result);
        return result;
    }

    static void Load<T>(ReadOnlySpan<T> source, Span<float> destination) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            MemoryMarshal.Cast<T, float>(source).CopyTo(destination);
        else if (typeof(T) == typeof(BFloat16))
            BFloat16Conversions.ToSingle(MemoryMarshal.Cast<T, BFloat16>(source), destination);
        else
            throw new NotSupportedException($"RmsNorm reference: element type {typeof(T).Name} is not supported.");
    }

    static void Store<T>(ReadOnlySpan<float> source, Span<T> destination) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            source.CopyTo(MemoryMarshal.Cast<T, float>(destination));
        else if (typeof(T) == typeof(BFloat16))
            BFloat16Conversions.FromSingle(source, MemoryMarshal.Cast<T, BFloat16>(destination));
        else
            throw new NotSupportedException($"RmsNorm reference: element type {typeof(T).Name} is not supported.");
    }
}
