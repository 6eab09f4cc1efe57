using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Quantization;

/// <summary>Which GPTQ zero-point convention a checkpoint uses (its quantize_config.json <c>checkpoint_format</c>).</summary>
public enum GptqCheckpointFormat
{
    /// <summary>
    /// "gptq" (AutoGPTQ, the hub's GPTQ checkpoints): qzeros stores <c>zero - 1</c> and kernels dequantise
    /// <c>(q - (stored + 1)) * scale</c>; a zero point of 0 has no encoding.
    /// </summary>
    Gptq,

    /// <summary>"gptq_v2" (GPTQModel's internal format): qzeros stores the zero point itself, <c>(q - stored) * scale</c>.</summary>
    GptqV2,
}

/// <summary>
/// Host converters between <see cref="WeightMatrix.Int4"/>'s packing and the INT4 packings of GPTQ and AWQ checkpoints,
/// on plain arrays (a loader reads the int32 tensors, converts, and uploads). Our weights are [N = rows = out features,
/// K = cols = in features]; both formats store the transpose, [K, N].
/// </summary>
/// <remarks>
/// <para><b>Ours</b> (per matrix): codes [N, K / 2] bytes, row-major, element k of row n in nibble k % 2 of byte
/// k / 2 (low nibble first); scales and zeros [N, K / g] bfloat16; <c>w = bf16((q - zero) * scale)</c> in float32.</para>
/// <para>
/// <b>GPTQ</b> (AutoGPTQ / GPTQModel, <c>desc_act = false</c>): <c>qweight</c> int32 [K / 8, N], packed along K: nibble
/// j (bits 4j .. 4j + 3) of qweight[i, n] is the code of element (n, k = 8i + j). <c>qzeros</c> int32 [K / g, N / 8],
/// packed along N: nibble j of qzeros[gi, c] is the zero of (n = 8c + j, group gi), stored as <c>zero - 1</c> in the
/// "gptq" format and as the zero itself in "gptq_v2" (<see cref="GptqCheckpointFormat"/>). <c>scales</c> float16
/// [K / g, N]. <c>g_idx</c> (int32 [K]) must be absent or equal to <c>k / g</c>: act-order checkpoints
/// (<c>desc_act = true</c>), whose g_idx permutes the groups, are not convertible by these helpers. Converting to ours
/// is a transpose of the codes (k stays the fast index within a 32-bit word there and within a byte here: both put
/// the lowest k in the lowest nibble), a transpose of scales and zeros, and <c>zero = stored + 1</c> for "gptq".
/// </para>
/// <para>
/// <b>AWQ</b> (AutoAWQ GEMM layout, <c>version = "gemm"</c>): <c>qweight</c> int32 [K, N / 8], packed along N in AWQ's
/// interleaved order: nibble i of qweight[k, c] is the code of element (n = 8c + order[i], k), with
/// order = 0, 2, 4, 6, 1, 3, 5, 7 (so reading the nibbles back takes the inverse order 0, 4, 1, 5, 2, 6, 3, 7).
/// <c>qzeros</c> int32 [K / g, N / 8], packed the same way, the zero itself; <c>scales</c> float16 [K / g, N];
/// <c>w = (q - zero) * scale</c>.
/// </para>
/// <para>
/// Scales: both formats store float16, ours bfloat16. These helpers take and give scales as float32: from a
/// checkpoint, each scale is rounded to bf16 (relative error up to 2^-9, which moves every weight of its group by as
/// much); to a checkpoint, our bf16 scales convert exactly to float16 when they lie in float16's normal range
/// (about 6.1e-5 to 65504). N must be a multiple of 8 (the zeros, and AWQ's codes, pack 8 columns to a word); K a
/// multiple of g, g a multiple of 32 (<see cref="WeightMatrix.Int4"/>). Zeros going out must be integers that fit the
/// 4-bit field (0..15, or 1..16 for "gptq"); anything else is refused, naming the group.
/// </para>
/// </remarks>
public static class Int4Layout
{
    /// <summary>AWQ's nibble order: nibble i of a word holds column 8c + AwqOrder[i].</summary>
    static readonly int[] AwqOrder = [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>
    /// A GPTQ checkpoint's tensors as ours: effectively computes, for every out feature n and in feature k,
    /// <c>q[n, k] = (qweight[k / 8, n] &gt;&gt; 4 * (k % 8)) &amp; 15</c>, <c>scale[n, g] = bf16(scales[g, n])</c> and
    /// <c>zero[n, g] = ((qzeros[g, n / 8] &gt;&gt; 4 * (n % 8)) &amp; 15) (+ 1 for "gptq")</c>.
    /// </summary>
    /// <param name="qweight">[K / 8, N] int32, exactly.</param>
    /// <param name="qzeros">[K / g, N / 8] int32, exactly.</param>
    /// <param name="scales">[K / g, N] float32 (a checkpoint's float16 widened).</param>
    /// <param name="rows">N, out features: at least 1 and a multiple of 8.</param>
    /// <param name="cols">K, in features: a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">g, a positive multiple of 32 (quantize_config.json's <c>group_size</c>; -1, one group per row, is K).</param>
    /// <param name="format">The zero-point convention ("gptq" by default, as the hub's checkpoints).</param>
    /// <returns>Packed [N, K / 2], Scales and Zeros [N, K / g]: what <see cref="WeightMatrix.Int4"/> takes.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    /// <exception cref="ArgumentException">cols is not a multiple of groupSize, rows not of 8, or a length is wrong.</exception>
    public static (Int4x2[] Packed, BFloat16[] Scales, BFloat16[] Zeros) FromGptq(ReadOnlySpan<int> qweight, ReadOnlySpan<int> qzeros,
        ReadOnlySpan<float> scales, int rows, int cols, int groupSize = 128, GptqCheckpointFormat format = GptqCheckpointFormat.Gptq)
    {
        const string op = "Int4Layout.FromGptq";
        CheckShape(op, rows, cols, groupSize);
        CheckLength(op, nameof(qweight), qweight.Length, (long)cols / 8 * rows, $"K / 8 * N = {cols} / 8 * {rows}");
        CheckLength(op, nameof(qzeros), qzeros.Length, (long)cols / groupSize * (rows / 8), $"K / g * N / 8 = {cols} / {groupSize} * {rows} / 8");
        CheckLength(op, nameof(scales), scales.Length, (long)cols / groupSize * rows, $"K / g * N = {cols} / {groupSize} * {rows}");
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException($"{op}: INT4 repacking assumes a little-endian host.");
        int offset = format == GptqCheckpointFormat.Gptq ? 1 : 0, groups = cols / groupSize;
        var packed = new Int4x2[(long)rows * cols / 2];
        var codes = MemoryMarshal.AsBytes(packed.AsSpan());
        unsafe
        {
            fixed (int* source = qweight)
            fixed (byte* target = codes)
            {
                nint from = (nint)source, to = (nint)target;
                ForBands(rows, (long)rows * cols, (first, last) =>
                {
                    int* q = (int*)from;
                    byte* c = (byte*)to;
                    for (int n = first; n < last; n++)
                    {
                        // 8 codes k = 8i .. 8i + 7, lowest k in the lowest nibble: the same order as 4 of our bytes
                        // (little-endian: nibble j is element 8i + j)
                        uint* row = (uint*)(c + (long)n * (cols / 2));
                        for (int i = 0; i < cols / 8; i++)
                            row[i] = (uint)q[(long)i * rows + n];
                    }
                });
            }
        }
        var (ourScales, zeros) = (new BFloat16[(long)rows * groups], new BFloat16[(long)rows * groups]);
        for (int g = 0; g < groups; g++)
        {
            for (int n = 0; n < rows; n++)
            {
                ourScales[n * groups + g] = BFloat16.FromSingle(scales[g * rows + n]);
                int stored = (int)(((uint)qzeros[g * (rows / 8) + n / 8] >> (4 * (n % 8))) & 0xF);
                zeros[n * groups + g] = BFloat16.FromSingle(stored + offset);
            }
        }
        return (packed, ourScales, zeros);
    }

    /// <summary>
    /// Our INT4 tensors in a GPTQ checkpoint's packing, the inverse of <see cref="FromGptq"/>: qweight [K / 8, N],
    /// qzeros [K / g, N / 8] (zero - 1 for "gptq"), scales [K / g, N] (each bf16 scale as float32, exactly).
    /// </summary>
    /// <param name="packed">[N, K / 2] code pairs, exactly.</param>
    /// <param name="scales">[N, K / g] bfloat16, exactly.</param>
    /// <param name="zeros">[N, K / g] bfloat16, exactly: integers in 0..15 ("gptq_v2") or 1..16 ("gptq").</param>
    /// <param name="rows">N: at least 1 and a multiple of 8.</param>
    /// <param name="cols">K: a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">g, a positive multiple of 32.</param>
    /// <param name="format">The zero-point convention to write.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    /// <exception cref="ArgumentException">cols is not a multiple of groupSize, rows not of 8, a length is wrong, or a zero has no encoding.</exception>
    public static (int[] QWeight, int[] QZeros, float[] Scales) ToGptq(ReadOnlySpan<Int4x2> packed, ReadOnlySpan<BFloat16> scales,
        ReadOnlySpan<BFloat16> zeros, int rows, int cols, int groupSize = 128, GptqCheckpointFormat format = GptqCheckpointFormat.Gptq)
    {
        const string op = "Int4Layout.ToGptq";
        CheckShape(op, rows, cols, groupSize);
        Int4GroupQuantizer.CheckLengths(op, packed.Length, scales.Length, zeros.Length, rows, cols, groupSize);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException($"{op}: INT4 repacking assumes a little-endian host.");
        int offset = format == GptqCheckpointFormat.Gptq ? 1 : 0, groups = cols / groupSize;
        var codes = MemoryMarshal.AsBytes(packed);
        var qweight = new int[(long)cols / 8 * rows];
        for (int n = 0; n < rows; n++)
        {
            for (int i = 0; i < cols / 8; i++)
                qweight[i * rows + n] = MemoryMarshal.Read<int>(codes.Slice(n * (cols / 2) + 4 * i, 4));
        }
        var qzeros = new int[(long)groups * (rows / 8)];
        var gptqScales = new float[(long)groups * rows];
        for (int g = 0; g < groups; g++)
        {
            for (int n = 0; n < rows; n++)
            {
                gptqScales[g * rows + n] = scales[n * groups + g].ToSingle();
                int stored = StoredZero(op, zeros[n * groups + g], offset, n, g);
                qzeros[g * (rows / 8) + n / 8] |= stored << (4 * (n % 8));
            }
        }
        return (qweight, qzeros, gptqScales);
    }

    /// <summary>
    /// An AWQ (GEMM layout) checkpoint's tensors as ours: effectively computes
    /// <c>q[n, k] = (qweight[k, n / 8] &gt;&gt; 4 * i) &amp; 15</c> where i is the nibble AWQ's order gives column n % 8
    /// (order 0, 2, 4, 6, 1, 3, 5, 7), the zeros alike from qzeros [K / g, N / 8], and <c>scale[n, g] = bf16(scales[g, n])</c>.
    /// </summary>
    /// <param name="qweight">[K, N / 8] int32, exactly.</param>
    /// <param name="qzeros">[K / g, N / 8] int32, exactly.</param>
    /// <param name="scales">[K / g, N] float32 (a checkpoint's float16 widened).</param>
    /// <param name="rows">N, out features: at least 1 and a multiple of 8.</param>
    /// <param name="cols">K, in features: a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">g, a positive multiple of 32 (AWQ's <c>q_group_size</c>).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    /// <exception cref="ArgumentException">cols is not a multiple of groupSize, rows not of 8, or a length is wrong.</exception>
    public static (Int4x2[] Packed, BFloat16[] Scales, BFloat16[] Zeros) FromAwq(ReadOnlySpan<int> qweight, ReadOnlySpan<int> qzeros,
        ReadOnlySpan<float> scales, int rows, int cols, int groupSize = 128)
    {
        const string op = "Int4Layout.FromAwq";
        CheckShape(op, rows, cols, groupSize);
        CheckLength(op, nameof(qweight), qweight.Length, (long)cols * (rows / 8), $"K * N / 8 = {cols} * {rows} / 8");
        CheckLength(op, nameof(qzeros), qzeros.Length, (long)cols / groupSize * (rows / 8), $"K / g * N / 8 = {cols} / {groupSize} * {rows} / 8");
        CheckLength(op, nameof(scales), scales.Length, (long)cols / groupSize * rows, $"K / g * N = {cols} / {groupSize} * {rows}");
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException($"{op}: INT4 repacking assumes a little-endian host.");
        int groups = cols / groupSize, words = rows / 8;
        var packed = new Int4x2[(long)rows * cols / 2];
        var codes = MemoryMarshal.AsBytes(packed.AsSpan());
        // A transpose, 32 in features at a time: their qweight rows unpacked into block[kk, n] (one code a byte, 8 written at
        // once), then each out feature's 16 bytes written in one run. A nibble at a time straight into the codes took 2.5x as
        // long (221 against 87 ms for a [14336, 4096] matrix, Release, this machine, one thread).
        const int blockCols = 32; // cols is a multiple of the group, so of 32
        unsafe
        {
            fixed (int* source = qweight)
            fixed (byte* target = codes)
            {
                nint from = (nint)source, to = (nint)target;
                // the blocks of 32 in features write disjoint bytes of every row: they run in parallel, each with its block
                ForBands(cols / blockCols, (long)rows * cols, (firstBlock, lastBlock) =>
                {
                    int* q = (int*)from;
                    byte* c = (byte*)to;
                    var block = new byte[blockCols * rows];
                    for (int b = firstBlock; b < lastBlock; b++)
                    {
                        int k0 = b * blockCols;
                        for (int kk = 0; kk < blockCols; kk++)
                        {
                            int* words32 = q + (long)(k0 + kk) * words;
                            var unpacked = MemoryMarshal.Cast<byte, ulong>(block.AsSpan(kk * rows, rows));
                            for (int w = 0; w < words; w++)
                            {
                                // column 8w + p is nibble i with AwqOrder[i] = p: nibbles 0, 4, 1, 5, 2, 6, 3, 7 in byte order
                                ulong word = (uint)words32[w];
                                unpacked[w] = (word & 0xF) | ((word >> 16 & 0xF) << 8) | ((word >> 4 & 0xF) << 16) | ((word >> 20 & 0xF) << 24)
                                    | ((word >> 8 & 0xF) << 32) | ((word >> 24 & 0xF) << 40) | ((word >> 12 & 0xF) << 48) | ((word >> 28 & 0xF) << 56);
                            }
                        }
                        for (int n = 0; n < rows; n++)
                        {
                            byte* row = c + (long)n * (cols / 2) + k0 / 2;
                            for (int j = 0; j < blockCols / 2; j++)
                                row[j] = (byte)(block[2 * j * rows + n] | (block[(2 * j + 1) * rows + n] << 4));
                        }
                    }
                });
            }
        }
        var (ourScales, zeros) = (new BFloat16[(long)rows * groups], new BFloat16[(long)rows * groups]);
        for (int g = 0; g < groups; g++)
        {
            for (int c = 0; c < words; c++)
            {
                uint word = (uint)qzeros[g * words + c];
                for (int i = 0; i < 8; i++)
                {
                    int n = 8 * c + AwqOrder[i];
                    zeros[n * groups + g] = BFloat16.FromSingle((word >> (4 * i)) & 0xF);
                }
            }
            for (int n = 0; n < rows; n++)
                ourScales[n * groups + g] = BFloat16.FromSingle(scales[g * rows + n]);
        }
        return (packed, ourScales, zeros);
    }

    /// <summary>
    /// Our INT4 tensors in AWQ's GEMM packing, the inverse of <see cref="FromAwq"/>: qweight [K, N / 8] and qzeros
    /// [K / g, N / 8] in AWQ's interleaved nibble order, scales [K / g, N] (each bf16 scale as float32, exactly).
    /// </summary>
    /// <param name="packed">[N, K / 2] code pairs, exactly.</param>
    /// <param name="scales">[N, K / g] bfloat16, exactly.</param>
    /// <param name="zeros">[N, K / g] bfloat16, exactly: integers in 0..15.</param>
    /// <param name="rows">N: at least 1 and a multiple of 8.</param>
    /// <param name="cols">K: a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">g, a positive multiple of 32.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is less than 1, or groupSize is not a positive multiple of 32.</exception>
    /// <exception cref="ArgumentException">cols is not a multiple of groupSize, rows not of 8, a length is wrong, or a zero is not an integer in 0..15.</exception>
    public static (int[] QWeight, int[] QZeros, float[] Scales) ToAwq(ReadOnlySpan<Int4x2> packed, ReadOnlySpan<BFloat16> scales,
        ReadOnlySpan<BFloat16> zeros, int rows, int cols, int groupSize = 128)
    {
        const string op = "Int4Layout.ToAwq";
        CheckShape(op, rows, cols, groupSize);
        Int4GroupQuantizer.CheckLengths(op, packed.Length, scales.Length, zeros.Length, rows, cols, groupSize);
        int groups = cols / groupSize, words = rows / 8;
        var codes = MemoryMarshal.AsBytes(packed);
        var qweight = new int[(long)cols * words];
        for (int k = 0; k < cols; k++)
        {
            for (int c = 0; c < words; c++)
            {
                uint word = 0;
                for (int i = 0; i < 8; i++)
                {
                    int n = 8 * c + AwqOrder[i];
                    word |= (uint)((codes[n * (cols / 2) + k / 2] >> (4 * (k % 2))) & 0xF) << (4 * i);
                }
                qweight[k * words + c] = (int)word;
            }
        }
        var qzeros = new int[(long)groups * words];
        var awqScales = new float[(long)groups * rows];
        for (int g = 0; g < groups; g++)
        {
            for (int c = 0; c < words; c++)
            {
                uint word = 0;
                for (int i = 0; i < 8; i++)
                {
                    int n = 8 * c + AwqOrder[i];
                    word |= (uint)StoredZero(op, zeros[n * groups + g], 0, n, g) << (4 * i);
                }
                qzeros[g * words + c] = (int)word;
            }
            for (int n = 0; n < rows; n++)
                awqScales[g * rows + n] = scales[n * groups + g].ToSingle();
        }
        return (qweight, qzeros, awqScales);
    }

    /// <summary>Weights below which a conversion runs on the calling thread alone (a task costs more than the work).</summary>
    const long ParallelWeights = 1 << 20;

    /// <summary>
    /// <paramref name="body"/> over [0, <paramref name="count"/>) in contiguous bands, on the thread pool when the matrix
    /// holds <see cref="ParallelWeights"/> or more weights (a checkpoint's large layers), else on the calling thread.
    /// </summary>
    static void ForBands(int count, long weights, Action<int, int> body)
    {
        int bands = weights < ParallelWeights ? 1 : Math.Min(count, 4 * Environment.ProcessorCount);
        if (bands <= 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, bands, band => body((int)((long)count * band / bands), (int)((long)count * (band + 1) / bands)));
    }

    /// <summary>The 4-bit field for <paramref name="zero"/>: zero - offset, which must be an integer in 0..15.</summary>
    static int StoredZero(string op, BFloat16 zero, int offset, int n, int g)
    {
        float stored = zero.ToSingle() - offset;
        if (!(stored >= 0 && stored <= 15 && stored == MathF.Floor(stored)))
            ThrowHelper.Argument(op, "zeros", $"zeros[{n}, {g}] = {zero} has no 4-bit encoding: the format stores zero - {offset}, "
                + $"which must be an integer in 0..15 (so the zero point in {offset}..{15 + offset}).");
        return (int)stored;
    }

    static void CheckShape(string op, int rows, int cols, int groupSize)
    {
        Int4GroupQuantizer.CheckShape(op, rows, cols, groupSize);
        if (rows % 8 != 0)
            ThrowHelper.Argument(op, nameof(rows), $"rows = N = {rows} is not a multiple of 8; the zeros pack 8 out features to an int32.");
    }

    static void CheckLength(string op, string name, long length, long expected, string shape)
    {
        if (length != expected)
            ThrowHelper.Argument(op, name, $"{name} has {length} elements; {shape} = {expected}.");
    }
}
