using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The reference Linear's fast paths: the vectorised FP8 dequantisation against <see cref="Float8E4M3.Dequantize"/>
/// for every code and awkward scales, and outputs that do not depend on how many x rows a call has (decode of one
/// token gives the bits the same token gets in a prefill batch, which the cached-decode tests rely on).
/// </summary>
[Collection(nameof(DeviceCollection))]
public class LinearDecodePathTests
{
    /// <summary>Scales that round to ties, overflow to infinity, make subnormal products, or are not finite.</summary>
    static readonly float[] Scales =
    [
        0.0123f, -3.5e-3f, 1f, 1f + 1f / 256, 1f + 3f / 256, 1e-40f, MathF.ScaleB(1f, -140), 1e30f, 3e38f, float.MaxValue,
        0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0.7391f, 2.2e-4f,
    ];

    [Fact]
    public void Fp8DequantisationIsBitExactForEveryCodeAndScale()
    {
        // per scale two rows of all 256 codes: as they are (the 32-code chunks holding the NaN codes 0x7F, 0xFF), and
        // with the NaN codes replaced by zeros (every chunk finite); one scale per row, two 128-column blocks per row
        const int cols = 256;
        int rows = 2 * Scales.Length;
        var codes = new Float8E4M3[rows * cols];
        var scales = new float[rows * 2];
        for (int s = 0; s < Scales.Length; s++)
        {
            for (int c = 0; c < cols; c++)
            {
                codes[2 * s * cols + c] = Float8E4M3.FromBits((byte)c);
                codes[(2 * s + 1) * cols + c] = Float8E4M3.FromBits((c & 0x7F) == 0x7F ? (byte)(c & 0x80) : (byte)c);
            }
            scales.AsSpan(4 * s, 4).Fill(Scales[s]);
        }
        using var data = Upload(codes);
        using var scaleBuffer = Upload(scales);
        var weight = WeightMatrix.Fp8(data.View, scaleBuffer.View, rows, cols, blockRows: 1, blockCols: 128);
        using var dy = Poisoned(rows * cols);

        ReferenceOps.DequantizeFp8(weight, dy.View);

        var actual = dy.ToArray();
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                int i = r * cols + c;
                float scale = scales[2 * r], expected = Float8E4M3.Dequantize(codes[i], scale);
                string what = $"code 0x{codes[i].Bits:X2} * scale {scale:R}";
                if (float.IsNaN(expected))
                    Assert.True(float.IsNaN(actual[i]), $"{what}: expected NaN, got {actual[i]:R}");
                else
                    Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual[i]),
                        $"{what}: expected {expected:R}, got {actual[i]:R} (bitwise)");
            }
        }
    }

    public static TheoryData<string, int, int> BatchShapes()
    {
        var data = new TheoryData<string, int, int>();
        // in: even, odd, a multiple of the vector width, and FP8 blocks with a ragged last one; out: a partial group of 4
        foreach (string form in new[] { "f32", "bf16", "fp8" })
        {
            data.Add(form, 301, 520);
            data.Add(form, 130, 33);
            data.Add(form, 67, 256);
        }
        // INT4 in groups of 128: one task, and many tasks run in parallel
        data.Add("int4", 64, 256);
        data.Add("int4", 520, 384);
        return data;
    }

    /// <summary>
    /// A batch of 41 rows (split across threads) against float64, and each of its rows run alone (one thread): the
    /// lone row's outputs are the batch's, bit for bit.
    /// </summary>
    [Theory, MemberData(nameof(BatchShapes))]
    public void EachRowAloneEqualsTheSameRowInABatch(string form, int outFeatures, int inFeatures)
    {
        const int rows = 41;
        using var weight = new TestWeight(form, 1, outFeatures, inFeatures, seed: outFeatures + 7 * inFeatures, groupSize: 128);
        var x = RandomValues(rows * inFeatures, 5);
        var bias = RandomValues(outFeatures, 6);
        using var dx = Upload(x);
        using var db = Upload(bias);
        using var batch = Poisoned(rows * outFeatures);

        ReferenceOps.Linear(dx.View, weight.Matrix, db.View, batch.View);

        var batched = batch.ToArray();
        var (expected, scale) = Float64Linear(x, weight.Values, bias, rows, inFeatures, outFeatures);
        Close(expected, scale, batched, $"{form} batch");

        for (int r = 0; r < rows; r++)
        {
            using var dxRow = Upload(x.AsSpan(r * inFeatures, inFeatures).ToArray());
            using var alone = Poisoned(outFeatures);
            ReferenceOps.Linear(dxRow.View, weight.Matrix, db.View, alone.View);
            Exact(batched.AsSpan(r * outFeatures, outFeatures), alone.ToArray(), $"{form} row {r} alone");
        }
    }
}
