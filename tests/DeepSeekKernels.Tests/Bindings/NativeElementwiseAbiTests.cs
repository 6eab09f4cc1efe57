using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The C# mirrors of the small activation ops' params structs (ABI 4: dsk_silu_and_mul_params, dsk_copy_columns_params,
/// dsk_elementwise_params, dsk_softmax_params) have the header's layout byte for byte, LP64. The offsets are worked out by
/// hand from kernels/include/deepseek_kernels.h (and agree with abi_check.c's offsetof asserts); the field order is also
/// read from the header itself, so a field added there and not here fails. No GPU or library needed.
/// </summary>
public sealed class NativeElementwiseStructLayoutTests
{
    [Fact]
    public void SiluAndMulParamsMatchTheHeader()
    {
        Assert.Equal(64, Marshal.SizeOf<DskSiluAndMulParams>());
        Assert.Equal([0, 8, 16, 24, 32, 40, 48, 52, 56],
            new[] { "X", "Y", "Rows", "Intermediate", "XRowStride", "YRowStride", "DType", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskSiluAndMulParams>));
    }

    [Fact]
    public void CopyColumnsParamsMatchTheHeader()
    {
        Assert.Equal(80, Marshal.SizeOf<DskCopyColumnsParams>());
        Assert.Equal([0, 8, 16, 24, 32, 40, 48, 56, 64, 68, 72],
            new[] { "X", "Y", "Rows", "Width", "XOffset", "YOffset", "XRowStride", "YRowStride", "DType", "Reserved", "Stream" }
                .Select(AbiHeader.Offset<DskCopyColumnsParams>));
    }

    [Fact]
    public void ElementwiseParamsMatchTheHeader()
    {
        Assert.Equal(56, Marshal.SizeOf<DskElementwiseParams>());
        Assert.Equal([0, 8, 16, 24, 32, 36, 40, 44, 48],
            new[] { "X", "Y", "Z", "N", "Factor", "Op", "DType", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskElementwiseParams>));
        Assert.Equal(typeof(float), typeof(DskElementwiseParams).GetField("Factor")!.FieldType);
        Assert.Equal([0, 1], new[] { DskElementwiseOp.Add, DskElementwiseOp.Scale }.Select(v => (int)v));
    }

    [Fact]
    public void SoftmaxParamsMatchTheHeader()
    {
        Assert.Equal(48, Marshal.SizeOf<DskSoftmaxParams>());
        Assert.Equal([0, 8, 16, 24, 32, 36, 40],
            new[] { "X", "Y", "Rows", "RowLength", "DType", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskSoftmaxParams>));
    }

    [Fact]
    public void TheFieldsAreTheHeadersInTheHeadersOrder()
    {
        Assert.Equal(AbiHeader.Fields("dsk_silu_and_mul_params"), AbiHeader.CSharpFields<DskSiluAndMulParams>());
        Assert.Equal(AbiHeader.Fields("dsk_copy_columns_params"), AbiHeader.CSharpFields<DskCopyColumnsParams>());
        Assert.Equal(AbiHeader.Fields("dsk_elementwise_params"), AbiHeader.CSharpFields<DskElementwiseParams>());
        Assert.Equal(AbiHeader.Fields("dsk_softmax_params"), AbiHeader.CSharpFields<DskSoftmaxParams>());
    }
}

/// <summary>The native backend's answers for the small ops without a GPU: f32 and bf16 taken, other types refused naming the kernel.</summary>
public class NativeElementwiseSupportTests
{
    [Theory]
    [InlineData("CopyColumns", "dsk_copy_columns"), InlineData("SiluAndMul", "dsk_silu_and_mul"), InlineData("Softmax", "dsk_softmax"),
     InlineData("Add", "dsk_elementwise"), InlineData("Scale", "dsk_elementwise")]
    public void TheSmallOpsAreTakenOnF32AndBf16(string op, string kernel)
    {
        Assert.Null(NativeBackend.Refusal(new OpSignature(op, ElementType.F32)));
        Assert.Null(NativeBackend.Refusal(new OpSignature(op, ElementType.BF16)));
        Assert.Equal($"{kernel} takes f32 or bf16, not f16", NativeBackend.Refusal(new OpSignature(op, ElementType.F16)));
        Assert.Equal($"{kernel} reads the op API's dense rows", NativeBackend.Refusal(new OpSignature(op, ElementType.BF16) { StridedRows = true }));
        Assert.Equal($"{op} takes no weight", NativeBackend.Refusal(new OpSignature(op, ElementType.BF16) { Weight = ElementType.BF16 }));
    }
}

/// <summary>
/// dsk_silu_and_mul, dsk_copy_columns, dsk_elementwise and dsk_softmax refuse invalid requests sent straight through the
/// bindings (no C# validation in between) with a message that starts with the op and names the field. Every request is
/// invalid, with fake never-dereferenced device pointers, so nothing is launched: they run wherever libdeepseek_kernels.so
/// was built, GPU or not, and skip (with the reason) only where it was not.
/// </summary>
public class NativeElementwiseAbiTests
{
    static void RequireLibrary()
    {
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");
        string[] entryPoints = ["dsk_silu_and_mul", "dsk_copy_columns", "dsk_elementwise", "dsk_softmax"];
        var missing = entryPoints.Where(e => !DskNative.Exports(e)).ToArray();
        Assert.SkipWhen(missing.Length > 0, $"{DskNative.LoadedFrom} lacks {string.Join(", ", missing)}: it was built without the small activation ops.");
    }

    static void Refused(Action call, string op, string fragment, DskStatus status = DskStatus.InvalidArgument)
    {
        var e = Assert.Throws<DskNativeException>(call);
        Assert.Equal(status, e.Status);
        Assert.StartsWith(op + ": ", e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void SiluAndMulRefusesBadSizesOverlapAndTypesNamingTheField()
    {
        RequireLibrary();
        var p = new DskSiluAndMulParams
        {
            X = 0x100000, Y = 0x200000, Rows = 3, Intermediate = 64, XRowStride = 128, YRowStride = 64, DType = (int)DskDType.BF16,
        };
        Refused(() => DskNative.SiluAndMul(p with { Rows = 0 }), "dsk_silu_and_mul", "rows must be >= 1 (got 0)");
        Refused(() => DskNative.SiluAndMul(p with { XRowStride = 127 }), "dsk_silu_and_mul", "x_row_stride must be >= 2 * intermediate");
        Refused(() => DskNative.SiluAndMul(p with { Y = 0x100000 + 256 }), "dsk_silu_and_mul", "y must not overlap x");
        Refused(() => DskNative.SiluAndMul(p with { DType = (int)DskDType.F16 }), "dsk_silu_and_mul", "dtype F16 (2) is not supported",
            DskStatus.Unsupported);
    }

    [Fact]
    public void CopyColumnsRefusesABlockOutsideTheRows()
    {
        RequireLibrary();
        var p = new DskCopyColumnsParams
        {
            X = 0x100000, Y = 0x200000, Rows = 5, Width = 64, XOffset = 512, XRowStride = 576, YRowStride = 64, DType = (int)DskDType.BF16,
        };
        Refused(() => DskNative.CopyColumns(p with { XRowStride = 575 }), "dsk_copy_columns", "x_row_stride must be >= x_offset + width");
        Refused(() => DskNative.CopyColumns(p with { YOffset = 1 }), "dsk_copy_columns", "y_row_stride must be >= y_offset + width");
        Refused(() => DskNative.CopyColumns(p with { XOffset = -1 }), "dsk_copy_columns", "x_offset must be >= 0");
        Refused(() => DskNative.CopyColumns(p with { Y = 0x100000 + 2048 }), "dsk_copy_columns", "y's rows must not overlap x's");
    }

    [Fact]
    public void ElementwiseRefusesBadOpsFactorsAndPartialOverlaps()
    {
        RequireLibrary();
        var add = new DskElementwiseParams { X = 0x100000, Y = 0x200000, Z = 0x300000, N = 1000, Op = (int)DskElementwiseOp.Add, DType = (int)DskDType.BF16 };
        var scale = add with { Y = 0, Op = (int)DskElementwiseOp.Scale, Factor = 0.5f };
        Refused(() => DskNative.Elementwise(add with { Op = 2 }), "dsk_elementwise", "op must be ADD (0) or SCALE (1) (got 2)");
        Refused(() => DskNative.Elementwise(add with { Y = 0 }), "dsk_elementwise", "y must not be NULL");
        Refused(() => DskNative.Elementwise(scale with { Y = 0x200000 }), "dsk_elementwise", "y must be NULL for SCALE");
        Refused(() => DskNative.Elementwise(scale with { Factor = float.NaN }), "dsk_elementwise", "factor must be finite for SCALE");
        Refused(() => DskNative.Elementwise(add with { Z = 0x100000 + 2 }), "dsk_elementwise", "z must be exactly x or not overlap it");
        Refused(() => DskNative.Elementwise(add with { N = 0 }), "dsk_elementwise", "n must be >= 1 (got 0)");
    }

    [Fact]
    public void SoftmaxRefusesAShiftedOutputAndOtherTypes()
    {
        RequireLibrary();
        var p = new DskSoftmaxParams { X = 0x100000, Y = 0x100000, Rows = 4, RowLength = 256, DType = (int)DskDType.BF16 };
        Refused(() => DskNative.Softmax(p with { RowLength = 0 }), "dsk_softmax", "row_length must be >= 1 (got 0)");
        Refused(() => DskNative.Softmax(p with { Y = 0x100000 + 512 }), "dsk_softmax", "y must be exactly x or not overlap it");
        Refused(() => DskNative.Softmax(p with { DType = (int)DskDType.Fp8E4M3 }), "dsk_softmax", "dtype FP8_E4M3 (3) is not supported",
            DskStatus.Unsupported);
    }
}
