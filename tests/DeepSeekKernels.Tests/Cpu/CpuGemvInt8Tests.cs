using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;
using static DeepSeekKernels.Tests.Cpu.CpuGemvTests;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// <see cref="CpuInt4Dot.Int8"/>: INT4 weights against activations quantised per group to int8, at every ISA level this
/// machine has. Three claims, each checked on its own: the quantisation is exactly the documented one (the test quantises
/// independently, in scalar code); the product is exactly its documented formula, sum over groups of scale * d * (dot -
/// zero * sum(q)), within float32 rounding of a float64 evaluation; and it stays within its documented error of the exact
/// product (the reference's Linear): half an int8 step of each activation times the weight, plus the bf16 rounding the
/// reference applies to each weight. Outputs poisoned with NaN: every element written, the padding left alone.
/// </summary>
public sealed unsafe class CpuGemvInt8Tests
{
    static readonly CpuThreadPool s_pool1 = new(1), s_pool3 = new(3);

    public static TheoryData<string> Levels() => new("Portable", "Avx2", "Avx512");

    static CpuIsa.Scope? Force(string levelName, out CpuIsaLevel level)
    {
        level = Enum.Parse<CpuIsaLevel>(levelName);
        Assert.SkipWhen(level > CpuIsa.Detected, $"this CPU runs at most {CpuIsa.Detected}");
        return CpuIsa.Force(level);
    }

    /// <summary>The documented quantisation, scalar: q = clamp(round-to-even(x * (127 / max|x|)), -127, 127), d = max|x| / 127.</summary>
    static (sbyte[] Q, float[] D, int[] Sums) Quantize(float[] x, long offset, int cols, int group)
    {
        int groups = cols / group;
        var q = new sbyte[cols];
        var d = new float[groups];
        var sums = new int[groups];
        for (int g = 0; g < groups; g++)
        {
            float max = 0;
            for (int c = g * group; c < (g + 1) * group; c++)
                max = Math.Max(max, Math.Abs(x[offset + c]));
            float inv = max > 0 ? 127f / max : 0f;
            d[g] = max / 127f;
            for (int c = g * group; c < (g + 1) * group; c++)
            {
                float v = MathF.Round(x[offset + c] * inv, MidpointRounding.ToEven);
                q[c] = (sbyte)Math.Clamp(v, -127f, 127f);
                sums[g] += q[c];
            }
        }
        return (q, d, sums);
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void QuantisationIsTheDocumentedOneSplitIntoEvenAndOddColumns(string levelName)
    {
        using var scope = Force(levelName, out var level);
        foreach (var (cols, group) in new[] { (32, 32), (256, 64), (1024, 128), (384, 128) })
        {
            int rows = 3;
            long stride = cols + 5;
            var x = Pinned((int)(rows * stride), cols);
            for (int c = 0; c < group; c++)
                x[stride + c] = 0; // an all-zero group: d = 0, q = 0
            x[2 * stride + 7] = 1e30f; // a huge value: its group's other values round to 0
            var q = new sbyte[rows * cols];
            var d = new float[rows * (cols / group)];
            var sums = new int[rows * (cols / group)];
            fixed (float* xp = x, dp = d)
            fixed (sbyte* qp = q)
            fixed (int* sp = sums)
                CpuGemv.QuantizeInt8Split(xp, stride, rows, cols, group, qp, dp, sp, level);
            for (int r = 0; r < rows; r++)
            {
                var (eq, ed, es) = Quantize(x, r * stride, cols, group);
                for (int c = 0; c < cols; c++)
                {
                    int at = r * cols + (c % 2 == 0 ? c / 2 : cols / 2 + c / 2);
                    Assert.True(eq[c] == q[at], $"{levelName} {cols}/{group} row {r} col {c}: q {q[at]}, expected {eq[c]}");
                }
                for (int g = 0; g < cols / group; g++)
                {
                    Assert.Equal(ed[g], d[r * (cols / group) + g]);
                    Assert.Equal(es[g], sums[r * (cols / group) + g]);
                }
            }
            Assert.Equal(0f, d[cols / group]);
        }
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void ProductIsTheDocumentedFormulaAndWithinItsErrorOfTheExactOne(string levelName)
    {
        using var scope = Force(levelName, out _);
        int index = 0;
        foreach (var (cols, group) in new[] { (32, 32), (96, 32), (1024, 32), (128, 128), (384, 128), (1024, 128), (256, 64), (4096, 128) })
        {
            foreach (int outs in new[] { 1, 5, 33, 300 })
            {
                using var weight = new HostWeight("int4", outs, cols, 0, 0, group, seed: 500 + index);
                foreach (int rows in new[] { 0, 1, 2, 5, 8 })
                {
                    index++;
                    Check(weight, rows, withBias: index % 2 == 0, xPad: index % 3 == 0 ? 0 : 5, yPad: index % 3 == 1 ? 0 : 3,
                        index % 2 == 0 ? s_pool3 : s_pool1, $"{levelName} {outs}x{cols} g{group} rows {rows}");
                }
            }
        }
    }

    /// <summary>Other weight forms ignore the setting: the same outputs as the default.</summary>
    [Theory]
    [InlineData("bf16")]
    [InlineData("fp8")]
    [InlineData("f32")]
    public void OtherWeightFormsIgnoreIt(string form)
    {
        using var weight = new HostWeight(form, 37, 256, 128, 128, 0, seed: 9);
        var x = Pinned(2 * 256, 3);
        var y = new float[2 * 37];
        var y8 = new float[2 * 37];
        fixed (float* xp = x, yp = y, y8p = y8)
        {
            CpuGemv.Run(s_pool3, weight.Data, xp, 256, 2, null, yp, 37);
            CpuGemv.Run(s_pool3, weight.Data, xp, 256, 2, null, y8p, 37, CpuInt4Dot.Int8);
        }
        Assert.Equal(y, y8);
    }

    static void Check(HostWeight weight, int rows, bool withBias, int xPad, int yPad, CpuThreadPool pool, string what)
    {
        var w = weight.Data;
        int cols = w.Cols, outs = w.Rows, group = w.GroupSize, groups = cols / group;
        long xStride = cols + xPad, yStride = outs + yPad;
        var x = Pinned((int)Math.Max(1, rows * xStride), 17 + rows);
        if (rows > 1)
            Array.Clear(x, (int)xStride, group); // row 1's first group all zero
        var bias = Pinned(outs, 29);
        var y = GC.AllocateArray<float>((int)(rows * yStride + 16), pinned: true);
        Array.Fill(y, float.NaN);
        var yRef = GC.AllocateArray<float>(Math.Max(1, rows * outs), pinned: true);
        fixed (float* xp = x, bp = bias, yp = y, rp = yRef)
        {
            CpuGemv.Run(pool, w, xp, xStride, rows, withBias ? bp : null, yp, yStride, CpuInt4Dot.Int8);
            LinearReference.Run([new LinearReference.Product(w, (nint)xp, xStride, rows, withBias ? (nint)bp : 0, (nint)rp, outs)]);
        }
        byte* codes = (byte*)w.Data;
        ushort* scales = (ushort*)w.Scales, zeros = (ushort*)w.Zeros;
        for (int r = 0; r < rows; r++)
        {
            var (q, d, qsum) = Quantize(x, r * xStride, cols, group);
            for (int o = 0; o < outs; o++)
            {
                double formula = withBias ? bias[o] : 0, formulaScale = withBias ? Math.Abs(bias[o]) : 0, error = 0, exactScale = 0;
                for (int g = 0; g < groups; g++)
                {
                    float scale = BitConverter.UInt32BitsToSingle((uint)scales[(long)o * groups + g] << 16);
                    float zero = BitConverter.UInt32BitsToSingle((uint)zeros[(long)o * groups + g] << 16);
                    float s = scale * d[g]; // float32, as documented
                    long dot = 0;
                    for (int c = g * group; c < (g + 1) * group; c++)
                    {
                        int code = (codes[((long)o * cols + c) / 2] >> (c & 1) * 4) & 0xF;
                        dot += code * q[c];
                        double exact = ((double)code - zero) * scale, rounded = weight.Values[(long)o * cols + c];
                        double xv = x[r * xStride + c];
                        error += Math.Abs(exact) * 0.5001 * d[g] + Math.Abs(xv) * Math.Abs(exact - rounded);
                        exactScale += Math.Abs(xv * rounded);
                    }
                    formula += s * (dot - (double)zero * qsum[g]);
                    formulaScale += Math.Abs(s) * (Math.Abs(dot) + Math.Abs((double)zero * qsum[g]));
                }
                float got = y[r * yStride + o];
                Assert.False(float.IsNaN(got), $"{what}: y[{r}, {o}] not written");
                double bound = 1e-5 * formulaScale + 1e-6;
                Assert.True(Math.Abs(got - formula) <= bound, $"{what}: y[{r}, {o}] = {got}, the formula gives {formula} (bound {bound:g3})");
                double errorBound = error + 1e-5 * exactScale + 2e-5 * formulaScale + 1e-6;
                float exactProduct = yRef[r * outs + o];
                Assert.True(Math.Abs(got - exactProduct) <= errorBound,
                    $"{what}: y[{r}, {o}] = {got}, the exact product {exactProduct} (documented error {errorBound:g3})");
            }
            for (long o = outs; o < yStride && r * yStride + o < y.Length; o++)
                Assert.True(float.IsNaN(y[r * yStride + o]), $"{what}: y[{r}, {o}] is padding and was written");
        }
        for (long i = rows * yStride; i < y.Length; i++)
            Assert.True(float.IsNaN(y[i]), $"{what}: y[{i}] is past the output and was written");
    }
}
