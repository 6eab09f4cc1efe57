using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Quantization;

/// <summary>
/// Quantises a host float32 weight (one matrix or a stack) in a chosen <see cref="WeightScheme"/> and uploads it: the
/// entry a model loader calls to store full-precision checkpoint weights as INT4 or FP8 (<c>--quant int4|fp8</c>).
/// </summary>
public static class WeightQuantizer
{
    const string Op = "WeightQuantizer.Upload";

    /// <summary>
    /// Effectively computes the stored form of <paramref name="w"/> in <paramref name="scheme"/> and uploads it to
    /// <paramref name="runtime"/>: <see cref="WeightScheme.Dense"/> as bfloat16 (each weight rounded to nearest even),
    /// <see cref="WeightScheme.Fp8Block"/> through <see cref="Fp8BlockQuantizer.Quantize"/>,
    /// <see cref="WeightScheme.Int4Group"/> through <see cref="Int4GroupQuantizer.Quantize"/>.
    /// </summary>
    /// <param name="runtime">The device the weight goes to.</param>
    /// <param name="w">[count, rows, cols] float32, row-major, finite.</param>
    /// <param name="rows">Out features of each matrix, at least 1.</param>
    /// <param name="cols">In features, at least 1 (INT4: a multiple of <paramref name="groupSize"/>).</param>
    /// <param name="count">Matrices in the stack, at least 1.</param>
    /// <param name="scheme">How to store it.</param>
    /// <param name="owner">
    /// Receives every device buffer made, as soon as it is made (so nothing leaks when a later upload fails); the caller
    /// disposes them when the weight is no longer used (a <see cref="WeightMatrix"/> does not own its views).
    /// </param>
    /// <param name="groupSize">INT4 in features per group (a positive multiple of 32).</param>
    /// <param name="blockRows">FP8 rows per scale block.</param>
    /// <param name="blockCols">FP8 columns per scale block.</param>
    /// <returns>The weight, on <paramref name="runtime"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="runtime"/> or <paramref name="owner"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, or <paramref name="scheme"/> is not a scheme.</exception>
    /// <exception cref="ArgumentException">w's length is not count * rows * cols, the shape does not fit the scheme, or a weight is not finite.</exception>
    public static WeightMatrix Upload(DeviceRuntime runtime, ReadOnlySpan<float> w, int rows, int cols, int count, WeightScheme scheme,
        ICollection<IDisposable> owner, int groupSize = 128, int blockRows = 128, int blockCols = 128)
    {
        if (runtime is null)
            ThrowHelper.ArgumentNull(Op, nameof(runtime));
        if (owner is null)
            ThrowHelper.ArgumentNull(Op, nameof(owner));
        WeightMatrix.CheckSizes(Op, rows, cols, count);
        long expected = (long)count * rows * cols;
        if (w.Length != expected)
            ThrowHelper.Argument(Op, nameof(w), $"w has {w.Length} elements; count * rows * cols = {count} * {rows} * {cols} = {expected}.");
        switch (scheme)
        {
            case WeightScheme.Dense:
            {
                var bf16 = new BFloat16[expected];
                BFloat16Conversions.FromSingle(w, bf16);
                return WeightMatrix.Dense(Keep(owner, runtime.Upload<BFloat16>(bf16)).View, rows, cols, count);
            }
            case WeightScheme.Fp8Block:
            {
                var (data, scaleInv) = Fp8BlockQuantizer.Quantize(w, rows, cols, blockRows, blockCols, count);
                var dataBuffer = Keep(owner, runtime.Upload<Float8E4M3>(data));
                var scaleBuffer = Keep(owner, runtime.Upload<float>(scaleInv));
                return WeightMatrix.Fp8(dataBuffer.View, scaleBuffer.View, rows, cols, blockRows, blockCols, count);
            }
            case WeightScheme.Int4Group:
            {
                // INT4 groups never span rows, so a stack quantises as count * rows rows
                var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, count * rows, cols, groupSize);
                var packedBuffer = Keep(owner, runtime.Upload<Int4x2>(packed));
                var scaleBuffer = Keep(owner, runtime.Upload<BFloat16>(scales));
                var zeroBuffer = Keep(owner, runtime.Upload<BFloat16>(zeros));
                return WeightMatrix.Int4(packedBuffer.View, scaleBuffer.View, zeroBuffer.View, rows, cols, groupSize, count);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(scheme), scheme, $"{Op}: scheme must be Dense, Fp8Block or Int4Group (got {(int)scheme}).");
        }
    }

    static DeviceBuffer<T> Keep<T>(ICollection<IDisposable> owner, DeviceBuffer<T> buffer) where T : unmanaged
    {
        owner.Add(buffer);
        return buffer;
    }
}
