using DeepSeekKernels.Cpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// <see cref="CpuHeadwise"/> (the CPU backend's HeadwiseLinear) against the reference's <see cref="LinearReference.Headwise"/>
/// and <see cref="LinearReference.HeadwiseTransposed"/>: every weight form (f32, bf16, FP8 blocks, INT4 groups) stacked one
/// matrix per head, x ISA level (the bf16 transposed kernels of AVX-512 and AVX2 and the generic path), both products, 1 to 9
/// tokens (decode's GEMV and the token groups of the transposed kernel; prefill's GEMM), columns that are and are not whole
/// vector blocks (odd: the generic path), x and y rows padded on both strides, pools of 1 and 3 threads. Each output within
/// float32 rounding of the reference's (relative 1e-5 of the row's magnitude); untouched padding stays NaN.
/// </summary>
public sealed unsafe class CpuHeadwiseTests
{
    static readonly CpuThreadPool s_pool1 = new(1), s_pool3 = new(3);

    public static TheoryData<string, string, bool> Cases()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (string form in new[] { "f32", "bf16", "fp8", "int4" })
            foreach (string level in new[] { "Portable", "Avx2", "Avx512" })
                foreach (bool transpose in new[] { false, true })
                    data.Add(form, level, transpose);
        return data;
    }

    /// <summary>(heads, rows, cols) per form; FP8 rows are whole 16-row blocks per head, INT4 cols whole 16-column groups.</summary>
    static (int Heads, int Rows, int Cols)[] Shapes(string form) => form switch
    {
        "fp8" => [(3, 16, 70), (2, 32, 128), (4, 16, 33)],
        "int4" => [(3, 16, 48), (2, 32, 128), (5, 16, 64)],
        _ => [(3, 16, 70), (2, 32, 128), (4, 16, 33), (2, 8, 512)],
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheReference(string form, string levelName, bool transpose)
    {
        var level = Enum.Parse<CpuIsaLevel>(levelName);
        Assert.SkipWhen(level > CpuIsa.Detected, $"this CPU runs at most {CpuIsa.Detected}");
        using var scope = CpuIsa.Force(level);
        int index = 0;
        foreach (var (heads, rows, cols) in Shapes(form))
        {
            using var stack = new CpuGemvTests.HostWeight(form, heads * rows, cols, form == "fp8" ? 16 : 0, form == "fp8" ? 16 : 0,
                form == "int4" ? 16 : 0, seed: 300 + index);
            var one = stack.Data;
            var w = new WeightData(one.Type, one.Data, one.Scales, rows, cols, heads, one.BlockRows, one.BlockCols, one.Zeros, one.GroupSize);
            foreach (int tokens in new[] { 1, 2, 4, 5, 9 })
            {
                index++;
                int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
                long xHead = inDim + index % 3, xToken = heads * xHead + 2, yHead = outDim + 1, yToken = heads * yHead + index % 2;
                var x = GC.AllocateArray<float>((int)(tokens * xToken), pinned: true);
                var random = new Random(index);
                for (int i = 0; i < x.Length; i++)
                    x[i] = random.NextSingle() * 2 - 1;
                var expected = GC.AllocateArray<float>((int)(tokens * yToken), pinned: true);
                var actual = GC.AllocateArray<float>((int)(tokens * yToken), pinned: true);
                Array.Fill(expected, float.NaN);
                Array.Fill(actual, float.NaN);
                var layout = new LinearReference.HeadwiseLayout(tokens, xToken, xHead, yToken, yHead);
                fixed (float* xp = x, ep = expected, ap = actual)
                {
                    if (transpose)
                        LinearReference.HeadwiseTransposed(w, (nint)xp, (nint)ep, layout);
                    else
                        LinearReference.Headwise(w, (nint)xp, (nint)ep, layout);
                    CpuHeadwise.Run(index % 2 == 0 ? s_pool3 : s_pool1, w, xp, xToken, xHead, ap, yToken, yHead, tokens, transpose, level);
                }
                string what = $"{form} {level} {(transpose ? "W^T x" : "W x")} {heads}x{rows}x{cols}, {tokens} tokens";
                for (int t = 0; t < tokens; t++)
                    for (int h = 0; h < heads; h++)
                    {
                        long at = t * yToken + h * yHead;
                        double norm = 0;
                        for (int o = 0; o < outDim; o++)
                            norm = Math.Max(norm, Math.Abs(expected[at + o]));
                        for (int o = 0; o < outDim; o++)
                        {
                            float e = expected[at + o], a = actual[at + o];
                            Assert.True(float.IsFinite(e), $"{what}: the reference gave {e} at token {t} head {h} out {o}");
                            Assert.True(Math.Abs(a - e) <= 1e-5 * (norm + 1), $"{what}: token {t} head {h} out {o}: {a} vs {e}");
                        }
                    }
                for (int i = 0; i < actual.Length; i++)
                    Assert.True(float.IsNaN(expected[i]) == float.IsNaN(actual[i]), $"{what}: element {i} of y's padding was written");
            }
            // w holds raw pointers into the stack's pinned arrays: keep them alive to here (else the GC may free them and a
            // later pinned array, NaN-filled, take their place: seen once as NaN "reference" outputs under other tests' load)
            GC.KeepAlive(stack);
        }
    }
}
