using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// <see cref="WeightPanelDecode"/>'s INT4 and FP8 panels bit for bit against the reference's decode (<see cref="WeightData.DecodeRows"/>:
/// (code - zero) * scale in float32, rounded once to bf16), at every ISA level this CPU runs (16 columns at a time with
/// AVX-512, 8 with AVX2, one by one otherwise): groups of 32, 64 and 128, blocks that start on odd columns and end inside a
/// group, slices of 8, 16 and 32 rows with a partial last slice (its padding rows must be 0), fractional and integer zero
/// points, and scales that are negative, zero, infinite or NaN (a NaN decodes to a NaN, as the reference's does; its sign
/// follows the multiply's operand order, which the JIT picks, so it is not compared).
/// The GEMM tests' tolerance could not tell one bf16 ulp from another; this can.
/// </summary>
public unsafe class WeightPanelDecodeTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (string isa in new[] { "Avx512", "Avx2", "Portable" })
            foreach (int group in new[] { 32, 64, 128 })
                data.Add(isa, group);
        return data;
    }

    /// <summary>
    /// FP8 e4m3 likewise: every code (subnormals, both zeros, the largest normals, and the NaN codes 0x7F and 0xFF, which send
    /// their vector through the table), blocks of 128 x 128 and 16 x 16, scales negative, zero, infinite and NaN.
    /// </summary>
    [Theory]
    [MemberData(nameof(Fp8Cases))]
    public void Fp8PanelsAreTheReferenceDecodeBitForBit(string isaName, int block)
    {
        var isa = Enum.Parse<CpuIsaLevel>(isaName);
        Assert.SkipUnless(isa <= CpuIsa.Detected, $"this CPU does not run the {isa} level");
        using var forced = CpuIsa.Force(isa);

        const int outs = 37, cols = 700;
        int scaleRows = (outs + block - 1) / block, scaleCols = (cols + block - 1) / block;
        var random = new Random(block * 11 + (int)isa);
        var codes = new byte[outs * cols];
        random.NextBytes(codes);
        for (int i = 0; i < 256; i++)
            codes[i * 7 % codes.Length] = (byte)i; // every code somewhere
        for (int i = 0; i < codes.Length; i++)
            if ((codes[i] & 0x7F) == 0x7F && i % 5 != 0)
                codes[i] ^= 0x01; // NaN codes kept in a fifth of the places they fell: most vectors hold none
        var scales = new float[scaleRows * scaleCols];
        for (int i = 0; i < scales.Length; i++)
            scales[i] = (random.NextSingle() - 0.3f) * 1e-2f;
        // three special blocks, the others ordinary (with 128 x 128 blocks there are six in all)
        scales[scales.Length * 2 / 5] = float.NaN;
        scales[scales.Length * 4 / 5] = float.PositiveInfinity;
        scales[scales.Length - 1] = 0f;

        fixed (byte* pc = codes)
        fixed (float* ps = scales)
        {
            var w = new WeightData(ElementType.Fp8E4M3, (nint)pc, (nint)ps, outs, cols, 1, block, block);
            var reference = new float[outs * cols];
            w.DecodeRows(0, outs, reference);
            ComparePanels(w, reference, outs, cols, $"{isa}, FP8 blocks of {block}", [
                (0, outs, 0, cols), (3, 20, 1, 77), (5, 31, block - 3, 50), (0, 1, 16, 16), (10, 27, 33, cols - 33), (36, 1, cols - 9, 9),
            ]);
        }
    }

    public static TheoryData<string, int> Fp8Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (string isa in new[] { "Avx512", "Avx2", "Portable" })
            foreach (int block in new[] { 16, 128 })
                data.Add(isa, block);
        return data;
    }

    /// <summary>Every panel of every block and slice height against the reference decode, bit for bit (padding rows 0).</summary>
    static void ComparePanels(WeightData w, float[] reference, int outs, int cols, string what, (int N0, int Count, int K0, int Kc)[] blocks)
    {
        foreach (int nr in new[] { 8, 16, 32 })
        {
            foreach (var (n0, count, k0, kc) in blocks)
            {
                int padded = (count + nr - 1) / nr * nr;
                var panel = new float[padded * kc];
                Array.Fill(panel, BitConverter.UInt32BitsToSingle(0x7FBADBADu)); // a NaN no decode produces
                fixed (float* pp = panel)
                    WeightPanelDecode.Decode(w, n0, count, k0, kc, nr, pp);
                for (int j = 0; j < padded; j++)
                {
                    for (int k = 0; k < kc; k++)
                    {
                        uint got = BitConverter.SingleToUInt32Bits(panel[(j / nr) * kc * nr + k * nr + j % nr]);
                        uint expected = j < count ? BitConverter.SingleToUInt32Bits(reference[(n0 + j) * cols + k0 + k]) : 0u;
                        bool bothNaN = float.IsNaN(BitConverter.UInt32BitsToSingle(got)) && float.IsNaN(BitConverter.UInt32BitsToSingle(expected));
                        if (got != expected && !(bothNaN && got != 0x7FBADBADu)) // a NaN is a NaN: its sign is the multiply's operand order
                            Assert.Fail($"{what}, nr {nr}, block ({n0}, {count}, {k0}, {kc}): row {j}, column {k}: 0x{got:X8}, the reference 0x{expected:X8}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Int4PanelsAreTheReferenceDecodeBitForBit(string isaName, int group)
    {
        var isa = Enum.Parse<CpuIsaLevel>(isaName);
        Assert.SkipUnless(isa <= CpuIsa.Detected, $"this CPU does not run the {isa} level");
        using var forced = CpuIsa.Force(isa);

        const int outs = 37;
        int cols = group * 5, groups = cols / group;
        var random = new Random(group * 7 + (int)isa);
        var codes = new byte[outs * cols / 2];
        random.NextBytes(codes);
        var scales = new ushort[outs * groups];
        var zeros = new ushort[outs * groups];
        for (int i = 0; i < scales.Length; i++)
        {
            scales[i] = BFloat16.FromSingle((random.NextSingle() - 0.3f) * 0.02f).Bits;
            zeros[i] = BFloat16.FromSingle(random.Next(16) + (i % 3 == 0 ? 0.37f : 0f)).Bits;
        }
        scales[2 * groups + 3] = BFloat16.NaN.Bits;
        scales[4 * groups + 1] = BFloat16.FromSingle(float.PositiveInfinity).Bits;
        scales[5 * groups] = 0;
        zeros[6 * groups + 2] = BFloat16.FromSingle(float.NegativeInfinity).Bits;

        fixed (byte* pc = codes)
        fixed (ushort* ps = scales, pz = zeros)
        {
            var w = new WeightData(ElementType.Int4, (nint)pc, (nint)ps, outs, cols, 1, 0, 0, (nint)pz, group);
            var reference = new float[outs * cols];
            w.DecodeRows(0, outs, reference);
            Assert.Contains(reference, float.IsNaN); // the special scales made it into the data

            ComparePanels(w, reference, outs, cols, $"{isa}, INT4 groups of {group}", [
                (0, outs, 0, cols), (3, 20, 1, 77), (5, 31, group - 3, 50), (0, 1, 16, 16), (10, 27, 33, cols - 33), (36, 1, cols - 9, 9),
            ]);
        }
    }
}
