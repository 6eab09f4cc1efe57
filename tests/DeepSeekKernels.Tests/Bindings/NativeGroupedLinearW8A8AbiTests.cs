using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// dsk_grouped_linear_fp8_w8a8 at the C boundary without a GPU: the C# mirror of its params has the header's layout byte
/// for byte (LP64, by hand from kernels/include/deepseek_kernels.h: dsk_weight is 72 bytes at offset 24), invalid requests
/// sent straight through the bindings are refused with the header's status and a message that starts with the op and
/// names the faulty field (fake never-dereferenced pointers; every refusal comes before any device query, so nothing is
/// launched), and the native backend's support rows for GroupedLinearW8A8.
/// </summary>
public class NativeGroupedLinearW8A8AbiTests
{
    [Fact]
    public void ParamsMatchTheHeader()
    {
        Assert.Equal(152, Marshal.SizeOf<DskGroupedLinearFp8W8A8Params>());
        Assert.Equal(
            [0, 8, 16, 24, 96, 104, 112, 120, 128, 132, 136, 140, 144],
            new[] { "Qx", "XScale", "ExpertOffsets", "W", "Y", "ErrorWord", "M", "YRowStride", "ActDType", "Path", "ErrorSite",
                "Reserved", "Stream" }.Select(AbiHeader.Offset<DskGroupedLinearFp8W8A8Params>));
        Assert.Equal(AbiHeader.Fields("dsk_grouped_linear_fp8_w8a8_params"), AbiHeader.CSharpFields<DskGroupedLinearFp8W8A8Params>());
    }

    static void RequireLibrary() =>
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");

    const int Out = 256, In = 256, M = 4, Experts = 3;

    /// <summary>A request that would be valid with real buffers: qx [4, 256], 3 FP8 experts of [256, 256], y bf16 [4, 256].</summary>
    static DskGroupedLinearFp8W8A8Params Valid() => new()
    {
        Qx = 0x10000, XScale = 0x18000, ExpertOffsets = 0x70000, Y = 0x300000, ErrorWord = 0x60000,
        W = new DskWeight
        {
            Data = 0x100000, Scale = 0x40000, Rows = Out, Cols = In, Count = Experts, Scheme = (int)DskWeightScheme.Fp8Block,
            DType = (int)DskDType.Fp8E4M3, BlockRows = 128, BlockCols = 128,
        },
        M = M, YRowStride = Out, ActDType = (int)DskDType.BF16, ErrorSite = 3,
    };

    public static TheoryData<string, string> Bad => new()
    {
        { "null expert_offsets", "expert_offsets" },
        { "null error_word", "error_word" },
        { "error_site 0", "error_site" },
        { "reserved 1", "reserved" },
        { "m of 2^31", "m" },
        { "null qx", "qx" },
        { "null x_scale", "x_scale" },
        { "null y", "y" },
        { "zero m", "m" },
        { "zero w.count", "count" },
        { "a dense weight", "w" },
        { "64 x 128 blocks", "w" },
        { "in 40", "in" },
        { "short y_row_stride", "y_row_stride" },
        { "f16 output", "act_dtype" },
        { "unknown path", "path" },
        { "y over the offsets", "expert_offsets" },
        { "y over the error word", "error_word" },
    };

    [Theory, MemberData(nameof(Bad))]
    public void RefusesInvalidRequestsNamingTheField(string fault, string field)
    {
        RequireLibrary();
        var p = Valid();
        switch (fault)
        {
            case "null expert_offsets": p.ExpertOffsets = 0; break;
            case "null error_word": p.ErrorWord = 0; break;
            case "error_site 0": p.ErrorSite = 0; break;
            case "reserved 1": p.Reserved = 1; break;
            case "m of 2^31": p.M = 1L << 31; break;
            case "null qx": p.Qx = 0; break;
            case "null x_scale": p.XScale = 0; break;
            case "null y": p.Y = 0; break;
            case "zero m": p.M = 0; break;
            case "zero w.count": p.W.Count = 0; break;
            case "a dense weight": p.W.Scheme = (int)DskWeightScheme.Dense; p.W.DType = (int)DskDType.BF16; break;
            case "64 x 128 blocks": p.W.BlockRows = 64; break;
            case "in 40": p.W.Cols = 40; break;
            case "short y_row_stride": p.YRowStride = Out - 1; break;
            case "f16 output": p.ActDType = (int)DskDType.F16; break;
            case "unknown path": p.Path = 5; break;
            case "y over the offsets": p.Y = 0x70000 - 8; break;
            case "y over the error word": p.Y = 0x60000 + 16; break;
        }
        var got = DskNative.TryGroupedLinearFp8W8A8(p, out string message);
        Assert.True(got == DskStatus.InvalidArgument, $"{fault}: status {got}, want InvalidArgument (message: {message})");
        Assert.StartsWith("dsk_grouped_linear_fp8_w8a8: ", message);
        Assert.Matches(new Regex(@"(?<![A-Za-z0-9_])" + Regex.Escape(field) + @"(?![A-Za-z0-9_])"), message);
    }

    [Fact]
    public void ThrowsTheNativeMessage()
    {
        RequireLibrary();
        var e = Assert.Throws<DskNativeException>(() => DskNative.GroupedLinearFp8W8A8(Valid() with { ErrorWord = 0 }));
        Assert.Equal(DskStatus.InvalidArgument, e.Status);
        Assert.Contains("dsk_grouped_linear_fp8_w8a8: error_word must not be NULL", e.Message);
    }

    [Fact]
    public void TheNativeBackendTakesFp8BlockWeightsWithF32OrBf16Output()
    {
        foreach (var y in (ElementType[])[ElementType.F32, ElementType.BF16])
        {
            var s = new OpSignature("GroupedLinearW8A8", y) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3 };
            Assert.Null(NativeBackend.Refusal(s));
            Assert.Null(NativeBackend.Refusal(s with { StridedRows = true }));
        }
        Assert.Equal("GroupedLinearW8A8 takes an FP8 block weight",
            NativeBackend.Refusal(new OpSignature("GroupedLinearW8A8", ElementType.BF16) { Scheme = WeightScheme.Dense, Weight = ElementType.BF16 }));
        Assert.Equal("the GroupedLinearW8A8 kernel takes f32 or bf16 activations, not f16",
            NativeBackend.Refusal(new OpSignature("GroupedLinearW8A8", ElementType.F16) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3 }));
    }
}
