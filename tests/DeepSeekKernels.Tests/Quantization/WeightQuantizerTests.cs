using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Quantization;

/// <summary>
/// <see cref="WeightQuantizer.Upload"/>: each scheme gives a weight of that scheme whose bytes are the host quantiser's,
/// every buffer goes to the owner, Linear over it matches the host dequantisation, and bad requests are refused.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class WeightQuantizerTests
{
    [Theory]
    [InlineData(WeightScheme.Dense, 1)]
    [InlineData(WeightScheme.Fp8Block, 2)]
    [InlineData(WeightScheme.Int4Group, 3)]
    public void UploadStoresTheHostQuantisersBytesAndHandsOverEveryBuffer(WeightScheme scheme, int buffers)
    {
        const int count = 2, rows = 24, cols = 256;
        var w = Int4GroupQuantizerTests.Gaussian(count * rows * cols, 17);
        var owner = new List<IDisposable>();
        try
        {
            var weight = WeightQuantizer.Upload(CpuRuntime, w, rows, cols, count, scheme, owner);
            Assert.Equal((scheme, rows, cols, count), (weight.Scheme, weight.Rows, weight.Cols, weight.Count));
            Assert.Equal(buffers, owner.Count); // data (+ scales (+ zeros))

            // every matrix of the stack through Linear with one-hot rows: exactly the host dequantisation
            float[] expected = scheme switch
            {
                WeightScheme.Dense => w.Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray(),
                WeightScheme.Fp8Block => Fp8Dequantised(w, rows, cols, count),
                _ => Int4Dequantised(w, count * rows, cols),
            };
            var x = new float[cols * cols];
            for (int c = 0; c < cols; c++)
                x[c * cols + c] = 1f;
            using var dx = Upload(x);
            using var dy = Poisoned(cols * rows);
            for (int m = 0; m < count; m++)
            {
                ReferenceOps.Linear(dx.View, weight.Matrix(m), default, dy.View);
                var actual = dy.ToArray();
                var want = new float[actual.Length];
                for (int c = 0; c < cols; c++)
                    for (int r = 0; r < rows; r++)
                        want[c * rows + r] = expected[((long)m * rows + r) * cols + c] + 0f;
                Exact(want, actual.Select(v => v + 0f).ToArray(), $"{scheme} matrix {m}");
            }
        }
        finally
        {
            foreach (var buffer in owner)
                buffer.Dispose();
        }
    }

    static float[] Fp8Dequantised(float[] w, int rows, int cols, int count)
    {
        var (data, scaleInv) = Fp8BlockQuantizer.Quantize(w, rows, cols, count: count);
        int scaleRows = (rows + 127) / 128, scaleCols = (cols + 127) / 128;
        var result = new float[w.Length];
        for (long i = 0; i < w.Length; i++)
        {
            long m = i / ((long)rows * cols), r = i / cols % rows, c = i % cols;
            result[i] = Float8E4M3.Dequantize(data[i], scaleInv[(m * scaleRows + r / 128) * scaleCols + c / 128]);
        }
        return result;
    }

    static float[] Int4Dequantised(float[] w, int rows, int cols)
    {
        var (packed, scales, zeros) = Int4GroupQuantizer.Quantize(w, rows, cols);
        return Int4GroupQuantizer.Dequantize(packed, scales, zeros, rows, cols);
    }

    [Fact]
    public void BadRequestsAreRefusedBeforeAnythingIsUploaded()
    {
        var owner = new List<IDisposable>();
        var w = new float[4 * 96];
        Throws<ArgumentException>(() => WeightQuantizer.Upload(CpuRuntime, w, 4, 96, 1, WeightScheme.Int4Group, owner), "cols", "cols = 96 is not a multiple of groupSize = 128");
        Throws<ArgumentOutOfRangeException>(() => WeightQuantizer.Upload(CpuRuntime, w, 4, 96, 1, WeightScheme.Int4Group, owner, groupSize: 48), "groupSize", "(got 48)");
        Throws<ArgumentException>(() => WeightQuantizer.Upload(CpuRuntime, w, 4, 96, 2, WeightScheme.Fp8Block, owner), "w", "count * rows * cols = 2 * 4 * 96 = 768");
        Throws<ArgumentOutOfRangeException>(() => WeightQuantizer.Upload(CpuRuntime, w, 4, 96, 1, (WeightScheme)7, owner), "scheme", "got 7");
        Throws<ArgumentNullException>(() => WeightQuantizer.Upload(null!, w, 4, 96, 1, WeightScheme.Dense, owner), "runtime", "runtime is null");
        Throws<ArgumentNullException>(() => WeightQuantizer.Upload(CpuRuntime, w, 4, 96, 1, WeightScheme.Dense, null!), "owner", "owner is null");
        w[5] = float.NaN;
        Throws<ArgumentException>(() => WeightQuantizer.Upload(CpuRuntime, w, 4, 96, 1, WeightScheme.Fp8Block, owner), "w", "w[5]");
        Assert.Empty(owner);
    }
}
