using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The C# mirrors of the attention ops' params structs (ABI 3: dsk_rope_params, dsk_kv_append_params,
/// dsk_paged_attention_params) have the header's layout byte for byte, LP64 (pointers and int64 8 bytes aligned to 8,
/// int32 and float 4 aligned to 4, the struct padded to 8). The offsets are worked out by hand from
/// kernels/include/deepseek_kernels.h (and agree with gcc's offsetof on it); the field order is also read from the
/// header itself, so a field added there and not here fails. No GPU or library needed.
/// </summary>
public sealed partial class NativeAttentionStructLayoutTests
{
    [Fact]
    public void RopeParamsMatchTheHeader()
    {
        Assert.Equal(120, Marshal.SizeOf<DskRopeParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 100, 104, 108, 112],
            new[] { "X", "Positions", "Cos", "Sin", "ErrorWord", "Tokens", "Heads", "HeadStride", "XRowStride", "RopeOffset", "RotaryDim",
                "MaxPositions", "XDType", "Layout", "ErrorSite", "Reserved", "Stream" }.Select(AbiHeader.Offset<DskRopeParams>));
    }

    [Fact]
    public void KvAppendParamsMatchTheHeader()
    {
        Assert.Equal(128, Marshal.SizeOf<DskKvAppendParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 100, 104, 108, 112, 116, 120],
            new[] { "Keys", "Values", "SlotMapping", "KeyPages", "ValuePages", "ErrorWord", "Tokens", "Slots", "KeyWidth", "ValueWidth",
                "KeysRowStride", "ValuesRowStride", "KeyDType", "ValueDType", "KeyPageDType", "ValuePageDType", "ErrorSite", "Reserved", "Stream" }
                .Select(AbiHeader.Offset<DskKvAppendParams>));
    }

    [Fact]
    public void PagedAttentionParamsMatchTheHeader()
    {
        Assert.Equal(200, Marshal.SizeOf<DskPagedAttentionParams>());
        Assert.Equal(
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 156, 160, 164, 168, 172, 176, 180, 184, 188, 192],
            new[] { "Q", "KeyPages", "ValuePages", "BlockTable", "SequenceLengths", "QueryStarts", "Out", "Workspace", "ErrorWord",
                "WorkspaceBytes", "Tokens", "Batch", "MaxPages", "Pages", "PageSize", "QHeads", "KvHeads", "HeadDim", "VHeadDim", "Scale",
                "QDType", "PageDType", "OutDType", "Path", "MaxSplits", "ErrorSiteBlockTable", "ErrorSiteLengths", "ErrorSiteQueryStarts",
                "Reserved", "Stream" }.Select(AbiHeader.Offset<DskPagedAttentionParams>));
        Assert.Equal(typeof(float), typeof(DskPagedAttentionParams).GetField("Scale")!.FieldType);
    }

    [Fact]
    public void EnumValuesMatchTheHeader()
    {
        Assert.Equal([0, 1], new[] { DskRopeLayout.HalfSplit, DskRopeLayout.Interleaved }.Select(v => (int)v));
        Assert.Equal([0, 1, 2, 3], new[] { DskAttentionPath.Auto, DskAttentionPath.Simt, DskAttentionPath.Mma, DskAttentionPath.MmaSync }.Select(v => (int)v));
        // the op API's layouts carry the same names (RopeNative maps one to the other)
        Assert.Equal(Enum.GetNames<RopeLayout>(), Enum.GetNames<DskRopeLayout>());
    }

    [GeneratedRegex(@"#define\s+DSK_ABI_VERSION\s+(\d+)")]
    private static partial Regex AbiDefine();

    [Fact]
    public void TheBindingsAbiVersionIsTheHeaders()
    {
        var match = AbiDefine().Match(AbiHeader.Text);
        Assert.True(match.Success, "DSK_ABI_VERSION not found in the header");
        Assert.Equal(DskNative.AbiVersion, int.Parse(match.Groups[1].Value));
    }

    [Fact]
    public void TheFieldsAreTheHeadersInTheHeadersOrder()
    {
        Assert.Equal(AbiHeader.Fields("dsk_rope_params"), AbiHeader.CSharpFields<DskRopeParams>());
        Assert.Equal(AbiHeader.Fields("dsk_kv_append_params"), AbiHeader.CSharpFields<DskKvAppendParams>());
        Assert.Equal(AbiHeader.Fields("dsk_paged_attention_params"), AbiHeader.CSharpFields<DskPagedAttentionParams>());
    }
}

/// <summary>
/// The native backend's answers for the attention ops without a GPU: its support table rows (Rope, KvAppend, PagedAttention,
/// PagedMlaAttention over f32 and bf16, every pairing of activation and page types the C ABI takes, any head size), the
/// refusals naming the kernel and the type, and the growth rule of its split-K workspace.
/// </summary>
public class NativeAttentionSupportTests
{
    static readonly ElementType[] Types = [ElementType.F32, ElementType.BF16];

    [Fact]
    public void RopeIsTakenOnF32AndBf16Heads()
    {
        foreach (var x in Types)
            Assert.Null(NativeBackend.Refusal(new OpSignature("Rope", x)));
        Assert.Equal("dsk_rope takes f32 or bf16 heads, not f16", NativeBackend.Refusal(new OpSignature("Rope", ElementType.F16)));
    }

    [Fact]
    public void KvAppendIsTakenForEveryPairOfRowAndPageTypes()
    {
        foreach (var x in Types)
            foreach (var pages in Types)
            {
                var s = new OpSignature("KvAppend", x) { Pages = pages };
                Assert.Null(NativeBackend.Refusal(s));
                Assert.Null(NativeBackend.Refusal(s with { StridedRows = true }));
            }
        Assert.Contains("f32 or bf16 pages, not fp8", NativeBackend.Refusal(new OpSignature("KvAppend", ElementType.BF16) { Pages = ElementType.Fp8E4M3 }));
        Assert.StartsWith("dsk_kv_append takes f32 or bf16 rows", NativeBackend.Refusal(new OpSignature("KvAppend", ElementType.F16) { Pages = ElementType.BF16 }));
    }

    [Theory, InlineData("PagedAttention", "dsk_paged_attention"), InlineData("PagedMlaAttention", "dsk_paged_mla_attention")]
    public void PagedAttentionIsTakenOverF32AndBf16PagesAtAnyHeadSize(string op, string kernel)
    {
        foreach (var x in Types)
            foreach (var pages in Types)
                foreach (int headDim in (int[])[64, 128, 192, 576])
                    Assert.Null(NativeBackend.Refusal(new OpSignature(op, x) { HeadDim = headDim, Pages = pages }));
        Assert.Equal($"{kernel} takes f32 or bf16 queries and output, not f16",
            NativeBackend.Refusal(new OpSignature(op, ElementType.F16) { HeadDim = 128, Pages = ElementType.BF16 }));
        Assert.Equal($"{kernel} reads f32 or bf16 pages, not f16",
            NativeBackend.Refusal(new OpSignature(op, ElementType.BF16) { HeadDim = 128, Pages = ElementType.F16 }));
    }

    [Fact]
    public void TheNonPagedAttentionOpsStayRefused()
    {
        Assert.Equal("no Attention kernel yet", NativeBackend.Refusal(new OpSignature("Attention", ElementType.BF16) { HeadDim = 128 }));
        Assert.Equal("no MlaAttention kernel yet", NativeBackend.Refusal(new OpSignature("MlaAttention", ElementType.BF16) { HeadDim = 576 }));
    }

    [Fact]
    public void HeadsWiderThanTheCudaCoreFamilyTakesAreRefused()
    {
        Assert.Null(NativeBackend.Refusal(new OpSignature("PagedMlaAttention", ElementType.BF16) { HeadDim = 576, Pages = ElementType.BF16 }));
        Assert.Null(NativeBackend.Refusal(new OpSignature("PagedAttention", ElementType.F32) { HeadDim = 768, Pages = ElementType.F32 }));
        Assert.Equal("the CUDA-core attention kernels take heads of up to 768 elements, not 1024",
            NativeBackend.Refusal(new OpSignature("PagedAttention", ElementType.BF16) { HeadDim = 1024, Pages = ElementType.BF16 }));
    }

    /// <summary>
    /// A caller's workspace of <see cref="PagedBatch.WorkspaceBytes"/> caps the hand kernels' splits
    /// (<see cref="PagedAttentionNative.MaxSplitsFor"/>) so that what the library then asks fits: checked against the
    /// library's sizing formulas (kernels/paged_attention_simt.cu and paged_mla_mma.cu, transcribed) over decode and
    /// prefill shapes; a decode step of the planned rows (within the cap) keeps the split count of 256-key splits; at least
    /// one split always.
    /// </summary>
    [Fact]
    public void TheSplitCapKeepsTheLibrarysWorkspaceWithinTheCallersOne()
    {
        static long R16(long n) => (n + 15) / 16 * 16;
        foreach (var (rows, heads, dim, keys, batch) in new[] { (1, 128, 512, 4096, 1), (64, 32, 128, 32768, 64), (128, 128, 512, 4096, 128), (3, 7, 64, 2500, 3), (16, 16, 512, 163840, 16) })
        {
            long bytes = PagedBatch.WorkspaceBytes(rows, heads, dim, keys, batch);
            foreach (long tokens in new long[] { 1, rows, Math.Max(rows, 8), 256, 4096 })
            {
                long b = Math.Min(tokens, batch);
                int cap = PagedAttentionNative.MaxSplitsFor(bytes, tokens, b, heads, dim);
                Assert.InRange(cap, 1, int.MaxValue);
                long simt = cap <= 1 ? 0 : R16((long)cap * tokens * heads * 4) + (long)cap * tokens * heads * dim * 4;
                long mla = R16((b + 1) * 4) + (cap <= 1 ? 0 : R16((long)cap * tokens * heads * 4) + (long)cap * tokens * heads * dim * 4);
                Assert.True(256 + R16(Math.Max(simt, mla)) <= bytes, $"{tokens} tokens of {heads} x {dim} over {keys} keys: {cap} splits need more than {bytes} B");
                long perRow = heads * ((keys + 255L) / 256) * (dim + 2L) * 4;
                if (tokens <= Math.Max(rows, PagedBatch.WorkspaceMinRows) && Math.Max(rows, PagedBatch.WorkspaceMinRows) * perRow <= PagedBatch.WorkspaceCapBytes)
                    Assert.True(cap >= (keys + 255) / 256, $"a step of {tokens} rows gets {cap} splits, fewer than the {(keys + 255) / 256} of 256 keys");
            }
        }
        Assert.Equal(1, PagedAttentionNative.MaxSplitsFor(0, 1, 1, 1, 1));
    }

    [Fact]
    public void TheWorkspaceGrowsInWholeMebibytesAndAtLeastDoubles()
    {
        const long MiB = KernelWorkspace.Granule;
        Assert.Equal(1 << 20, MiB);
        Assert.Equal(MiB, KernelWorkspace.GrownSize(1, 0));
        Assert.Equal(MiB, KernelWorkspace.GrownSize(MiB, 0));
        Assert.Equal(2 * MiB, KernelWorkspace.GrownSize(MiB + 1, 0));
        Assert.Equal(2 * MiB, KernelWorkspace.GrownSize(MiB + 1, MiB)); // double the old buffer covers it
        Assert.Equal(8 * MiB, KernelWorkspace.GrownSize(5 * MiB, 4 * MiB));
        Assert.Equal(13 * MiB, KernelWorkspace.GrownSize(12 * MiB + 5, 2 * MiB)); // a big jump takes what it needs
    }
}

/// <summary>
/// dsk_rope, dsk_kv_append, dsk_paged_attention and dsk_paged_mla_attention refuse invalid requests sent straight through
/// the bindings (no C# validation in between) with a message that starts with the op and names the field. Every request
/// is invalid, with fake never-dereferenced device pointers, so nothing is launched: they run wherever
/// libdeepseek_kernels.so was built, GPU or not, and skip (with the reason) only where it was not.
/// </summary>
public class NativeAttentionAbiTests
{
    /// <summary>
    /// Skips where the library was not built, or was built from a tree without the attention kernels (the ABI 3 header
    /// with kernels/rope.cu, kv_append.cu, paged_attention*.cu not yet present: the entry points are then missing).
    /// </summary>
    static void RequireLibrary()
    {
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");
        string[] entryPoints = ["dsk_rope", "dsk_kv_append", "dsk_paged_attention_workspace_size", "dsk_paged_attention",
            "dsk_paged_mla_attention_workspace_size", "dsk_paged_mla_attention"];
        var missing = entryPoints.Where(e => !DskNative.Exports(e)).ToArray();
        Assert.SkipWhen(missing.Length > 0, $"{DskNative.LoadedFrom} lacks {string.Join(", ", missing)}: it was built without the attention kernels.");
    }

    static void AssertNames(string op, string field, string message)
    {
        Assert.StartsWith(op + ": ", message);
        Assert.Matches(new Regex(@"(?<![A-Za-z0-9_])" + Regex.Escape(field) + @"(?![A-Za-z0-9_])"), message);
    }

    /// <summary>Would be valid with real buffers: 2 sequences, 3 query tokens, 8 q / 2 kv heads of 64, 4 pages of 16 (bf16).</summary>
    static DskPagedAttentionParams ValidAttention() => new()
    {
        Q = 0x10000, KeyPages = 0x20000, ValuePages = 0x30000, BlockTable = 0x40000, SequenceLengths = 0x50000, QueryStarts = 0x60000,
        Out = 0x70000, ErrorWord = 0x80000,
        Tokens = 3, Batch = 2, MaxPages = 2, Pages = 4, PageSize = 16, QHeads = 8, KvHeads = 2, HeadDim = 64, VHeadDim = 64,
        Scale = 0.125f, QDType = (int)DskDType.BF16, PageDType = (int)DskDType.BF16, OutDType = (int)DskDType.BF16,
        ErrorSiteBlockTable = 1, ErrorSiteLengths = 2, ErrorSiteQueryStarts = 3,
    };

    public static TheoryData<string, string> BadAttention => new()
    {
        { "null q", "q" },
        { "null out", "out" },
        { "null error_word", "error_word" },
        { "null block_table", "block_table" },
        { "zero tokens", "tokens" },
        { "zero batch", "batch" },
        { "zero page_size", "page_size" },
        { "error_site_lengths 0", "error_site_lengths" },
    };

    [Theory, MemberData(nameof(BadAttention))]
    public void PagedAttentionRefusesInvalidRequestsNamingTheField(string fault, string field)
    {
        RequireLibrary();
        var p = ValidAttention();
        switch (fault)
        {
            case "null q": p.Q = 0; break;
            case "null out": p.Out = 0; break;
            case "null error_word": p.ErrorWord = 0; break;
            case "null block_table": p.BlockTable = 0; break;
            case "zero tokens": p.Tokens = 0; break;
            case "zero batch": p.Batch = 0; break;
            case "zero page_size": p.PageSize = 0; break;
            case "error_site_lengths 0": p.ErrorSiteLengths = 0; break;
        }
        var status = DskNative.TryPagedAttention(p, mla: false, out string message);
        Assert.True(status == DskStatus.InvalidArgument, $"{fault}: status {status} (message: {message})");
        AssertNames("dsk_paged_attention", field, message);
        // the size call reads only sizes, dtypes and the path: pointers and error sites may be anything there
        if (fault.StartsWith("zero", StringComparison.Ordinal))
        {
            var e = Assert.Throws<DskNativeException>(() => DskNative.PagedAttentionWorkspaceSize(p, mla: false));
            Assert.Equal(DskStatus.InvalidArgument, e.Status);
            AssertNames("dsk_paged_attention_workspace_size", field, e.Message[e.Message.IndexOf("dsk_paged_attention_workspace_size", StringComparison.Ordinal)..]);
        }
        else
        {
            Assert.True(DskNative.PagedAttentionWorkspaceSize(p, mla: false) >= 256);
        }
    }

    [Fact]
    public void MlaRefusesMoreThanOneKvHead()
    {
        RequireLibrary();
        var p = ValidAttention() with { ValuePages = 0, KvHeads = 2, HeadDim = 576, VHeadDim = 512 };
        var status = DskNative.TryPagedAttention(p, mla: true, out string message);
        Assert.True(status == DskStatus.InvalidArgument, $"status {status} (message: {message})");
        AssertNames("dsk_paged_mla_attention", "kv_heads", message);
    }

    [Fact]
    public void RopeRefusesAnOddRotaryDim()
    {
        RequireLibrary();
        var p = new DskRopeParams
        {
            X = 0x10000, Positions = 0x20000, Cos = 0x30000, Sin = 0x40000, ErrorWord = 0x50000,
            Tokens = 2, Heads = 4, HeadStride = 64, XRowStride = 256, RotaryDim = 63, MaxPositions = 100,
            XDType = (int)DskDType.BF16, ErrorSite = 1,
        };
        var e = Assert.Throws<DskNativeException>(() => DskNative.Rope(p));
        Assert.Equal(DskStatus.InvalidArgument, e.Status);
        AssertNames("dsk_rope", "rotary_dim", e.Message);
    }

    [Fact]
    public void KvAppendRefusesANullErrorWord()
    {
        RequireLibrary();
        var p = new DskKvAppendParams
        {
            Keys = 0x10000, SlotMapping = 0x20000, KeyPages = 0x30000,
            Tokens = 2, Slots = 64, KeyWidth = 576, KeysRowStride = 576,
            KeyDType = (int)DskDType.BF16, ValueDType = (int)DskDType.BF16, KeyPageDType = (int)DskDType.BF16, ValuePageDType = (int)DskDType.BF16,
            ErrorSite = 1,
        };
        var e = Assert.Throws<DskNativeException>(() => DskNative.KvAppend(p));
        Assert.Equal(DskStatus.InvalidArgument, e.Status);
        AssertNames("dsk_kv_append", "error_word", e.Message);
    }
}
