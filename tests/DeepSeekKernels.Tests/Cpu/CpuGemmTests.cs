using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// <see cref="CpuGemm.Run"/> against <see cref="LinearReference.Run"/> on the same <see cref="WeightData"/> (pinned host
/// arrays): every weight form (f32, bf16, FP8 with 128x128 and 16x16 blocks, INT4 with groups of 32 and 128) at every ISA
/// level this CPU runs, on pools of 1 and 3 threads, over rows 0..257, odd column and output counts (partial tiles, FP8
/// partial blocks), padded row strides and with and without bias. Outputs start as NaN: every element must be written,
/// within 1e-5 of the sum of |x * w| (+ |bias|) of the reference, and the stride gaps and a guard after y untouched.
/// </summary>
public unsafe class CpuGemmTests
{
    static readonly int[] RowCounts = [0, 1, 15, 16, 17, 100, 257];
    static readonly int[] ColCounts = [1, 7, 129, 1024];
    static readonly int[] Int4ColCounts = [128, 256, 1024]; // multiples of both group sizes (32 and 128)
    static readonly int[] OutCounts = [1, 5, 33, 300];
    const int Guard = 37;

    public static TheoryData<string, string, int> Cases()
    {
        var data = new TheoryData<string, string, int>();
        foreach (string form in new[] { "f32", "bf16", "fp8", "fp8-16", "int4-32", "int4-128" })
        {
            foreach (string isa in new[] { "Avx512", "Avx2", "Portable" })
            {
                foreach (int threads in new[] { 1, 3 })
                    data.Add(form, isa, threads);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheReference(string form, string isaName, int threads)
    {
        var isa = Enum.Parse<CpuIsaLevel>(isaName);
        Assert.SkipUnless(isa <= CpuIsa.Detected, $"this CPU does not run the {isa} micro-kernel");
        using var pool = new CpuThreadPool(threads);
        Run(pool, form, isa);
    }

    static void Run(CpuThreadPool pool, string form, CpuIsaLevel isa)
    {
        int seed = 1;
        int[] colCounts = form.StartsWith("int4") ? Int4ColCounts : ColCounts;
        int shape = 0;
        foreach (int cols in colCounts)
        {
            foreach (int outs in OutCounts)
            {
                using var weight = new HostWeight(form, outs, cols, seed++);
                foreach (int rows in RowCounts)
                {
                    // strides and bias vary with the shape: dense and padded, with and without bias
                    int xPad = shape % 3 == 1 ? 3 : 0, yPad = shape % 2 == 1 ? 5 : 0;
                    bool withBias = shape % 4 < 2;
                    shape++;
                    Check(pool, isa, weight, rows, cols + xPad, outs + yPad, withBias, seed++);
                }
            }
        }
    }

    [Fact]
    public void ZeroColumnsWriteTheBiasOrZero()
    {
        using var pool = new CpuThreadPool(2);
        var bias = Pinned(3);
        bias[0] = 1f; bias[1] = -2f; bias[2] = 0.5f;
        var y = Pinned(2 * 3);
        var w = new WeightData(ElementType.F32, 0, 0, 3, 0, 1, 0, 0);
        y.AsSpan().Fill(float.NaN);
        CpuGemm.Run(pool, w, null, 0, 2, Address(bias), Address(y), 3);
        Assert.Equal([1f, -2f, 0.5f, 1f, -2f, 0.5f], y);
        y.AsSpan().Fill(float.NaN);
        CpuGemm.Run(pool, w, null, 0, 2, null, Address(y), 3);
        Assert.All(y, v => Assert.Equal(0f, v));
    }

    static void Check(CpuThreadPool pool, CpuIsaLevel isa, HostWeight weight, int rows, long xStride, long yStride, bool withBias, int seed)
    {
        var w = weight.Data;
        int outs = w.Rows, cols = w.Cols;
        var random = new Random(seed);
        var x = Pinned(rows * xStride + 1);
        for (int i = 0; i < x.Length; i++)
            x[i] = (random.NextSingle() * 2 - 1) * (i % 7 == 0 ? 3f : 1f);
        var bias = withBias ? Pinned(outs) : null;
        if (bias != null)
        {
            for (int i = 0; i < outs; i++)
                bias[i] = random.NextSingle() - 0.5f;
        }
        long length = rows * yStride + Guard;
        var y = Pinned(length);
        var expected = Pinned(length);
        y.AsSpan().Fill(float.NaN);
        expected.AsSpan().Fill(float.NaN);

        LinearReference.Run([new LinearReference.Product(w, (nint)Address(x), xStride, rows, bias == null ? 0 : (nint)Address(bias),
            (nint)Address(expected), yStride)]);
        using (CpuIsa.Force(isa))
            CpuGemm.Run(pool, w, Address(x), xStride, rows, bias == null ? null : Address(bias), Address(y), yStride);

        // the tolerance's scale: sum_c |x[r, c] * w[o, c]| + |bias[o]|, the reference's product of |x| and |W|
        var magnitude = Pinned(length);
        var absX = Pinned(x.Length);
        for (int i = 0; i < x.Length; i++)
            absX[i] = Math.Abs(x[i]);
        var absBias = bias == null ? null : Pinned(outs);
        for (int o = 0; absBias != null && o < outs; o++)
            absBias[o] = Math.Abs(bias![o]);
        LinearReference.Run([new LinearReference.Product(weight.Absolute, (nint)Address(absX), xStride, rows,
            absBias == null ? 0 : (nint)Address(absBias), (nint)Address(magnitude), yStride)]);
        // pinned arrays read through raw addresses are not roots: without these a GC (another test's) may free them mid-call
        GC.KeepAlive(absX);
        GC.KeepAlive(absBias);
        GC.KeepAlive(x);
        GC.KeepAlive(bias);

        string where = $"{weight.Form} {isa} {pool.Threads} threads: rows {rows}, cols {cols}, out {outs}, x stride {xStride}, y stride {yStride}, bias {withBias}";
        for (int r = 0; r < rows; r++)
        {
            for (int o = 0; o < outs; o++)
            {
                long i = r * yStride + o;
                float got = y[i], want = expected[i];
                Assert.False(float.IsNaN(want), $"{where}: the reference left y[{r}, {o}] unwritten");
                if (!(Math.Abs(got - want) <= 1e-5 * magnitude[i] + 1e-6))
                    Assert.Fail($"{where}: y[{r}, {o}] = {got}, reference {want} (sum |x*w| {magnitude[i]})");
            }
            for (long o = outs; o < yStride && r * yStride + o < length; o++)
                Assert.True(float.IsNaN(y[r * yStride + o]), $"{where}: wrote y[{r}, {o}] in the stride gap");
        }
        for (long i = rows * yStride; i < length; i++)
            Assert.True(float.IsNaN(y[i]), $"{where}: wrote element {i} past the output");
    }

    static float[] Pinned(long length) => GC.AllocateArray<float>(checked((int)length), pinned: true);

    static float* Address<T>(T[] array) where T : unmanaged =>
        (float*)Unsafe.AsPointer(ref Unsafe.As<T, byte>(ref MemoryMarshal.GetArrayDataReference(array)));

    /// <summary>A random weight [outs, cols] in one stored form, in pinned arrays, and |W| decoded to float32.</summary>
    sealed class HostWeight : IDisposable
    {
        public HostWeight(string form, int outs, int cols, int seed)
        {
            Form = form;
            var random = new Random(seed);
            switch (form)
            {
                case "f32":
                {
                    var data = Pinned((long)outs * cols);
                    for (int i = 0; i < data.Length; i++)
                        data[i] = random.NextSingle() - 0.5f;
                    _arrays = [data];
                    Data = new WeightData(ElementType.F32, (nint)Address(data), 0, outs, cols, 1, 0, 0);
                    break;
                }
                case "bf16":
                {
                    var data = GC.AllocateArray<ushort>(outs * cols, pinned: true);
                    for (int i = 0; i < data.Length; i++)
                        data[i] = BFloat16.FromSingle(random.NextSingle() - 0.5f).Bits;
                    _arrays = [data];
                    Data = new WeightData(ElementType.BF16, (nint)Address(data), 0, outs, cols, 1, 0, 0);
                    break;
                }
                case "fp8" or "fp8-16":
                {
                    int block = form == "fp8" ? 128 : 16;
                    var data = GC.AllocateArray<byte>(outs * cols, pinned: true);
                    random.NextBytes(data);
                    for (int i = 0; i < data.Length; i++)
                    {
                        if ((data[i] & 0x7F) == 0x7F) // NaN codes
                            data[i] ^= 0x01;
                    }
                    int scaleCount = (outs + block - 1) / block * ((cols + block - 1) / block);
                    var scales = Pinned(scaleCount);
                    for (int i = 0; i < scales.Length; i++)
                        scales[i] = (0.5f + random.NextSingle()) * 1e-3f * (i % 3 + 1);
                    _arrays = [data, scales];
                    Data = new WeightData(ElementType.Fp8E4M3, (nint)Address(data), (nint)Address(scales), outs, cols, 1, block, block);
                    break;
                }
                default:
                {
                    int group = form == "int4-32" ? 32 : 128;
                    var data = GC.AllocateArray<byte>(outs * cols / 2, pinned: true);
                    random.NextBytes(data);
                    int groups = outs * (cols / group);
                    var scales = GC.AllocateArray<ushort>(groups, pinned: true);
                    var zeros = GC.AllocateArray<ushort>(groups, pinned: true);
                    for (int i = 0; i < groups; i++)
                    {
                        scales[i] = BFloat16.FromSingle((0.5f + random.NextSingle()) * 0.01f).Bits;
                        zeros[i] = BFloat16.FromSingle(random.Next(16) + (i % 2) * 0.37f).Bits;
                    }
                    _arrays = [data, scales, zeros];
                    Data = new WeightData(ElementType.Int4, (nint)Address(data), (nint)Address(scales), outs, cols, 1, 0, 0,
                        (nint)Address(zeros), group);
                    break;
                }
            }
            var values = Pinned((long)outs * cols);
            Data.DecodeRows(0, outs, values);
            for (int i = 0; i < values.Length; i++)
                values[i] = Math.Abs(values[i]);
            _absolute = values;
            Absolute = new WeightData(ElementType.F32, (nint)Address(values), 0, outs, cols, 1, 0, 0);
        }

        readonly Array[] _arrays;
        readonly float[] _absolute;

        public string Form { get; }
        public WeightData Data { get; }
        /// <summary>|W| decoded, as a float32 weight (the tolerance's scale).</summary>
        public WeightData Absolute { get; }

        public void Dispose()
        {
            GC.KeepAlive(_arrays);
            GC.KeepAlive(_absolute);
        }
    }
}
