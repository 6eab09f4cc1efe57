using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Quantization;

/// <summary>
/// FP8 128x128-block quantisation: scales are amax / 448 per block (ragged last blocks included), every element
/// dequantised by the reference backend is within the documented bound
/// <c>2^-4 |w| + 2^-10 scaleInv + 2^-8 |deq|</c>, special blocks, stacks, and refusals.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class Fp8BlockQuantizerTests
{
    public static TheoryData<int, int, int, int, int> Shapes() => new()
    {
        // rows, cols, blockRows, blockCols, count
        { 128, 128, 128, 128, 1 },
        { 200, 576, 128, 128, 1 },  // ragged in both directions (576 = 4.5 blocks)
        { 96, 96, 128, 128, 2 },    // smaller than one block
        { 130, 300, 128, 128, 1 },
        { 33, 20, 7, 5, 3 },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void RoundTripThroughTheReferenceIsWithinTheBound(int rows, int cols, int blockRows, int blockCols, int count)
    {
        var w = Int4GroupQuantizerTests.Gaussian(count * rows * cols, rows + cols, sigma: 0.05f);
        // a few outliers and exact zeros, as real weights have
        for (int i = 0; i < w.Length; i += 97)
            w[i] *= 40f;
        for (int i = 3; i < w.Length; i += 89)
            w[i] = 0f;
        var (data, scaleInv) = Fp8BlockQuantizer.Quantize(w, rows, cols, blockRows, blockCols, count);
        int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
        Assert.Equal((long)count * scaleRows * scaleCols, scaleInv.Length);

        // the scales: amax / 448 of each block in float32
        for (int m = 0; m < count; m++)
            for (int br = 0; br < scaleRows; br++)
                for (int bc = 0; bc < scaleCols; bc++)
                {
                    float amax = 0f;
                    for (int r = br * blockRows; r < Math.Min(rows, (br + 1) * blockRows); r++)
                        for (int c = bc * blockCols; c < Math.Min(cols, (bc + 1) * blockCols); c++)
                            amax = MathF.Max(amax, MathF.Abs(w[((long)m * rows + r) * cols + c]));
                    Assert.Equal(amax / 448f, scaleInv[(m * scaleRows + br) * scaleCols + bc]);
                }

        // dequantised by the reference backend (DequantizeFp8), element by element against the bound
        using var dd = Upload(data);
        using var ds = Upload(scaleInv);
        using var dy = Poisoned(w.Length);
        ReferenceOps.DequantizeFp8(WeightMatrix.Fp8(dd.View, ds.View, rows, cols, blockRows, blockCols, count), dy.View);
        var deq = dy.ToArray();
        for (long i = 0; i < w.Length; i++)
        {
            long m = i / ((long)rows * cols), r = i / cols % rows, c = i % cols;
            float scale = scaleInv[(m * scaleRows + r / blockRows) * scaleCols + c / blockCols];
            double bound = Math.ScaleB(Math.Abs(w[i]), -4) + Math.ScaleB(scale, -10) + Math.ScaleB(Math.Abs(deq[i]), -8);
            double error = Math.Abs((double)w[i] - deq[i]);
            Assert.True(error <= bound, $"w[{i}] = {w[i]:R} -> {deq[i]:R}: |error| {error:g4} > {bound:g4} (scaleInv {scale:R})");
        }
    }

    [Fact]
    public void EachBlocksLargestElementGetsTheLargestCode()
    {
        var w = Int4GroupQuantizerTests.Gaussian(256 * 256, 3);
        var (data, _) = Fp8BlockQuantizer.Quantize(w, 256, 256);
        for (int block = 0; block < 4; block++)
        {
            int r0 = block / 2 * 128, c0 = block % 2 * 128;
            int best = -1;
            for (int r = r0; r < r0 + 128; r++)
                for (int c = c0; c < c0 + 128; c++)
                    if (best < 0 || MathF.Abs(w[r * 256 + c]) > MathF.Abs(w[best]))
                        best = r * 256 + c;
            Assert.Equal(w[best] > 0 ? 0x7E : 0xFE, data[best].Bits); // ±448, never NaN
        }
        Assert.DoesNotContain(data, d => d.IsNaN);
    }

    [Fact]
    public void AllZeroBlocksGetScaleOneAndTinyBlocksAPositiveScale()
    {
        // [2, 3] blocks of 2 x 2: block (0, 0) all zero, (0, 1) tiny enough that amax / 448 underflows, the rest normal
        var w = new float[4 * 6];
        w[0 * 6 + 2] = float.Epsilon; // block (0, 1)
        w[1 * 6 + 3] = -float.Epsilon;
        for (int r = 0; r < 4; r++)
            for (int c = 4; c < 6; c++)
                w[r * 6 + c] = 0.5f + r - c;
        w[2 * 6 + 0] = 1e-30f;
        var (data, scaleInv) = Fp8BlockQuantizer.Quantize(w, 4, 6, 2, 2);
        Assert.Equal(1f, scaleInv[0]);
        Assert.Equal(float.Epsilon, scaleInv[1]);
        Assert.Equal(1e-30f / 448f, scaleInv[3]);
        Assert.Equal(0, data[0].Bits);
        Assert.Equal(0x38, data[0 * 6 + 2].Bits);   // epsilon / epsilon = 1
        Assert.Equal(0xB8, data[1 * 6 + 3].Bits);   // -1
        Assert.Equal(0x7E, data[2 * 6 + 0].Bits);   // the block's amax: 448
    }

    [Fact]
    public void StackBlocksNeverSpanTwoMatrices()
    {
        // two [3, 4] matrices, 2 x 4 blocks: matrix 1's first block row is rows 0..1 of matrix 1, not row 2 of matrix 0
        var w = new float[2 * 3 * 4];
        for (int i = 0; i < w.Length; i++)
            w[i] = i < 12 ? 1f : 100f;
        var (_, scaleInv) = Fp8BlockQuantizer.Quantize(w, 3, 4, blockRows: 2, blockCols: 4, count: 2);
        Assert.Equal([1f / 448, 1f / 448, 100f / 448, 100f / 448], scaleInv);
    }

    [Fact]
    public void LargeMatricesQuantiseTheSameInParallel()
    {
        // above the parallel threshold (2^20 weights): each block row equals that block row quantised alone
        const int rows = 1100, cols = 1000;
        var w = Int4GroupQuantizerTests.Gaussian(rows * cols, 41);
        var (data, scaleInv) = Fp8BlockQuantizer.Quantize(w, rows, cols);
        foreach (int blockRow in new[] { 0, 3, 8 }) // 8 is the ragged last one, 76 rows
        {
            int first = blockRow * 128, count = Math.Min(128, rows - first);
            var (one, scales) = Fp8BlockQuantizer.Quantize(w.AsSpan(first * cols, count * cols), count, cols);
            Assert.Equal(one, data.AsSpan(first * cols, count * cols).ToArray());
            Assert.Equal(scales, scaleInv.AsSpan(blockRow * 8, 8).ToArray());
        }
    }

    [Fact]
    public void BadInputsAreRefusedNamingTheParameter()
    {
        var w = new float[12];
        Throws<ArgumentException>(() => Fp8BlockQuantizer.Quantize(w, 3, 5), "w", "count * rows * cols = 1 * 3 * 5 = 15");
        Throws<ArgumentException>(() => Fp8BlockQuantizer.Quantize(w, 3, 2, count: 3), "w", "count * rows * cols = 3 * 3 * 2 = 18");
        Throws<ArgumentOutOfRangeException>(() => Fp8BlockQuantizer.Quantize(w, 3, 4, blockRows: 0), "blockRows", "at least 1");
        Throws<ArgumentOutOfRangeException>(() => Fp8BlockQuantizer.Quantize(w, 3, 4, blockCols: -1), "blockCols", "at least 1");
        Throws<ArgumentOutOfRangeException>(() => Fp8BlockQuantizer.Quantize(w, 3, 4, count: 0), "count", "at least 1");
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            w[7] = bad;
            Throws<ArgumentException>(() => Fp8BlockQuantizer.Quantize(w, 3, 4), "w", "w[7]");
        }
    }
}
