using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Helpers the op tests share: seeded data, weights in every stored form, device upload with poisoned guards,
/// and comparison against float64 oracles that the tests write themselves.
/// </summary>
public static class OpTestSupport
{
    /// <summary>The runtime the op tests use: ILGPU's CPU accelerator (the reference uses its buffers in place).</summary>
    public static DeviceRuntime CpuRuntime => TestDevices.Cpu;

    /// <summary>The reference backend on <see cref="CpuRuntime"/>.</summary>
    public static DeepSeekKernels.Ops ReferenceOps => DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Reference);

    /// <summary>Values in ±[0.05, 3), seeded (never all zeros).</summary>
    public static float[] RandomValues(int length, int seed, float scale = 1f)
    {
        var values = TestData.Activations(length, seed);
        if (scale != 1f)
        {
            for (int i = 0; i < values.Length; i++)
                values[i] *= scale;
        }
        return values;
    }

    public static float[] Nan(long length)
    {
        var values = new float[length];
        Array.Fill(values, float.NaN);
        return values;
    }

    public static DeviceBuffer<T> Upload<T>(T[] values) where T : unmanaged => CpuRuntime.Upload<T>(values);

    /// <summary>A float32 output buffer full of NaN, so an element the op does not write fails the comparison.</summary>
    public static DeviceBuffer<float> Poisoned(long length) => CpuRuntime.Upload<float>(Nan(length));

    /// <summary>A weight in a stored form ("f32", "bf16", "fp8", "int4"), and its exact float32 values.</summary>
    public sealed class TestWeight : IDisposable
    {
        readonly List<IDisposable> _buffers = [];

        public TestWeight(string form, int count, int rows, int cols, int seed, int blockRows = 128, int blockCols = 128,
            DeviceRuntime? runtime = null, int groupSize = 32)
        {
            runtime ??= CpuRuntime;
            DeviceBuffer<T> Upload<T>(T[] values) where T : unmanaged => runtime.Upload<T>(values);
            Values = new float[(long)count * rows * cols];
            var random = new Random(seed);
            switch (form)
            {
                case "f32":
                {
                    var data = RandomValues((int)Values.Length, seed, 0.3f);
                    data.CopyTo(Values, 0);
                    var buffer = Upload(data);
                    _buffers.Add(buffer);
                    Matrix = WeightMatrix.Dense(buffer.View, rows, cols, count);
                    break;
                }
                case "bf16":
                {
                    var data = RandomValues((int)Values.Length, seed, 0.3f).Select(BFloat16.FromSingle).ToArray();
                    for (int i = 0; i < data.Length; i++)
                        Values[i] = data[i].ToSingle();
                    var buffer = Upload(data);
                    _buffers.Add(buffer);
                    Matrix = WeightMatrix.Dense(buffer.View, rows, cols, count);
                    break;
                }
                case "fp8":
                {
                    int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
                    var bits = new Float8E4M3[Values.Length];
                    for (int i = 0; i < bits.Length; i++)
                    {
                        byte b;
                        do b = (byte)random.Next(256); while ((b & 0x7F) == 0x7F); // every finite e4m3fn value, no NaN
                        bits[i] = Float8E4M3.FromBits(b);
                    }
                    // scales like DeepSeek's: small positive numbers with full mantissas
                    var scales = new float[count * scaleRows * scaleCols];
                    for (int i = 0; i < scales.Length; i++)
                        scales[i] = (0.5f + random.NextSingle()) * MathF.ScaleB(1f, -random.Next(4, 9));
                    // the expected dequantised values, computed here: fp8 * scale in float32, rounded once to bf16
                    for (int m = 0; m < count; m++)
                        for (int r = 0; r < rows; r++)
                            for (int c = 0; c < cols; c++)
                            {
                                long i = ((long)m * rows + r) * cols + c;
                                float scale = scales[(m * scaleRows + r / blockRows) * scaleCols + c / blockCols];
                                Values[i] = BFloat16.FromSingle(bits[i].ToSingle() * scale).ToSingle();
                            }
                    var data = Upload(bits);
                    var scaleBuffer = Upload(scales);
                    _buffers.Add(data);
                    _buffers.Add(scaleBuffer);
                    Matrix = WeightMatrix.Fp8(data.View, scaleBuffer.View, rows, cols, blockRows, blockCols, count);
                    break;
                }
                case "int4":
                {
                    // every code; scales like a quantiser's (small, full bf16 mantissas); zero points mostly integers in
                    // 0..15 as quantisers make them, some fractional or outside 0..15 (read as they are)
                    int groups = cols / groupSize;
                    var codes = new byte[Values.Length];
                    for (int i = 0; i < codes.Length; i++)
                        codes[i] = (byte)random.Next(16);
                    var packed = new Int4x2[Values.Length / 2];
                    for (int i = 0; i < packed.Length; i++)
                        packed[i] = Int4x2.PackUnsigned(codes[2 * i], codes[2 * i + 1]);
                    var scales = new BFloat16[(long)count * rows * groups];
                    var zeros = new BFloat16[scales.Length];
                    for (int i = 0; i < scales.Length; i++)
                    {
                        scales[i] = BFloat16.FromSingle((0.5f + random.NextSingle()) * MathF.ScaleB(1f, -random.Next(4, 9)));
                        zeros[i] = BFloat16.FromSingle(random.Next(8) == 0 ? 20f * random.NextSingle() - 2f : random.Next(16));
                    }
                    // the expected dequantised values, computed here: (q - zero) * scale in float32, rounded once to bf16
                    for (long i = 0; i < Values.Length; i++)
                    {
                        long g = i / cols * groups + i % cols / groupSize;
                        Values[i] = BFloat16.FromSingle(((float)codes[i] - zeros[g].ToSingle()) * scales[g].ToSingle()).ToSingle();
                    }
                    var data = Upload(packed);
                    var scaleBuffer = Upload(scales);
                    var zeroBuffer = Upload(zeros);
                    _buffers.Add(data);
                    _buffers.Add(scaleBuffer);
                    _buffers.Add(zeroBuffer);
                    Matrix = WeightMatrix.Int4(data.View, scaleBuffer.View, zeroBuffer.View, rows, cols, groupSize, count);
                    break;
                }
                default:
                    throw new ArgumentOutOfRangeException(nameof(form), form, "f32, bf16, fp8 or int4");
            }
        }

        /// <summary>The weight as the ops take it.</summary>
        public WeightMatrix Matrix { get; }

        /// <summary>Its exact float32 values, [count, rows, cols].</summary>
        public float[] Values { get; }

        public void Dispose()
        {
            foreach (var buffer in _buffers)
                buffer.Dispose();
        }
    }

    /// <summary>
    /// Every element close to its float64 oracle: |actual - expected| &lt;= relative * scale + absolute, where scale is
    /// the sum of the magnitudes of the terms that made the value (so long dot products get a fair bound). NaN
    /// never passes.
    /// </summary>
    public static void Close(double[] expected, double[] scale, ReadOnlySpan<float> actual, string what, double relative = 1e-5,
        double absolute = 1e-6)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(double.IsNaN(expected[i]), $"{what}[{i}]: the oracle is NaN (bad test data)");
            Assert.False(float.IsNaN(actual[i]), $"{what}[{i}]: got NaN (not written?), expected {expected[i]}");
            double bound = relative * scale[i] + absolute;
            Assert.True(Math.Abs(actual[i] - expected[i]) <= bound,
                $"{what}[{i}]: expected {expected[i]}, got {actual[i]} (|diff| {Math.Abs(actual[i] - expected[i]):g3} > {bound:g3})");
        }
    }

    /// <summary>As <see cref="Close(double[], double[], ReadOnlySpan{float}, string, double, double)"/> with scale |expected|.</summary>
    public static void Close(double[] expected, ReadOnlySpan<float> actual, string what, double relative = 1e-5, double absolute = 1e-6) =>
        Close(expected, expected.Select(Math.Abs).ToArray(), actual, what, relative, absolute);

    /// <summary>Bitwise equal (no NaN allowed).</summary>
    public static void Exact(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"{what}[{i}]: got NaN (not written?), expected {expected[i]}");
            Assert.True(BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(actual[i]),
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (bitwise)");
        }
    }

    /// <summary>Asserts every element is NaN (a guard region the op must not write).</summary>
    public static void AllNaN(ReadOnlySpan<float> values, string what)
    {
        for (int i = 0; i < values.Length; i++)
            Assert.True(float.IsNaN(values[i]), $"{what}[{i}] was written ({values[i]}); it is outside the op's output");
    }

    /// <summary>
    /// Runs an op that reads a bad device-held index: the op itself returns (a kernel cannot throw), and the runtime's
    /// next synchronisation throws <see cref="DeviceIndexException"/> naming the op, the operand and the value.
    /// </summary>
    public static DeviceIndexException DeviceIndexError(DeviceRuntime runtime, Action call, string op, string operand, string fragment)
    {
        call();
        var e = Assert.Throws<DeviceIndexException>(runtime.Synchronize);
        Assert.Equal((op, operand), (e.Site.Op, e.Site.Operand));
        Assert.StartsWith(op + ": ", e.Message);
        Assert.Contains(fragment, e.Message);
        runtime.Synchronize(); // the word was cleared: the runtime is usable again
        return e;
    }

    public static T Throws<T>(Action call, string parameter, string fragment) where T : Exception
    {
        var e = Assert.Throws<T>(call);
        if (e is ArgumentException argument)
            Assert.Equal(parameter, argument.ParamName);
        Assert.Contains(fragment, e.Message);
        return e;
    }

    /// <summary>
    /// HeadwiseLinear in float64: y[t, h, o] = sum_i W[h][o, i] x[t, h, i] (transposed: W[h][i, o]), W given as its
    /// dequantised values [heads, rows, cols], with each output's sum of |terms| as the scale for <c>Close</c>.
    /// </summary>
    public static (double[] Expected, double[] Scale) Float64Headwise(float[] weight, float[] x, int tokens, int heads, int rows, int cols, bool transpose)
    {
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        var expected = new double[tokens * heads * outDim];
        var scale = new double[expected.Length];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
                for (int o = 0; o < outDim; o++)
                {
                    int index = (t * heads + h) * outDim + o;
                    for (int i = 0; i < inDim; i++)
                    {
                        // W[h] is [rows, cols]: y = W x uses W[o, i]; transposed, y = W^T x uses W[i, o]
                        double w = transpose ? weight[(h * rows + i) * cols + o] : weight[(h * rows + o) * cols + i];
                        double term = w * x[(t * heads + h) * inDim + i];
                        expected[index] += term;
                        scale[index] += Math.Abs(term);
                    }
                }
        return (expected, scale);
    }

    /// <summary>
    /// x [rows, inFeatures] @ W^T + bias in float64 (W given as its dequantised float values [outFeatures, inFeatures]),
    /// with each output's sum of |terms| as the scale for <c>Close</c>.
    /// </summary>
    public static (double[] Expected, double[] Scale) Float64Linear(float[] x, float[] weight, float[] bias, int rows, int inFeatures, int outFeatures)
    {
        var expected = new double[rows * outFeatures];
        var scale = new double[expected.Length];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outFeatures; o++)
            {
                double sum = bias[o], magnitude = Math.Abs(bias[o]);
                for (int c = 0; c < inFeatures; c++)
                {
                    double term = (double)x[r * inFeatures + c] * weight[(long)o * inFeatures + c];
                    sum += term;
                    magnitude += Math.Abs(term);
                }
                expected[r * outFeatures + o] = sum;
                scale[r * outFeatures + o] = magnitude;
            }
        return (expected, scale);
    }
}
