using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The C# mirrors of the MoE params structs (ABI 4: dsk_moe_route_params, dsk_moe_permute_params, dsk_moe_combine_params)
/// have the header's layout byte for byte, LP64 (pointers and int64 8 bytes aligned to 8, int32 and float 4 aligned to 4,
/// the struct padded to 8): offsets worked out by hand from kernels/include/deepseek_kernels.h (abi_check.c asserts the
/// same numbers with offsetof), and the field order read from the header itself. No GPU or library needed.
/// </summary>
public sealed class NativeMoeStructLayoutTests
{
    [Fact]
    public void MoeRouteParamsMatchTheHeader()
    {
        Assert.Equal(88, Marshal.SizeOf<DskMoeRouteParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80],
            new[] { "Logits", "Bias", "ExpertIds", "ExpertWeights", "Tokens", "Experts", "TopK", "Groups", "TopKGroups", "Scoring", "Method",
                "Normalize", "LogitsDType", "RoutedScalingFactor", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskMoeRouteParams>));
        Assert.Equal(typeof(float), typeof(DskMoeRouteParams).GetField("RoutedScalingFactor")!.FieldType);
        Assert.Equal(typeof(int), typeof(DskMoeRouteParams).GetField("Experts")!.FieldType);
    }

    [Fact]
    public void MoePermuteParamsMatchTheHeader()
    {
        Assert.Equal(128, Marshal.SizeOf<DskMoePermuteParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 116, 120],
            new[] { "X", "ExpertIds", "Permuted", "ExpertOffsets", "SlotRows", "Workspace", "ErrorWord", "WorkspaceBytes", "Tokens", "TopK",
                "Hidden", "Experts", "XRowStride", "PermutedRowStride", "XDType", "ErrorSite", "Stream" }.Select(AbiHeader.Offset<DskMoePermuteParams>));
    }

    [Fact]
    public void MoeCombineParamsMatchTheHeader()
    {
        Assert.Equal(104, Marshal.SizeOf<DskMoeCombineParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 84, 88, 92, 96],
            new[] { "ExpertOutput", "SlotRows", "ExpertWeights", "Y", "ErrorWord", "Tokens", "TopK", "Hidden", "ExpertOutputRowStride",
                "YRowStride", "ExpertOutputDType", "YDType", "Accumulate", "ErrorSite", "Stream" }.Select(AbiHeader.Offset<DskMoeCombineParams>));
    }

    [Fact]
    public void EnumValuesMatchTheHeader()
    {
        Assert.Equal([0, 1], new[] { DskMoeScoring.Softmax, DskMoeScoring.Sigmoid }.Select(v => (int)v));
        Assert.Equal([0, 1, 2], new[] { DskMoeMethod.Greedy, DskMoeMethod.GroupLimitedGreedy, DskMoeMethod.NoAuxTc }.Select(v => (int)v));
        // the op API's enums carry the same names (MoeNative maps one to the other)
        Assert.Equal(Enum.GetNames<MoeScoring>(), Enum.GetNames<DskMoeScoring>());
        Assert.Equal(Enum.GetNames<MoeTopKMethod>(), Enum.GetNames<DskMoeMethod>());
        foreach (var line in new[] { "DSK_MOE_SCORING_SOFTMAX = 0", "DSK_MOE_SCORING_SIGMOID = 1", "DSK_MOE_METHOD_GREEDY = 0",
                     "DSK_MOE_METHOD_GROUP_LIMITED_GREEDY = 1", "DSK_MOE_METHOD_NOAUX_TC = 2" })
            Assert.Contains(line, AbiHeader.Text);
    }

    [Fact]
    public void TheFieldsAreTheHeadersInTheHeadersOrder()
    {
        Assert.Equal(AbiHeader.Fields("dsk_moe_route_params"), AbiHeader.CSharpFields<DskMoeRouteParams>());
        Assert.Equal(AbiHeader.Fields("dsk_moe_permute_params"), AbiHeader.CSharpFields<DskMoePermuteParams>());
        Assert.Equal(AbiHeader.Fields("dsk_moe_combine_params"), AbiHeader.CSharpFields<DskMoeCombineParams>());
    }
}

/// <summary>The native backend's support table rows for the MoE ops (f32 and bf16 taken, anything else refused with the kernel's name).</summary>
public class NativeMoeSupportTests
{
    [Theory]
    [InlineData("MoeRoute", "dsk_moe_route reads f32 or bf16 logits, not f16")]
    [InlineData("MoePermute", "dsk_moe_permute copies f32 or bf16 rows, not f16")]
    [InlineData("MoeCombine", "dsk_moe_combine takes f32 or bf16 expert rows and output, not f16")]
    public void TheMoeOpsAreTakenOnF32AndBf16(string op, string refusal)
    {
        Assert.Null(NativeBackend.Refusal(new OpSignature(op, ElementType.F32)));
        Assert.Null(NativeBackend.Refusal(new OpSignature(op, ElementType.BF16)));
        Assert.Equal(refusal, NativeBackend.Refusal(new OpSignature(op, ElementType.F16)));
    }
}

/// <summary>
/// dsk_moe_route, dsk_moe_permute(_workspace_size) and dsk_moe_combine refuse invalid requests sent straight through the
/// bindings with a message that starts with the op and names the field; the workspace size query answers from the sizes.
/// Fake, never-dereferenced device pointers, nothing launched: they run wherever libdeepseek_kernels.so was built, GPU or
/// not, and skip (with the reason) only where it was not or lacks the MoE kernels.
/// </summary>
public class NativeMoeAbiTests
{
    static void RequireLibrary()
    {
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");
        string[] entryPoints = ["dsk_moe_route", "dsk_moe_permute_workspace_size", "dsk_moe_permute", "dsk_moe_combine"];
        var missing = entryPoints.Where(e => !DskNative.Exports(e)).ToArray();
        Assert.SkipWhen(missing.Length > 0, $"{DskNative.LoadedFrom} lacks {string.Join(", ", missing)}: it was built without the MoE kernels.");
    }

    static void AssertNames(string op, string field, string message)
    {
        Assert.StartsWith(op + ": ", message);
        Assert.Matches(new Regex(@"(?<![A-Za-z0-9_])" + Regex.Escape(field) + @"(?![A-Za-z0-9_])"), message);
    }

    /// <summary>Would be valid with real buffers: DeepSeek-V3's routing of 4 tokens.</summary>
    static DskMoeRouteParams ValidRoute() => new()
    {
        Logits = 0x100000, Bias = 0x200000, ExpertIds = 0x300000, ExpertWeights = 0x400000,
        Tokens = 4, Experts = 256, TopK = 8, Groups = 8, TopKGroups = 4,
        Scoring = (int)DskMoeScoring.Sigmoid, Method = (int)DskMoeMethod.NoAuxTc, Normalize = 1, LogitsDType = (int)DskDType.F32,
        RoutedScalingFactor = 2.5f,
    };

    [Theory]
    [InlineData("null logits", "logits")]
    [InlineData("zero tokens", "tokens")]
    [InlineData("top_k 0", "top_k")]
    [InlineData("groups 3", "groups")]
    [InlineData("top_k_groups 9", "top_k_groups")]
    [InlineData("top_k past the kept groups", "top_k")]
    [InlineData("scaling NaN", "routed_scaling_factor")]
    [InlineData("ids over logits", "expert_ids")]
    public void MoeRouteRefusesInvalidRequestsNamingTheField(string fault, string field)
    {
        RequireLibrary();
        var p = ValidRoute();
        switch (fault)
        {
            case "null logits": p.Logits = 0; break;
            case "zero tokens": p.Tokens = 0; break;
            case "top_k 0": p.TopK = 0; break;
            case "groups 3": p.Groups = 3; break;
            case "top_k_groups 9": p.TopKGroups = 9; break;
            case "top_k past the kept groups": p.TopKGroups = 1; p.TopK = 33; break;
            case "scaling NaN": p.RoutedScalingFactor = float.NaN; break;
            case "ids over logits": p.ExpertIds = p.Logits + 16; break;
        }
        var status = DskNative.TryMoeRoute(p, out string message);
        Assert.True(status == DskStatus.InvalidArgument, $"{fault}: status {status} (message: {message})");
        AssertNames("dsk_moe_route", field, message);
    }

    [Fact]
    public void MoeRouteRefusesMoreExpertsThanItsSharedMemoryHolds()
    {
        RequireLibrary();
        var status = DskNative.TryMoeRoute(ValidRoute() with { Experts = 2048 }, out string message);
        Assert.Equal(DskStatus.Unsupported, status);
        Assert.Equal("dsk_moe_route: experts 2048 is not supported (at most 1024 in this build)", message);
    }

    static DskMoePermuteParams ValidPermute() => new()
    {
        X = 0x100000, ExpertIds = 0x200000, Permuted = 0x300000, ExpertOffsets = 0x400000, SlotRows = 0x500000, Workspace = 0x600000,
        ErrorWord = 0x700000, WorkspaceBytes = 4096, Tokens = 5, TopK = 3, Hidden = 64, Experts = 16, XRowStride = 64, PermutedRowStride = 64,
        XDType = (int)DskDType.BF16, ErrorSite = 9,
    };

    [Fact]
    public void ThePermuteWorkspaceComesFromTheSizesOnly()
    {
        RequireLibrary();
        // int32 counters [chunks of 256 slots, experts] + [chunks] + 1, in 16-byte units: 1 chunk x 16 + 1 + 1 -> 20 ints
        Assert.Equal(80, DskNative.MoePermuteWorkspaceSize(new DskMoePermuteParams { Tokens = 5, TopK = 3, Experts = 16 }));
        Assert.Equal((128 * 256 + 128 + 1 + 3) / 4 * 16, DskNative.MoePermuteWorkspaceSize(new DskMoePermuteParams { Tokens = 4096, TopK = 8, Experts = 256 }));
        var e = Assert.Throws<DskNativeException>(() => DskNative.MoePermuteWorkspaceSize(new DskMoePermuteParams { Tokens = 5, TopK = 0, Experts = 16 }));
        Assert.Equal(DskStatus.InvalidArgument, e.Status);
        AssertNames("dsk_moe_permute_workspace_size", "top_k", e.Message);
    }

    [Theory]
    [InlineData("null workspace", "workspace")]
    [InlineData("small workspace", "workspace_bytes")]
    [InlineData("null error_word", "error_word")]
    [InlineData("zero hidden", "hidden")]
    [InlineData("zero experts", "experts")]
    [InlineData("x_row_stride", "x_row_stride")]
    [InlineData("permuted over x", "permuted")]
    [InlineData("error_site 0", "error_site")]
    public void MoePermuteRefusesInvalidRequestsNamingTheField(string fault, string field)
    {
        RequireLibrary();
        var p = ValidPermute();
        switch (fault)
        {
            case "null workspace": p.Workspace = 0; break;
            case "small workspace": p.WorkspaceBytes = 79; break;
            case "null error_word": p.ErrorWord = 0; break;
            case "zero hidden": p.Hidden = 0; break;
            case "zero experts": p.Experts = 0; break;
            case "x_row_stride": p.XRowStride = 63; break;
            case "permuted over x": p.Permuted = p.X + 64; break;
            case "error_site 0": p.ErrorSite = 0; break;
        }
        var status = DskNative.TryMoePermute(p, out string message);
        Assert.True(status == DskStatus.InvalidArgument, $"{fault}: status {status} (message: {message})");
        AssertNames("dsk_moe_permute", field, message);
    }

    static DskMoeCombineParams ValidCombine() => new()
    {
        ExpertOutput = 0x100000, SlotRows = 0x200000, ExpertWeights = 0x300000, Y = 0x400000, ErrorWord = 0x500000,
        Tokens = 6, TopK = 2, Hidden = 40, ExpertOutputRowStride = 40, YRowStride = 40,
        ExpertOutputDType = (int)DskDType.F32, YDType = (int)DskDType.BF16, Accumulate = 1, ErrorSite = 10,
    };

    [Theory]
    [InlineData("null y", "y")]
    [InlineData("zero top_k", "top_k")]
    [InlineData("y_row_stride", "y_row_stride")]
    [InlineData("accumulate 2", "accumulate")]
    [InlineData("weights in y", "expert_weights")]
    public void MoeCombineRefusesInvalidRequestsNamingTheField(string fault, string field)
    {
        RequireLibrary();
        var p = ValidCombine();
        switch (fault)
        {
            case "null y": p.Y = 0; break;
            case "zero top_k": p.TopK = 0; break;
            case "y_row_stride": p.YRowStride = 39; break;
            case "accumulate 2": p.Accumulate = 2; break;
            case "weights in y": p.ExpertWeights = p.Y + 8; break;
        }
        var status = DskNative.TryMoeCombine(p, out string message);
        Assert.True(status == DskStatus.InvalidArgument, $"{fault}: status {status} (message: {message})");
        AssertNames("dsk_moe_combine", field, message);
    }

    [Fact]
    public void MoeCombineRefusesAnF16Output()
    {
        RequireLibrary();
        var e = Assert.Throws<DskNativeException>(() => DskNative.MoeCombine(ValidCombine() with { YDType = (int)DskDType.F16 }));
        Assert.Equal(DskStatus.Unsupported, e.Status);
        Assert.Equal("dsk_moe_combine: y_dtype F16 (2) is not supported (F32 or BF16)", e.Message);
    }
}
