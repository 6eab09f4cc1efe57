using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// dsk_grouped_linear at the C boundary without a GPU: the C# mirror of dsk_grouped_linear_params has the header's layout
/// byte for byte (LP64, worked out by hand from kernels/include/deepseek_kernels.h: dsk_weight is 72 bytes at offset 16),
/// invalid requests sent straight through the bindings are refused with the header's status and a message that starts
/// with the op and names the faulty field (fake never-dereferenced pointers: nothing is launched), and the native
/// backend's support rows for GroupedLinear and GroupedLinearSiluMul.
/// </summary>
public class NativeGroupedLinearAbiTests
{
    [Fact]
    public void GroupedLinearParamsMatchTheHeader()
    {
        Assert.Equal(160, Marshal.SizeOf<DskGroupedLinearParams>());
        Assert.Equal(
            [0, 8, 16, 88, 96, 104, 112, 120, 128, 132, 136, 140, 144, 148, 152],
            new[] { "X", "ExpertOffsets", "W", "Y", "ErrorWord", "M", "XRowStride", "YRowStride", "XDType", "YDType", "Epilogue",
                "Path", "ErrorSite", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskGroupedLinearParams>));
        Assert.Equal(AbiHeader.Fields("dsk_grouped_linear_params"), AbiHeader.CSharpFields<DskGroupedLinearParams>());
    }

    static void RequireLibrary() =>
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");

    const int Out = 16, In = 64, M = 4, Experts = 4;

    static DskWeight DenseBf16() => new()
    {
        Data = 0x20000, Rows = Out, Cols = In, Count = Experts, Scheme = (int)DskWeightScheme.Dense, DType = (int)DskDType.BF16,
    };

    /// <summary>A request that would be valid with real buffers: bf16 x [4, 64], 4 experts of [16, 64], y [4, 16].</summary>
    static DskGroupedLinearParams Valid() => new()
    {
        X = 0x10000, ExpertOffsets = 0x70000, W = DenseBf16(), Y = 0x30000, ErrorWord = 0x60000,
        M = M, XRowStride = In, YRowStride = Out,
        XDType = (int)DskDType.BF16, YDType = (int)DskDType.BF16, ErrorSite = 1,
    };

    public static TheoryData<string, DskStatus, string> Bad => new()
    {
        { "null expert_offsets", DskStatus.InvalidArgument, "expert_offsets" },
        { "null error_word", DskStatus.InvalidArgument, "error_word" },
        { "epilogue ADD", DskStatus.InvalidArgument, "epilogue" },
        { "unknown epilogue", DskStatus.InvalidArgument, "epilogue" },
        { "error_site 0", DskStatus.InvalidArgument, "error_site" },
        { "reserved 1", DskStatus.InvalidArgument, "reserved" },
        { "m of 2^31", DskStatus.InvalidArgument, "m" },
        { "null x", DskStatus.InvalidArgument, "x" },
        { "null y", DskStatus.InvalidArgument, "y" },
        { "zero m", DskStatus.InvalidArgument, "m" },
        { "null w.data", DskStatus.InvalidArgument, "data" },
        { "zero w.count", DskStatus.InvalidArgument, "count" },
        { "short x_row_stride", DskStatus.InvalidArgument, "x_row_stride" },
        { "short y_row_stride", DskStatus.InvalidArgument, "y_row_stride" },
        { "unknown path", DskStatus.InvalidArgument, "path" },
        { "SiLU-mul with odd out", DskStatus.InvalidArgument, "out" },
        { "FP8 without scales", DskStatus.InvalidArgument, "scale" },
        { "INT4 group_size 48", DskStatus.InvalidArgument, "group_size" },
        { "y over x", DskStatus.InvalidArgument, "x" },
        { "y over the offsets", DskStatus.InvalidArgument, "expert_offsets" },
        { "dense FP8 data", DskStatus.Unsupported, "dtype" },
        { "x_dtype F16", DskStatus.Unsupported, "x_dtype" },
        { "y_dtype I32", DskStatus.Unsupported, "y_dtype" },
    };

    [Theory, MemberData(nameof(Bad))]
    public void GroupedLinearRefusesInvalidRequestsNamingTheField(string fault, DskStatus status, string field)
    {
        RequireLibrary();
        var p = Valid();
        var fp8 = DenseBf16() with { Scale = 0x40000, Scheme = (int)DskWeightScheme.Fp8Block, DType = (int)DskDType.Fp8E4M3, BlockRows = 128, BlockCols = 128 };
        var int4 = DenseBf16() with { Scale = 0x40000, Zero = 0x50000, Scheme = (int)DskWeightScheme.Int4Group, DType = (int)DskDType.Int4, GroupSize = 32 };
        switch (fault)
        {
            case "null expert_offsets": p.ExpertOffsets = 0; break;
            case "null error_word": p.ErrorWord = 0; break;
            case "epilogue ADD": p.Epilogue = (int)DskLinearEpilogue.Add; break;
            case "unknown epilogue": p.Epilogue = 9; break;
            case "error_site 0": p.ErrorSite = 0; break;
            case "reserved 1": p.Reserved = 1; break;
            case "m of 2^31": p.M = 1L << 31; break;
            case "null x": p.X = 0; break;
            case "null y": p.Y = 0; break;
            case "zero m": p.M = 0; break;
            case "null w.data": p.W.Data = 0; break;
            case "zero w.count": p.W.Count = 0; break;
            case "short x_row_stride": p.XRowStride = In - 1; break;
            case "short y_row_stride": p.YRowStride = Out - 1; break;
            case "unknown path": p.Path = 7; break;
            case "SiLU-mul with odd out": p.W.Rows = Out + 1; p.Epilogue = (int)DskLinearEpilogue.SiluMul; break;
            case "FP8 without scales": p.W = fp8 with { Scale = 0 }; break;
            case "INT4 group_size 48": p.W = int4 with { GroupSize = 48 }; break;
            case "y over x": p.Y = 0x10000 + 64; break;
            case "y over the offsets": p.Y = 0x70000 - 8; break;
            case "dense FP8 data": p.W.DType = (int)DskDType.Fp8E4M3; break;
            case "x_dtype F16": p.XDType = (int)DskDType.F16; break;
            case "y_dtype I32": p.YDType = (int)DskDType.I32; break;
        }
        var got = DskNative.TryGroupedLinear(p, out string message);
        Assert.True(got == status, $"{fault}: status {got}, want {status} (message: {message})");
        Assert.StartsWith("dsk_grouped_linear: ", message);
        Assert.Matches(new Regex(@"(?<![A-Za-z0-9_])" + Regex.Escape(field) + @"(?![A-Za-z0-9_])"), message);
    }

    [Fact]
    public void GroupedLinearThrowsTheNativeMessage()
    {
        RequireLibrary();
        var p = Valid() with { ErrorWord = 0 };
        var e = Assert.Throws<DskNativeException>(() => DskNative.GroupedLinear(p));
        Assert.Equal(DskStatus.InvalidArgument, e.Status);
        Assert.Contains("dsk_grouped_linear: error_word must not be NULL", e.Message);
    }

    [Fact]
    public void TheNativeBackendTakesEveryWeightFormAndRefusesOtherActivations()
    {
        (WeightScheme, ElementType)[] weights =
        [
            (WeightScheme.Dense, ElementType.F32), (WeightScheme.Dense, ElementType.BF16),
            (WeightScheme.Fp8Block, ElementType.Fp8E4M3), (WeightScheme.Int4Group, ElementType.Int4),
        ];
        foreach (string op in (string[])["GroupedLinear", "GroupedLinearSiluMul"])
        {
            foreach (var x in (ElementType[])[ElementType.F32, ElementType.BF16])
                foreach (var (scheme, type) in weights)
                {
                    var s = new OpSignature(op, x) { Scheme = scheme, Weight = type };
                    Assert.Null(NativeBackend.Refusal(s));
                    Assert.Null(NativeBackend.Refusal(s with { StridedRows = true }));
                }
            Assert.Equal("dsk_grouped_linear takes f32 or bf16 activations, not f16",
                NativeBackend.Refusal(new OpSignature(op, ElementType.F16) { Scheme = WeightScheme.Dense, Weight = ElementType.BF16 }));
            Assert.StartsWith("dsk_grouped_linear takes a dense f32/bf16, FP8 block or INT4 group weight",
                NativeBackend.Refusal(new OpSignature(op, ElementType.F32) { Scheme = WeightScheme.Dense, Weight = ElementType.F16 }));
        }
    }
}
