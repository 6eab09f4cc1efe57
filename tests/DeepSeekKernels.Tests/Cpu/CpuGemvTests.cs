using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// <see cref="CpuGemv.Run"/> against <see cref="LinearReference.Run"/> on the same <see cref="WeightData"/>: every weight form
/// at every ISA level this machine has (lower ones forced), over shapes with vector tails, partial FP8 blocks, INT4 groups of
/// 16, 32 and 128, 0 to 9 x rows, padded strides, with and without bias, on pools of 1 and 3 threads. Every output within
/// 1e-5 * sum |x * w| + 1e-6 of the reference's; outputs poisoned with NaN, so every element must be written, and the
/// padding around them must stay NaN.
/// </summary>
public sealed unsafe class CpuGemvTests
{
    static readonly int[] Cols = [1, 7, 16, 129, 1000, 1024];
    static readonly int[] Outs = [1, 3, 5, 33, 300];
    static readonly int[] XRows = [0, 1, 2, 3, 8, 9];

    // shared by the class's tests, made once
    static readonly CpuThreadPool s_pool1 = new(1), s_pool3 = new(3);

    /// <summary>Form x ISA level (named as <see cref="CpuIsaLevel"/>, which is internal).</summary>
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string form in new[] { "f32", "bf16", "fp8", "int4" })
            foreach (string level in new[] { "Portable", "Avx2", "Avx512" })
                data.Add(form, level);
        return data;
    }

    /// <summary>(cols, block or group parameters) per form: INT4 cols are multiples of its group.</summary>
    static IEnumerable<(int Cols, int BlockRows, int BlockCols, int Group)> Layouts(string form)
    {
        switch (form)
        {
            case "fp8":
                foreach (int cols in Cols)
                {
                    yield return (cols, 128, 128, 0);
                    yield return (cols, 16, 16, 0);
                    yield return (cols, 3, 24, 0);
                }
                break;
            case "int4":
                foreach (var (cols, group) in new[] { (32, 32), (96, 32), (1024, 32), (128, 128), (384, 128), (1024, 128), (16, 16), (48, 16) })
                    yield return (cols, 0, 0, group);
                break;
            default:
                foreach (int cols in Cols)
                    yield return (cols, 0, 0, 0);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesReference(string form, string levelName)
    {
        var level = Enum.Parse<CpuIsaLevel>(levelName);
        Assert.SkipWhen(level > CpuIsa.Detected, $"this CPU runs at most {CpuIsa.Detected}");
        using var scope = CpuIsa.Force(level);
        Assert.Equal(level, CpuIsa.Level);
        int index = 0, checkedCases = 0;
        foreach (var (cols, blockRows, blockCols, group) in Layouts(form))
        {
            foreach (int outs in Outs)
            {
                using var weight = new HostWeight(form, outs, cols, blockRows, blockCols, group, seed: 1000 + index);
                foreach (int rows in XRows)
                {
                    index++;
                    bool bias = index % 2 == 0;
                    int xPad = index % 3 == 0 ? 0 : 5, yPad = index % 3 == 1 ? 0 : 3;
                    Check(weight, rows, bias, xPad, yPad, index % 2 == 0 ? s_pool3 : s_pool1, $"{form} {level} {outs}x{cols} b{blockRows}x{blockCols} g{group} rows {rows}");
                    if (outs == 300 && rows is 1 or 9)
                        Check(weight, rows, !bias, yPad, xPad, index % 2 == 0 ? s_pool1 : s_pool3, $"{form} {level} {outs}x{cols} rows {rows} (other pool)");
                    checkedCases++;
                }
            }
        }
        Assert.True(checkedCases > 100);
    }

    /// <summary>An FP8 NaN code (S.1111.111) makes its output row NaN for every x row, as in the reference; the other rows are finite.</summary>
    [Theory]
    [InlineData("Portable")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void Fp8NanCodeGivesNan(string levelName)
    {
        var level = Enum.Parse<CpuIsaLevel>(levelName);
        Assert.SkipWhen(level > CpuIsa.Detected, $"this CPU runs at most {CpuIsa.Detected}");
        using var scope = CpuIsa.Force(level);
        using var weight = new HostWeight("fp8", 9, 160, 128, 128, 0, seed: 7);
        weight.Fp8Codes[2 * 160 + 37] = 0x7F;  // row 2, in a full 16-column step
        weight.Fp8Codes[5 * 160 + 150] = 0xFF; // row 5, in the partial block
        int rows = 2;
        var x = Pinned(rows * 160, 3);
        var y = new float[rows * 9];
        var yRef = new float[rows * 9];
        fixed (float* xp = x, yp = y, rp = yRef)
        {
            Array.Fill(y, 1f);
            CpuGemv.Run(s_pool1, weight.Data, xp, 160, rows, null, yp, 9);
            LinearReference.Run([new LinearReference.Product(weight.Data, (nint)xp, 160, rows, 0, (nint)rp, 9)]);
        }
        for (int r = 0; r < rows; r++)
        {
            for (int o = 0; o < 9; o++)
            {
                bool nan = o is 2 or 5;
                Assert.Equal(nan, float.IsNaN(yRef[r * 9 + o]));
                Assert.True(nan == float.IsNaN(y[r * 9 + o]), $"row {r} out {o}: {y[r * 9 + o]}");
            }
        }
    }

    /// <summary>An FP8 block scale of 2^8 or more (scale * 2^120 overflows float32) takes the scalar decode: still the reference's values.</summary>
    [Theory]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void Fp8LargeScaleMatchesReference(string levelName)
    {
        var level = Enum.Parse<CpuIsaLevel>(levelName);
        Assert.SkipWhen(level > CpuIsa.Detected, $"this CPU runs at most {CpuIsa.Detected}");
        using var scope = CpuIsa.Force(level);
        using var weight = new HostWeight("fp8", 40, 300, 16, 128, 0, seed: 9);
        weight.Fp8Scales[1] = 300f;     // block row 0, block column 1
        weight.Fp8Scales[3 + 2] = 1e30f; // block row 1, block column 2 (the partial one)
        weight.Decode();
        foreach (int rows in new[] { 1, 3, 5 })
            Check(weight, rows, rows == 3, 2, 1, s_pool1, $"fp8 {level} large scales, rows {rows}");
    }

    [Fact]
    public void ForceLowersOnlyThisThreadAndRestores()
    {
        var detected = CpuIsa.Level;
        using (CpuIsa.Force(CpuIsaLevel.Portable))
        {
            Assert.Equal(CpuIsaLevel.Portable, CpuIsa.Level);
            var other = CpuIsaLevel.Portable;
            var thread = new Thread(() => other = CpuIsa.Level);
            thread.Start();
            thread.Join();
            Assert.Equal(detected, other);
        }
        Assert.Equal(detected, CpuIsa.Level);
    }

    void Check(HostWeight weight, int rows, bool withBias, int xPad, int yPad, CpuThreadPool pool, string what)
    {
        var w = weight.Data;
        int cols = w.Cols, outs = w.Rows;
        long xStride = cols + xPad, yStride = outs + yPad;
        var x = Pinned((int)Math.Max(1, rows * xStride), 11 + rows);
        var bias = Pinned(outs, 23);
        var y = GC.AllocateArray<float>((int)(rows * yStride + 16), pinned: true);
        Array.Fill(y, float.NaN);
        var yRef = GC.AllocateArray<float>(Math.Max(1, rows * outs), pinned: true);
        fixed (float* xp = x, bp = bias, yp = y, rp = yRef)
        {
            CpuGemv.Run(pool, w, xp, xStride, rows, withBias ? bp : null, yp, yStride);
            LinearReference.Run([new LinearReference.Product(w, (nint)xp, xStride, rows, withBias ? (nint)bp : 0, (nint)rp, outs)]);
        }
        for (int r = 0; r < rows; r++)
        {
            for (int o = 0; o < outs; o++)
            {
                double scale = 0;
                for (int c = 0; c < cols; c++)
                    scale += Math.Abs((double)x[r * xStride + c] * weight.Values[(long)o * cols + c]);
                if (withBias)
                    scale += Math.Abs(bias[o]);
                float got = y[r * yStride + o], expected = yRef[r * outs + o];
                Assert.False(float.IsNaN(got), $"{what}: y[{r}, {o}] not written");
                double bound = 1e-5 * scale + 1e-6;
                Assert.True(Math.Abs(got - expected) <= bound, $"{what}: y[{r}, {o}] = {got}, reference {expected} (bound {bound:g3})");
            }
            for (long o = outs; o < yStride && r * yStride + o < y.Length; o++)
                Assert.True(float.IsNaN(y[r * yStride + o]), $"{what}: y[{r}, {o}] is padding and was written");
        }
        for (long i = rows * yStride; i < y.Length; i++)
            Assert.True(float.IsNaN(y[i]), $"{what}: y[{i}] is past the output and was written");
    }

    internal static float[] Pinned(int length, int seed)
    {
        var values = GC.AllocateArray<float>(length, pinned: true);
        var random = new Random(seed);
        for (int i = 0; i < length; i++)
            values[i] = random.NextSingle() * 2 - 1;
        return values;
    }

    /// <summary>One matrix in a stored form over pinned arrays, its <see cref="WeightData"/>, and its dequantised values (the reference's decode).</summary>
    internal sealed class HostWeight : IDisposable
    {
        readonly float[] _f32 = [];
        readonly ushort[] _u16 = [], _scales16 = [], _zeros16 = [];
        public readonly float[] Fp8Scales = [];
        public readonly byte[] Fp8Codes = [];
        readonly byte[] _int4 = [];

        public HostWeight(string form, int rows, int cols, int blockRows, int blockCols, int group, int seed)
        {
            var random = new Random(seed);
            long n = (long)rows * cols;
            switch (form)
            {
                case "f32":
                    _f32 = GC.AllocateArray<float>((int)n, pinned: true);
                    for (int i = 0; i < n; i++)
                        _f32[i] = random.NextSingle() - 0.5f;
                    Data = new WeightData(ElementType.F32, Address(_f32), 0, rows, cols, 1, 0, 0);
                    break;
                case "bf16":
                    _u16 = GC.AllocateArray<ushort>((int)n, pinned: true);
                    for (int i = 0; i < n; i++)
                        _u16[i] = BFloat16.FromSingle(random.NextSingle() - 0.5f).Bits;
                    Data = new WeightData(ElementType.BF16, Address(_u16), 0, rows, cols, 1, 0, 0);
                    break;
                case "fp8":
                {
                    Fp8Codes = GC.AllocateArray<byte>((int)n, pinned: true);
                    for (int i = 0; i < n; i++)
                    {
                        byte b;
                        do b = (byte)random.Next(256); while ((b & 0x7F) == 0x7F); // every finite code, subnormals included
                        Fp8Codes[i] = b;
                    }
                    int scaleCount = (rows + blockRows - 1) / blockRows * ((cols + blockCols - 1) / blockCols);
                    Fp8Scales = GC.AllocateArray<float>(scaleCount, pinned: true);
                    for (int i = 0; i < scaleCount; i++)
                        Fp8Scales[i] = (0.5f + random.NextSingle()) * MathF.ScaleB(1f, -random.Next(4, 9));
                    Data = new WeightData(ElementType.Fp8E4M3, Address(Fp8Codes), Address(Fp8Scales), rows, cols, 1, blockRows, blockCols);
                    break;
                }
                default:
                {
                    _int4 = GC.AllocateArray<byte>((int)(n / 2), pinned: true);
                    random.NextBytes(_int4);
                    int groups = rows * (cols / group);
                    _scales16 = GC.AllocateArray<ushort>(groups, pinned: true);
                    _zeros16 = GC.AllocateArray<ushort>(groups, pinned: true);
                    for (int i = 0; i < groups; i++)
                    {
                        _scales16[i] = BFloat16.FromSingle((0.5f + random.NextSingle()) * MathF.ScaleB(1f, -random.Next(4, 9))).Bits;
                        _zeros16[i] = BFloat16.FromSingle(random.Next(8) == 0 ? 20f * random.NextSingle() - 2f : random.Next(16)).Bits;
                    }
                    Data = new WeightData(ElementType.Int4, Address(_int4), Address(_scales16), rows, cols, 1, 0, 0, Address(_zeros16), group);
                    break;
                }
            }
            Values = new float[n];
            Decode();
        }

        /// <summary>Decodes <see cref="Values"/> again (after a test changed codes or scales).</summary>
        public void Decode() => Data.DecodeRows(0, Data.Rows, Values);

        public WeightData Data { get; }

        /// <summary>The dequantised values, [rows, cols].</summary>
        public float[] Values { get; }

        static nint Address<T>(T[] pinned) where T : unmanaged
        {
            fixed (T* p = pinned)
                return (nint)p;
        }

        public void Dispose()
        {
        }
    }
}
