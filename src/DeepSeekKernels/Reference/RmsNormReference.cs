using System.Runtime.CompilerServices;
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
        fixed (T* px = x)
        fixed (T* py = y)
        fixed (TW* pw = w)
            ForEachRow(new Rows<T>((nint)px, 0, 0, (nint)py, WeightAsFloat(pw, w.Length), cols, eps), x.Length / cols, cols, cols);
    }

    /// <summary>Fused <c>r = x + residual; y = rmsnorm(r)</c>. Arguments are assumed valid (the op API checks them).</summary>
    public static unsafe void AddRmsNorm<T, TW>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<TW> w,
        Span<T> residualOut, Span<T> y, int cols, float eps)
        where T : unmanaged where TW : unmanaged
    {
        fixed (T* px = x)
        fixed (T* pres = residual)
        fixed (T* pr = residualOut)
        fixed (T* py = y)
        fixed (TW* pw = w)
            ForEachRow(new Rows<T>((nint)px, (nint)pres, (nint)pr, (nint)py, WeightAsFloat(pw, w.Length), cols, eps), x.Length / cols, cols, 2 * cols);
    }

    /// <summary>One call's rows: x (and, for the fused norm, the residual and r = x + residual) normalised into y.</summary>
    readonly unsafe struct Rows<T>(nint x, nint residual, nint r, nint y, nint weight, int cols, float eps) where T : unmanaged
    {
        /// <summary>Row <paramref name="row"/>, with <paramref name="buffers"/> of cols (plain) or 2 * cols (fused) floats.</summary>
        public void Row(int row, Span<float> buffers)
        {
            long offset = (long)row * cols;
            var weightRow = new ReadOnlySpan<float>((float*)weight, cols);
            Span<float> scratch = buffers[..cols];
            if (residual == 0)
            {
                Load(new ReadOnlySpan<T>((T*)x + offset, cols), scratch);
                Normalise(scratch, weightRow, eps);
                Store(scratch, new Span<T>((T*)y + offset, cols));
                return;
            }
            var rRow = new Span<T>((T*)r + offset, cols);
            Span<float> addend = buffers.Slice(cols, cols);
            Load(new ReadOnlySpan<T>((T*)x + offset, cols), scratch);
            Load(new ReadOnlySpan<T>((T*)residual + offset, cols), addend);
            TensorPrimitives.Add(scratch, addend, scratch);
            Store(scratch, rRow);          // r = round(x + residual)
            Load(rRow, scratch);           // the norm sees the rounded r
            Normalise(scratch, weightRow, eps);
            Store(scratch, new Span<T>((T*)y + offset, cols));
        }
    }

    /// <summary>In place: v = (v * inv_rms) * w.</summary>
    static void Normalise(Span<float> v, ReadOnlySpan<float> weight, float eps)
    {
        float meanSquare = TensorPrimitives.SumOfSquares(v) / v.Length;
        float invRms = 1f / MathF.Sqrt(meanSquare + eps);
        TensorPrimitives.Multiply(v, invRms, v);
        TensorPrimitives.Multiply(v, weight, v);
    }

    // The calling thread's scratch, grown and kept, so that a small call (a decode token) allocates nothing.
    [ThreadStatic] static float[]? t_scratch;
    [ThreadStatic] static float[]? t_weight;

    /// <summary>Runs every row, each thread with its own scratch of scratchLength floats (kept between calls).</summary>
    static void ForEachRow<T>(Rows<T> rows, int count, int cols, int scratchLength) where T : unmanaged
    {
        if ((long)count * cols < ParallelThreshold)
        {
            var scratch = Grown(ref t_scratch, scratchLength);
            for (int row = 0; row < count; row++)
                rows.Row(row, scratch);
            return;
        }
        InParallel(rows, count, scratchLength);
    }

    // apart, so that its closure is allocated only when the rows run in parallel
    static void InParallel<T>(Rows<T> rows, int count, int scratchLength) where T : unmanaged =>
        Parallel.For(0, count, row => rows.Row(row, Grown(ref t_scratch, scratchLength))); // each thread's own, kept

    static float[] Grown(ref float[]? array, int length)
    {
        if (array == null || array.Length < length)
            array = GC.AllocateArray<float>(length, pinned: true); // pinned: the weight's is read through its address
        return array;
    }

    /// <summary>The weight as float32: a float32 weight where it lies, another type widened into the calling thread's buffer.</summary>
    static unsafe nint WeightAsFloat<TW>(TW* w, int length) where TW : unmanaged
    {
        if (typeof(TW) == typeof(float))
            return (nint)w;
        var buffer = Grown(ref t_weight, length);
        Load(new ReadOnlySpan<TW>(w, length), buffer);
        return (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
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
