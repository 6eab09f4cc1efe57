using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;

namespace DeepSeekKernels.Tests.Quantization;

/// <summary>
/// GPTQ and AWQ packings: our packing to theirs and back is bit-exact, a hand-built word lands where their docs say,
/// and dequantising their tensors by their own formulas (GPTQ "gptq": <c>(q - (z + 1)) * s</c>; "gptq_v2" and AWQ:
/// <c>(q - z) * s</c>), written here from their unpacking code, gives our dequantised weights bit for bit.
/// </summary>
public class Int4LayoutTests
{
    static readonly int[] AwqReverseOrder = [0, 4, 1, 5, 2, 6, 3, 7]; // AutoAWQ's unpacking: column 8c + j is nibble AwqReverseOrder[j]

    /// <summary>A quantised random matrix [rows, cols]; with zeroFloor 1, no group has zero point 0 (GPTQ "gptq" cannot store it).</summary>
    static (Int4x2[] Packed, BFloat16[] Scales, BFloat16[] Zeros) Quantised(int rows, int cols, int groupSize, int seed, int zeroFloor = 0)
    {
        var w = Int4GroupQuantizerTests.Gaussian(rows * cols, seed);
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, rows, cols, groupSize);
        var random = new Random(seed);
        for (int i = 0; i < zeros.Length; i++)
        {
            if (zeros[i].ToSingle() < zeroFloor || random.Next(4) == 0)
                zeros[i] = BFloat16.FromSingle(random.Next(zeroFloor, 16)); // every zero the format can hold, 15 included
        }
        return (packed, scales, zeros);
    }

    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 8, 32, 32 },
        { 24, 256, 128 },
        { 16, 192, 64 },
        { 40, 128, 128 },
        { 1032, 1056, 32 }, // over a million weights: converted in parallel bands (33 blocks of 32 in features, bands uneven)
    };

    [Theory, MemberData(nameof(Shapes))]
    public void GptqRoundTripIsBitExact(int rows, int cols, int groupSize)
    {
        foreach (var format in new[] { GptqCheckpointFormat.Gptq, GptqCheckpointFormat.GptqV2 })
        {
            var (packed, scales, zeros) = Quantised(rows, cols, groupSize, rows + cols, zeroFloor: format == GptqCheckpointFormat.Gptq ? 1 : 0);
            var (qweight, qzeros, gptqScales) = Int4Layout.ToGptq(packed, scales, zeros, rows, cols, groupSize, format);
            Assert.Equal(((long)cols / 8 * rows, (long)cols / groupSize * rows / 8, (long)cols / groupSize * rows), (qweight.LongLength, qzeros.LongLength, gptqScales.LongLength));
            var (packedBack, scalesBack, zerosBack) = Int4Layout.FromGptq(qweight, qzeros, gptqScales, rows, cols, groupSize, format);
            Assert.Equal(packed.Select(p => p.Bits), packedBack.Select(p => p.Bits));
            Assert.Equal(scales, scalesBack);
            Assert.Equal(zeros, zerosBack);
        }
    }

    [Theory, MemberData(nameof(Shapes))]
    public void AwqRoundTripIsBitExact(int rows, int cols, int groupSize)
    {
        var (packed, scales, zeros) = Quantised(rows, cols, groupSize, 3 * rows + cols);
        var (qweight, qzeros, awqScales) = Int4Layout.ToAwq(packed, scales, zeros, rows, cols, groupSize);
        Assert.Equal(((long)cols * rows / 8, (long)cols / groupSize * rows / 8), (qweight.LongLength, qzeros.LongLength));
        var (packedBack, scalesBack, zerosBack) = Int4Layout.FromAwq(qweight, qzeros, awqScales, rows, cols, groupSize);
        Assert.Equal(packed.Select(p => p.Bits), packedBack.Select(p => p.Bits));
        Assert.Equal(scales, scalesBack);
        Assert.Equal(zeros, zerosBack);
    }

    [Theory]
    [InlineData(GptqCheckpointFormat.Gptq)]
    [InlineData(GptqCheckpointFormat.GptqV2)]
    public void DequantisingGptqTensorsByGptqsFormulaGivesOurWeights(GptqCheckpointFormat format)
    {
        const int rows = 24, cols = 256, groupSize = 128;
        var (packed, scales, zeros) = Quantised(rows, cols, groupSize, 77, zeroFloor: format == GptqCheckpointFormat.Gptq ? 1 : 0);
        var (qweight, qzeros, gptqScales) = Int4Layout.ToGptq(packed, scales, zeros, rows, cols, groupSize, format);
        var ours = Int4GroupQuantizer.Dequantize(packed, scales, zeros, rows, cols, groupSize);
        // GPTQ's dequantisation (AutoGPTQ's torch path): weight[k, n] = (q - (z + 1)) * s for "gptq", (q - z) * s for v2,
        // with q = (qweight[k / 8, n] >> 4 * (k % 8)) & 15, z = (qzeros[g, n / 8] >> 4 * (n % 8)) & 15, g = k / groupSize;
        // computed here in float32 and rounded to bf16, as ours is
        int offset = format == GptqCheckpointFormat.Gptq ? 1 : 0;
        for (int k = 0; k < cols; k++)
            for (int n = 0; n < rows; n++)
            {
                int g = k / groupSize;
                int q = (qweight[k / 8 * rows + n] >> (4 * (k % 8))) & 0xF;
                int z = ((qzeros[g * (rows / 8) + n / 8] >> (4 * (n % 8))) & 0xF) + offset;
                float theirs = BFloat16.FromSingle((q - z) * gptqScales[g * rows + n]).ToSingle();
                Assert.True(theirs == ours[n * cols + k], $"[{n}, {k}]: GPTQ gives {theirs}, ours {ours[n * cols + k]}");
            }
    }

    [Fact]
    public void DequantisingAwqTensorsByAwqsFormulaGivesOurWeights()
    {
        const int rows = 16, cols = 192, groupSize = 64;
        var (packed, scales, zeros) = Quantised(rows, cols, groupSize, 78);
        var (qweight, qzeros, awqScales) = Int4Layout.ToAwq(packed, scales, zeros, rows, cols, groupSize);
        var ours = Int4GroupQuantizer.Dequantize(packed, scales, zeros, rows, cols, groupSize);
        // AutoAWQ's unpacking: shift each word by 0, 4, .., 28, then reorder with AWQ_REVERSE_ORDER; (q - z) * s
        for (int k = 0; k < cols; k++)
            for (int n = 0; n < rows; n++)
            {
                int g = k / groupSize, shift = 4 * AwqReverseOrder[n % 8];
                int q = (qweight[k * (rows / 8) + n / 8] >> shift) & 0xF;
                int z = (qzeros[g * (rows / 8) + n / 8] >> shift) & 0xF;
                float theirs = BFloat16.FromSingle((q - z) * awqScales[g * rows + n]).ToSingle();
                Assert.True(theirs == ours[n * cols + k], $"[{n}, {k}]: AWQ gives {theirs}, ours {ours[n * cols + k]}");
            }
    }

    [Fact]
    public void HandBuiltWordsLandWhereTheFormatsSay()
    {
        // one [8, 32] matrix, one group: codes q[n, k] = (n + k) % 16, scale 1, zero 3
        const int rows = 8, cols = 32;
        var packed = new Int4x2[rows * cols / 2];
        for (int n = 0; n < rows; n++)
            for (int k = 0; k < cols; k += 2)
                packed[n * cols / 2 + k / 2] = Int4x2.PackUnsigned((n + k) % 16, (n + k + 1) % 16);
        var scales = Enumerable.Repeat(BFloat16.One, rows).ToArray();
        var zeros = Enumerable.Repeat(BFloat16.FromSingle(3f), rows).ToArray();

        var (qweight, qzeros, _) = Int4Layout.ToGptq(packed, scales, zeros, rows, cols, cols);
        // qweight[0, n=1]: k = 0..7 of row 1, lowest k lowest: codes 1..8 -> 0x87654321
        Assert.Equal(unchecked((int)0x87654321), qweight[0 * rows + 1]);
        // qzeros[0, 0]: zero - 1 = 2 for each of n = 0..7
        Assert.Equal(0x22222222, qzeros[0]);

        var (awqWeight, awqZeros, _) = Int4Layout.ToAwq(packed, scales, zeros, rows, cols, cols);
        // awq qweight[k=0, c=0]: nibble i holds column order[i] = 0, 2, 4, 6, 1, 3, 5, 7, whose code at k = 0 is n itself
        Assert.Equal(0x75316420, awqWeight[0]);
        Assert.Equal(0x33333333, awqZeros[0]);
    }

    [Fact]
    public void ZerosWithoutAnEncodingAndBadShapesAreRefused()
    {
        var (packed, scales, zeros) = Quantised(8, 64, 32, 5);
        Array.Fill(zeros, BFloat16.FromSingle(5f));
        zeros[3] = BFloat16.Zero;
        var e = Assert.Throws<ArgumentException>(() => Int4Layout.ToGptq(packed, scales, zeros, 8, 64, 32));
        Assert.Equal("zeros", e.ParamName);
        Assert.Contains("zeros[1, 1] = 0", e.Message);
        Assert.Equal(64 / 8 * 8, Int4Layout.ToGptq(packed, scales, zeros, 8, 64, 32, GptqCheckpointFormat.GptqV2).QWeight.Length);
        zeros[3] = BFloat16.FromSingle(2.5f);
        Assert.Equal("zeros", Assert.Throws<ArgumentException>(() => Int4Layout.ToAwq(packed, scales, zeros, 8, 64, 32)).ParamName);
        zeros[3] = BFloat16.FromSingle(16f);
        Assert.Equal("zeros", Assert.Throws<ArgumentException>(() => Int4Layout.ToGptq(packed, scales, zeros, 8, 64, 32, GptqCheckpointFormat.GptqV2)).ParamName);
        Assert.Equal(64 / 8 * 8, Int4Layout.ToGptq(packed, scales, zeros, 8, 64, 32).QWeight.Length); // "gptq" stores 16 as 15

        var (p4, s4, z4) = Quantised(4, 64, 32, 6);
        var rows = Assert.Throws<ArgumentException>(() => Int4Layout.ToGptq(p4, s4, z4, 4, 64, 32));
        Assert.Equal("rows", rows.ParamName);
        Assert.Contains("multiple of 8", rows.Message);
        Assert.Equal("cols", Assert.Throws<ArgumentException>(() => Int4Layout.FromAwq(new int[64], new int[2], new float[16], 8, 64, 128)).ParamName);
        var length = Assert.Throws<ArgumentException>(() => Int4Layout.FromGptq(new int[63], new int[2], new float[16], 8, 64, 32));
        Assert.Equal("qweight", length.ParamName);
        Assert.Contains("K / 8 * N = 64 / 8 * 8 = 64", length.Message);
        Assert.Equal("qzeros", Assert.Throws<ArgumentException>(() => Int4Layout.FromGptq(new int[64], new int[3], new float[16], 8, 64, 32)).ParamName);
        Assert.Equal("scales", Assert.Throws<ArgumentException>(() => Int4Layout.FromAwq(new int[64], new int[2], new float[15], 8, 64, 32)).ParamName);
        Assert.Equal("scales", Assert.Throws<ArgumentException>(() => Int4Layout.ToAwq(packed, scales.AsSpan(1), zeros, 8, 64, 32)).ParamName);
    }
}
