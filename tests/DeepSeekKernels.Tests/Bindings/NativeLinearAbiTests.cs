using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The C# mirrors of the weight-reading ops' params structs (dsk_weight, dsk_linear_params, dsk_embedding_params,
/// dsk_dequantize_fp8_params, dsk_quantize_fp8_act_params, dsk_linear_fp8_w8a8_params) have the header's layout byte for
/// byte. The offsets are worked out by hand from kernels/include/deepseek_kernels.h for LP64 (x86-64 and aarch64 Linux):
/// pointers and int64 8 bytes aligned to 8, int32 4 aligned to 4, a struct aligned as its widest member and padded to a
/// multiple of it; dsk_weight is 3 pointers + 3 int64 + 6 int32 = 72 bytes with no padding, so every struct that holds
/// one keeps its next 8-byte member at the weight's offset + 72. No GPU or library needed.
/// </summary>
public class NativeLinearStructLayoutTests
{
    [Fact]
    public void WeightMatchesTheHeader()
    {
        Assert.Equal(72, Marshal.SizeOf<DskWeight>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 52, 56, 60, 64, 68],
            new[] { "Data", "Scale", "Zero", "Rows", "Cols", "Count", "Scheme", "DType", "BlockRows", "BlockCols", "GroupSize", "Reserved" }
                .Select(AbiHeader.Offset<DskWeight>));
    }

    [Fact]
    public void LinearParamsMatchTheHeader()
    {
        Assert.Equal(200, Marshal.SizeOf<DskLinearParams>());
        Assert.Equal(
            [0, 8, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 172, 176, 180, 184, 188, 192],
            new[] { "X", "W", "Bias", "Residual", "Y", "M", "Batch", "XRowStride", "XBatchStride", "YRowStride", "YBatchStride",
                "ResidualRowStride", "ResidualBatchStride", "XDType", "TransposeW", "Epilogue", "Path", "YDType", "Reserved", "Stream" }
                .Select(AbiHeader.Offset<DskLinearParams>));
    }

    [Fact]
    public void EmbeddingParamsMatchTheHeader()
    {
        Assert.Equal(128, Marshal.SizeOf<DskEmbeddingParams>());
        Assert.Equal(
            [0, 8, 80, 88, 96, 104, 112, 116, 120],
            new[] { "Ids", "Table", "Y", "ErrorWord", "N", "YRowStride", "YDType", "ErrorSite", "Stream" }.Select(AbiHeader.Offset<DskEmbeddingParams>));
    }

    [Fact]
    public void DequantizeFp8ParamsMatchTheHeader()
    {
        Assert.Equal(88, Marshal.SizeOf<DskDequantizeFp8Params>());
        Assert.Equal([0, 72, 80], new[] { "W", "Y", "Stream" }.Select(AbiHeader.Offset<DskDequantizeFp8Params>));
    }

    [Fact]
    public void QuantizeFp8ActParamsMatchTheHeader()
    {
        Assert.Equal(64, Marshal.SizeOf<DskQuantizeFp8ActParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 52, 56],
            new[] { "X", "Q", "Scale", "M", "Cols", "XRowStride", "ActDType", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskQuantizeFp8ActParams>));
    }

    [Fact]
    public void LinearFp8W8A8ParamsMatchTheHeader()
    {
        Assert.Equal(136, Marshal.SizeOf<DskLinearFp8W8A8Params>());
        Assert.Equal(
            [0, 8, 16, 88, 96, 104, 112, 120, 124, 128],
            new[] { "Qx", "XScale", "W", "Bias", "Y", "M", "YRowStride", "ActDType", "Path", "Stream" }.Select(AbiHeader.Offset<DskLinearFp8W8A8Params>));
    }

    [Fact]
    public void EnumValuesMatchTheHeader()
    {
        Assert.Equal([0, 1, 2], new[] { DskWeightScheme.Dense, DskWeightScheme.Fp8Block, DskWeightScheme.Int4Group }.Select(v => (int)v));
        Assert.Equal([0, 1, 2, 3], new[] { DskLinearPath.Auto, DskLinearPath.Simt, DskLinearPath.Mma, DskLinearPath.MmaSync }.Select(v => (int)v));
        Assert.Equal([0, 1, 2], new[] { DskW8A8Path.Auto, DskW8A8Path.MmaSync, DskW8A8Path.Wgmma }.Select(v => (int)v));
        Assert.Equal([0, 1, 2], new[] { DskLinearEpilogue.None, DskLinearEpilogue.SiluMul, DskLinearEpilogue.Add }.Select(v => (int)v));
    }
}

/// <summary>
/// The native backend's side of the weight-reading ops without a GPU: the dsk_weight it builds from each weight form
/// (pointers, shape, scheme, dtype, blocks, groups: what the kernels are told), and its support table.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class NativeWeightMappingTests
{
    [Fact]
    public void DenseWeightsCarryTheirDataTypeAndNoScales()
    {
        using var f32 = TestDevices.Cpu.Upload<float>(new float[3 * 5 * 7]);
        using var bf16 = TestDevices.Cpu.Upload<BFloat16>(new BFloat16[5 * 7]);
        var a = LinearNative.For(WeightMatrix.Dense(f32.View, 5, 7, count: 3));
        Assert.Equal((f32.View.Pointer, IntPtr.Zero, IntPtr.Zero, 5L, 7L, 3L), (a.Data, a.Scale, a.Zero, a.Rows, a.Cols, a.Count));
        Assert.Equal(((int)DskWeightScheme.Dense, (int)DskDType.F32, 0, 0, 0, 0), (a.Scheme, a.DType, a.BlockRows, a.BlockCols, a.GroupSize, a.Reserved));
        var b = LinearNative.For(WeightMatrix.Dense(bf16.View.Slice(0, 5 * 7), 5, 7));
        Assert.Equal((bf16.View.Pointer, 1L, (int)DskWeightScheme.Dense, (int)DskDType.BF16), (b.Data, b.Count, b.Scheme, b.DType));
    }

    [Fact]
    public void Fp8WeightsCarryTheirScalesAndBlockShape()
    {
        // 2 matrices of [33, 20] in 16 x 8 blocks: 3 x 3 scales each (ragged last blocks have their own)
        using var data = TestDevices.Cpu.Upload<Float8E4M3>(new Float8E4M3[2 * 33 * 20]);
        using var scales = TestDevices.Cpu.Upload<float>(new float[2 * 3 * 3]);
        var w = WeightMatrix.Fp8(data.View, scales.View, 33, 20, blockRows: 16, blockCols: 8, count: 2);
        var d = LinearNative.For(w);
        Assert.Equal((data.View.Pointer, scales.View.Pointer, IntPtr.Zero), (d.Data, d.Scale, d.Zero));
        Assert.Equal((33L, 20L, 2L, (int)DskWeightScheme.Fp8Block, (int)DskDType.Fp8E4M3, 16, 8, 0),
            (d.Rows, d.Cols, d.Count, d.Scheme, d.DType, d.BlockRows, d.BlockCols, d.GroupSize));
        // one matrix of the stack: its own data and scales
        var second = LinearNative.For(w.Matrix(1));
        Assert.Equal((data.View.Pointer + 33 * 20, scales.View.Pointer + 9 * sizeof(float), 1L), (second.Data, second.Scale, second.Count));
    }

    [Fact]
    public void Int4WeightsCarryScalesZerosAndGroupSize()
    {
        using var packed = TestDevices.Cpu.Upload<Int4x2>(new Int4x2[3 * 64 / 2]);
        using var scales = TestDevices.Cpu.Upload<BFloat16>(new BFloat16[3 * 2]);
        using var zeros = TestDevices.Cpu.Upload<BFloat16>(new BFloat16[3 * 2]);
        var d = LinearNative.For(WeightMatrix.Int4(packed.View, scales.View, zeros.View, 3, 64, groupSize: 32));
        Assert.Equal((packed.View.Pointer, scales.View.Pointer, zeros.View.Pointer), (d.Data, d.Scale, d.Zero));
        Assert.Equal((3L, 64L, 1L, (int)DskWeightScheme.Int4Group, (int)DskDType.Int4, 0, 0, 32),
            (d.Rows, d.Cols, d.Count, d.Scheme, d.DType, d.BlockRows, d.BlockCols, d.GroupSize));
    }

    /// <summary>
    /// The native rows of the support table (what `dsk check` prints for native): RMSNorm's four pairs twice, Linear and
    /// LinearSiluMul and HeadwiseLinear over every weight form (f32 and bf16 activations, Linear also with strided rows),
    /// Embedding over the dense and INT4 tables, DequantizeFp8, the FP8 activation ops, and the paged attention ops (Rope,
    /// KvAppend, PagedAttention, PagedMlaAttention over f32 and bf16); nothing else yet. Every refusal says why.
    /// </summary>
    [Fact]
    public void TheNativeSupportTableCoversTheWeightReadingOps()
    {
        var supported = Ops.SupportSignatures.Where(s => NativeBackend.Refusal(s) == null).Select(s => s.ToString()).ToArray();
        string[] expected =
        [
            "RmsNorm(x=f32, w=f32)", "RmsNorm(x=f32, w=bf16)", "RmsNorm(x=bf16, w=f32)", "RmsNorm(x=bf16, w=bf16)",
            "AddRmsNorm(x=f32, w=f32)", "AddRmsNorm(x=f32, w=bf16)", "AddRmsNorm(x=bf16, w=f32)", "AddRmsNorm(x=bf16, w=bf16)",
            "Linear(x=f32, w=f32 dense)", "Linear(x=f32, w=bf16 dense)", "Linear(x=f32, w=fp8 block)", "Linear(x=f32, w=int4 group)",
            "Linear(x=f32, w=bf16 dense, strided)",
            "LinearSiluMul(x=f32, w=f32 dense)", "LinearSiluMul(x=f32, w=bf16 dense)", "LinearSiluMul(x=f32, w=fp8 block)",
            "LinearSiluMul(x=f32, w=int4 group)",
            "DequantizeFp8(x=f32, w=fp8 block)",
            "HeadwiseLinear(x=f32, w=f32 dense)", "HeadwiseLinear(x=f32, w=bf16 dense)", "HeadwiseLinear(x=f32, w=fp8 block)",
            "HeadwiseLinear(x=f32, w=int4 group)",
            "Embedding(x=f32, w=f32 dense)", "Embedding(x=f32, w=bf16 dense)", "Embedding(x=f32, w=int4 group)",
            "Rope(x=f32)",
            "KvAppend(x=f32, pages=f32)", "KvAppend(x=f32, pages=bf16)", "KvAppend(x=bf16, pages=bf16)",
            "PagedAttention(x=f32, head_dim=128, pages=f32)", "PagedAttention(x=f32, head_dim=128, pages=bf16)",
            "PagedMlaAttention(x=f32, head_dim=576, pages=f32)", "PagedMlaAttention(x=f32, head_dim=576, pages=bf16)",
            "CopyColumns(x=f32)", "SiluAndMul(x=f32)", "Softmax(x=f32)", "Add(x=f32)", "Scale(x=f32)",
            "MoeRoute(x=f32)", "MoePermute(x=f32)",
            "GroupedLinear(x=f32, w=f32 dense)", "GroupedLinear(x=f32, w=bf16 dense)", "GroupedLinear(x=f32, w=fp8 block)",
            "GroupedLinear(x=f32, w=int4 group)",
            "GroupedLinearSiluMul(x=f32, w=f32 dense)", "GroupedLinearSiluMul(x=f32, w=bf16 dense)",
            "GroupedLinearSiluMul(x=f32, w=fp8 block)", "GroupedLinearSiluMul(x=f32, w=int4 group)",
            "MoeCombine(x=f32)",
            "QuantizeFp8Activations(x=f32)", "LinearW8A8(x=f32, w=fp8 block)", "GroupedLinearW8A8(x=f32, w=fp8 block)",
            "Linear(x=bf16, w=bf16 dense)", "LinearSiluMul(x=bf16, w=bf16 dense)", "HeadwiseLinear(x=bf16, w=bf16 dense)",
            "Embedding(x=bf16, w=bf16 dense)", "GroupedLinear(x=bf16, w=bf16 dense)", "GroupedLinearSiluMul(x=bf16, w=bf16 dense)",
            "Rope(x=bf16)",
            "PagedAttention(x=bf16, head_dim=128, pages=bf16)", "PagedMlaAttention(x=bf16, head_dim=576, pages=bf16)",
            "CopyColumns(x=bf16)", "SiluAndMul(x=bf16)", "Softmax(x=bf16)", "Add(x=bf16)", "Scale(x=bf16)",
            "MoeRoute(x=bf16)", "MoePermute(x=bf16)", "MoeCombine(x=bf16)",
            "QuantizeFp8Activations(x=bf16)", "LinearW8A8(x=bf16, w=fp8 block)", "GroupedLinearW8A8(x=bf16, w=fp8 block)",
        ];
        Assert.Equal(expected, supported);
        Assert.All(Ops.SupportSignatures.Where(s => !expected.Contains(s.ToString())), s => Assert.False(string.IsNullOrWhiteSpace(NativeBackend.Refusal(s)), s.ToString()));
        Assert.Equal("no Attention kernel yet", NativeBackend.Refusal(new OpSignature("Attention", ElementType.F32) { HeadDim = 128 }));
        Assert.Contains("f32 or bf16 activations", NativeBackend.Refusal(new OpSignature("Linear", ElementType.F16) { Scheme = WeightScheme.Dense, Weight = ElementType.BF16 }));
        Assert.Contains("dense f32/bf16 or INT4 table",
            NativeBackend.Refusal(new OpSignature("Embedding", ElementType.F32) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3 }));
        // strided rows and bf16 activations are taken for every weight form, not only the rows the table lists
        Assert.Null(NativeBackend.Refusal(new OpSignature("HeadwiseLinear", ElementType.BF16) { Scheme = WeightScheme.Int4Group, Weight = ElementType.Int4, StridedRows = true }));
        Assert.Null(NativeBackend.Refusal(new OpSignature("Linear", ElementType.BF16) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3, StridedRows = true }));
    }
}

/// <summary>
/// dsk_linear, dsk_embedding and dsk_dequantize_fp8 refuse invalid requests, sent straight through the bindings (no C#
/// validation in between), with the header's status and a message that starts with the op and names the faulty field.
/// Every request here is invalid, with fake never-dereferenced device pointers, so nothing is launched: they run wherever
/// libdeepseek_kernels.so was built, GPU or not, and skip (with the reason) only where it was not.
/// </summary>
public class NativeLinearAbiTests
{
    static void RequireLibrary() =>
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");

    const int Out = 16, In = 64, M = 4;

    static DskWeight DenseBf16() => new()
    {
        Data = 0x20000, Rows = Out, Cols = In, Count = 1, Scheme = (int)DskWeightScheme.Dense, DType = (int)DskDType.BF16,
    };

    /// <summary>A request that would be valid with real buffers: bf16 x [4, 64] @ a bf16 [16, 64] weight^T into y [4, 16].</summary>
    static DskLinearParams ValidLinear() => new()
    {
        X = 0x10000, W = DenseBf16(), Y = 0x30000,
        M = M, Batch = 1,
        XRowStride = In, XBatchStride = M * In, YRowStride = Out, YBatchStride = M * Out,
        ResidualRowStride = Out, ResidualBatchStride = M * Out,
        XDType = (int)DskDType.BF16,
        YDType = (int)DskDType.BF16,
    };

    /// <summary>The field the message must name: the whole word (so "x" does not match "x_row_stride").</summary>
    static void AssertNames(string op, string field, string message)
    {
        Assert.StartsWith(op + ": ", message);
        Assert.Matches(new Regex(@"(?<![A-Za-z0-9_])" + Regex.Escape(field) + @"(?![A-Za-z0-9_])"), message);
    }

    public static TheoryData<string, DskStatus, string> BadLinear => new()
    {
        { "null x", DskStatus.InvalidArgument, "x" },
        { "null y", DskStatus.InvalidArgument, "y" },
        { "null w.data", DskStatus.InvalidArgument, "data" },
        { "zero m", DskStatus.InvalidArgument, "m" },
        { "zero batch", DskStatus.InvalidArgument, "batch" },
        { "zero w.rows", DskStatus.InvalidArgument, "rows" },
        { "zero w.cols", DskStatus.InvalidArgument, "cols" },
        { "w.count neither 1 nor batch", DskStatus.InvalidArgument, "count" },
        { "short x_row_stride", DskStatus.InvalidArgument, "x_row_stride" },
        { "short y_row_stride", DskStatus.InvalidArgument, "y_row_stride" },
        { "transpose_w 2", DskStatus.InvalidArgument, "transpose_w" },
        { "unknown path", DskStatus.InvalidArgument, "path" },
        { "unknown epilogue", DskStatus.InvalidArgument, "epilogue" },
        { "SiLU-mul with odd out", DskStatus.InvalidArgument, "out" },
        { "add without residual", DskStatus.InvalidArgument, "residual" },
        { "unknown scheme", DskStatus.InvalidArgument, "scheme" },
        { "dense FP8 data", DskStatus.Unsupported, "dtype" },
        { "FP8 without scales", DskStatus.InvalidArgument, "scale" },
        { "FP8 zero block_rows", DskStatus.InvalidArgument, "block_rows" },
        { "INT4 without zeros", DskStatus.InvalidArgument, "zero" },
        { "INT4 group_size 48", DskStatus.InvalidArgument, "group_size" },
        { "INT4 group_size not dividing cols", DskStatus.InvalidArgument, "group_size" },
        { "x_dtype F16", DskStatus.Unsupported, "x_dtype" },
        { "y_dtype F16", DskStatus.Unsupported, "y_dtype" },
    };

    [Theory, MemberData(nameof(BadLinear))]
    public void LinearRefusesInvalidRequestsNamingTheField(string fault, DskStatus status, string field)
    {
        RequireLibrary();
        var p = ValidLinear();
        var fp8 = DenseBf16() with { Scale = 0x40000, Scheme = (int)DskWeightScheme.Fp8Block, DType = (int)DskDType.Fp8E4M3, BlockRows = 128, BlockCols = 128 };
        var int4 = DenseBf16() with { Scale = 0x40000, Zero = 0x50000, Scheme = (int)DskWeightScheme.Int4Group, DType = (int)DskDType.Int4, GroupSize = 32 };
        switch (fault)
        {
            case "null x": p.X = 0; break;
            case "null y": p.Y = 0; break;
            case "null w.data": p.W.Data = 0; break;
            case "zero m": p.M = 0; break;
            case "zero batch": p.Batch = 0; break;
            case "zero w.rows": p.W.Rows = 0; break;
            case "zero w.cols": p.W.Cols = 0; break;
            case "w.count neither 1 nor batch": p.W.Count = 3; p.Batch = 2; break;
            case "short x_row_stride": p.XRowStride = In - 1; break;
            case "short y_row_stride": p.YRowStride = Out - 1; break;
            case "transpose_w 2": p.TransposeW = 2; break;
            case "unknown path": p.Path = 7; break;
            case "unknown epilogue": p.Epilogue = 9; break;
            case "SiLU-mul with odd out": p.W.Rows = Out + 1; p.Epilogue = (int)DskLinearEpilogue.SiluMul; break;
            case "add without residual": p.Epilogue = (int)DskLinearEpilogue.Add; break;
            case "unknown scheme": p.W.Scheme = 5; break;
            case "dense FP8 data": p.W.DType = (int)DskDType.Fp8E4M3; break;
            case "FP8 without scales": p.W = fp8 with { Scale = 0 }; break;
            case "FP8 zero block_rows": p.W = fp8 with { BlockRows = 0 }; break;
            case "INT4 without zeros": p.W = int4 with { Zero = 0 }; break;
            case "INT4 group_size 48": p.W = int4 with { GroupSize = 48 }; break;
            case "INT4 group_size not dividing cols": p.W = int4 with { Cols = 96, GroupSize = 64 }; p.XRowStride = 96; break;
            case "x_dtype F16": p.XDType = (int)DskDType.F16; break;
            case "y_dtype F16": p.YDType = (int)DskDType.F16; break;
        }
        var got = DskNative.TryLinear(p, out string message);
        Assert.True(got == status, $"{fault}: status {got}, want {status} (message: {message})");
        AssertNames("dsk_linear", field, message);
    }

    static DskEmbeddingParams ValidEmbedding() => new()
    {
        Ids = 0x10000, Table = DenseBf16() with { Rows = 100 }, Y = 0x30000, ErrorWord = 0x60000,
        N = 3, YRowStride = In, YDType = (int)DskDType.F32, ErrorSite = 1,
    };

    public static TheoryData<string, DskStatus, string> BadEmbedding => new()
    {
        { "null ids", DskStatus.InvalidArgument, "ids" },
        { "null y", DskStatus.InvalidArgument, "y" },
        { "null error_word", DskStatus.InvalidArgument, "error_word" },
        { "negative n", DskStatus.InvalidArgument, "n" },
        { "short y_row_stride", DskStatus.InvalidArgument, "y_row_stride" },
        { "table of two matrices", DskStatus.InvalidArgument, "count" },
        { "error_site 0", DskStatus.InvalidArgument, "error_site" },
        { "y_dtype F16", DskStatus.Unsupported, "y_dtype" },
    };

    [Theory, MemberData(nameof(BadEmbedding))]
    public void EmbeddingRefusesInvalidRequestsNamingTheField(string fault, DskStatus status, string field)
    {
        RequireLibrary();
        var p = ValidEmbedding();
        switch (fault)
        {
            case "null ids": p.Ids = 0; break;
            case "null y": p.Y = 0; break;
            case "null error_word": p.ErrorWord = 0; break;
            case "negative n": p.N = -1; break;
            case "short y_row_stride": p.YRowStride = In - 1; break;
            case "table of two matrices": p.Table.Count = 2; break;
            case "error_site 0": p.ErrorSite = 0; break;
            case "y_dtype F16": p.YDType = (int)DskDType.F16; break;
        }
        var e = Assert.Throws<DskNativeException>(() => DskNative.Embedding(p));
        Assert.True(e.Status == status, $"{fault}: status {e.Status}, want {status} (message: {e.Message})");
        AssertNames("dsk_embedding", field, e.Message);
    }

    [Fact]
    public void EmbeddingRefusesAnFp8Table()
    {
        RequireLibrary();
        var p = ValidEmbedding();
        p.Table = p.Table with { Scale = 0x40000, Scheme = (int)DskWeightScheme.Fp8Block, DType = (int)DskDType.Fp8E4M3, BlockRows = 128, BlockCols = 128 };
        var e = Assert.Throws<DskNativeException>(() => DskNative.Embedding(p));
        Assert.NotEqual(DskStatus.Cuda, e.Status);
        AssertNames("dsk_embedding", "table", e.Message);
    }

    static DskDequantizeFp8Params ValidDequantize() => new()
    {
        W = DenseBf16() with { Data = 0x20000, Scale = 0x40000, Scheme = (int)DskWeightScheme.Fp8Block, DType = (int)DskDType.Fp8E4M3, BlockRows = 128, BlockCols = 128 },
        Y = 0x30000,
    };

    public static TheoryData<string, string> BadDequantize => new()
    {
        { "null y", "y" },
        { "null w.data", "data" },
        { "null w.scale", "scale" },
        { "zero block_cols", "block_cols" },
        { "dense weight", "scheme" },
        { "zero count", "count" },
    };

    [Theory, MemberData(nameof(BadDequantize))]
    public void DequantizeFp8RefusesInvalidRequestsNamingTheField(string fault, string field)
    {
        RequireLibrary();
        var p = ValidDequantize();
        switch (fault)
        {
            case "null y": p.Y = 0; break;
            case "null w.data": p.W.Data = 0; break;
            case "null w.scale": p.W.Scale = 0; break;
            case "zero block_cols": p.W.BlockCols = 0; break;
            case "dense weight": p.W = DenseBf16(); break;
            case "zero count": p.W.Count = 0; break;
        }
        var e = Assert.Throws<DskNativeException>(() => DskNative.DequantizeFp8(p));
        Assert.True(e.Status == DskStatus.InvalidArgument, $"{fault}: status {e.Status}, want InvalidArgument (message: {e.Message})");
        AssertNames("dsk_dequantize_fp8", field, e.Message);
    }
}
