using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>Status codes of libdeepseek_kernels.so (<c>dsk_status</c> in kernels/include/deepseek_kernels.h).</summary>
public enum DskStatus
{
    Success = 0,
    InvalidArgument = 1,
    Unsupported = 2,
    Cuda = 3,
}

/// <summary>Element types at the C boundary (<c>dsk_dtype</c>).</summary>
public enum DskDType
{
    F32 = 0,
    BF16 = 1,
    F16 = 2,
    Fp8E4M3 = 3,
    Int4 = 4,
    I32 = 5,
}

/// <summary><c>dsk_rms_norm_params</c>: RMSNorm with an optional fused residual add.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskRmsNormParams
{
    public IntPtr X;
    public IntPtr Residual;
    public IntPtr W;
    public IntPtr Y;
    public IntPtr R;
    public long Rows;
    public long Cols;
    public long XRowStride;
    public long ResidualRowStride;
    public long YRowStride;
    public long RRowStride;
    public float Eps;
    public int XDType;
    public int WDType;
    public IntPtr Stream;
}

/// <summary><c>dsk_weight_scheme</c>: how a <see cref="DskWeight"/> stores its values.</summary>
public enum DskWeightScheme
{
    Dense = 0,
    Fp8Block = 1,
    Int4Group = 2,
}

/// <summary><c>dsk_linear_path</c>: which kernel family dsk_linear uses (Auto picks by shape and dtype).</summary>
public enum DskLinearPath
{
    Auto = 0,
    Simt = 1,
    /// <summary>Tensor cores: Hopper's warpgroup MMA where the library holds sm_90a code and the GPU is cc 9.0, else mma.sync.</summary>
    Mma = 2,
    /// <summary>The tensor-core kernel on mma.sync only (every sm_80+ GPU).</summary>
    MmaSync = 3,
}

/// <summary><c>dsk_linear_epilogue</c>: what dsk_linear does with each fp32 dot product before rounding.</summary>
public enum DskLinearEpilogue
{
    None = 0,
    SiluMul = 1,
    Add = 2,
}

/// <summary><c>dsk_weight</c>: a stack of weight matrices in one scheme (see the C header).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskWeight
{
    public IntPtr Data;
    public IntPtr Scale;
    public IntPtr Zero;
    public long Rows;
    public long Cols;
    public long Count;
    public int Scheme;
    public int DType;
    public int BlockRows;
    public int BlockCols;
    public int GroupSize;
    public int Reserved;
}

/// <summary><c>dsk_linear_params</c>: D = X @ W^T over a batch of matrices, with bias and epilogue.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskLinearParams
{
    public IntPtr X;
    public DskWeight W;
    public IntPtr Bias;
    public IntPtr Residual;
    public IntPtr Y;
    public long M;
    public long Batch;
    public long XRowStride;
    public long XBatchStride;
    public long YRowStride;
    public long YBatchStride;
    public long ResidualRowStride;
    public long ResidualBatchStride;
    public int XDType;
    public int TransposeW;
    public int Epilogue;
    public int Path;
    public int YDType;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary><c>dsk_embedding_params</c>: row gather with device-side id checks through the error word.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskEmbeddingParams
{
    public IntPtr Ids;
    public DskWeight Table;
    public IntPtr Y;
    public IntPtr ErrorWord;
    public long N;
    public long YRowStride;
    public int YDType;
    public int ErrorSite;
    public IntPtr Stream;
}

/// <summary><c>dsk_dequantize_fp8_params</c>: an FP8 block-scaled weight to f32.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskDequantizeFp8Params
{
    public DskWeight W;
    public IntPtr Y;
    public IntPtr Stream;
}

/// <summary><c>dsk_quantize_fp8_act_params</c>: per-token 1x128 FP8 activation quantisation.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskQuantizeFp8ActParams
{
    public IntPtr X;
    public IntPtr Q;
    public IntPtr Scale;
    public long M;
    public long Cols;
    public long XRowStride;
    public int ActDType;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary><c>dsk_linear_fp8_w8a8_params</c>: FP8 activations times an FP8 128x128 block-scaled weight.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskLinearFp8W8A8Params
{
    public IntPtr Qx;
    public IntPtr XScale;
    public DskWeight W;
    public IntPtr Bias;
    public IntPtr Y;
    public long M;
    public long YRowStride;
    public int ActDType;
    /// <summary>A <see cref="DskW8A8Path"/>; 0 (Auto) picks wgmma where it can run, else mma.sync.</summary>
    public int Path;
    public IntPtr Stream;
}

/// <summary><c>dsk_w8a8_path</c>: which kernel family dsk_linear_fp8_w8a8 runs.</summary>
public enum DskW8A8Path
{
    /// <summary>Wgmma where it can run (a library built for sm_90a on a cc 9.0 GPU), else mma.sync.</summary>
    Auto = 0,
    /// <summary>mma.sync on any sm_80+ GPU (on Hopper at the bf16 rate at best).</summary>
    MmaSync = 1,
    /// <summary>Hopper's warpgroup FP8 tensor cores (sm_90a code, cc 9.0 GPUs).</summary>
    Wgmma = 2,
}

/// <summary><c>dsk_rope_layout</c>: which elements of a head's rotary part rotate together.</summary>
public enum DskRopeLayout
{
    /// <summary>(v[i], v[i + d/2]), i &lt; d/2: Llama, Qwen2.</summary>
    HalfSplit = 0,
    /// <summary>(v[2i], v[2i + 1]): DeepSeek's complex form.</summary>
    Interleaved = 1,
}

/// <summary><c>dsk_attention_path</c>: which kernel family paged attention uses (Auto picks by shape, dtype and GPU).</summary>
public enum DskAttentionPath
{
    Auto = 0,
    Simt = 1,
    /// <summary>Tensor cores: Hopper's warpgroup MMA where the library holds sm_90a code and the GPU is cc 9.0, else mma.sync.</summary>
    Mma = 2,
    /// <summary>The tensor-core kernel on mma.sync only (every sm_80+ GPU).</summary>
    MmaSync = 3,
}

/// <summary><c>dsk_rope_params</c>: rotary position embedding in place, positions from device memory (error word).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskRopeParams
{
    public IntPtr X;
    public IntPtr Positions;
    public IntPtr Cos;
    public IntPtr Sin;
    public IntPtr ErrorWord;
    public long Tokens;
    public long Heads;
    public long HeadStride;
    public long XRowStride;
    public long RopeOffset;
    public long RotaryDim;
    public long MaxPositions;
    public int XDType;
    public int Layout;
    public int ErrorSite;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary><c>dsk_kv_append_params</c>: new key (and value) rows into their pages through the slot mapping (error word).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskKvAppendParams
{
    public IntPtr Keys;
    public IntPtr Values;
    public IntPtr SlotMapping;
    public IntPtr KeyPages;
    public IntPtr ValuePages;
    public IntPtr ErrorWord;
    public long Tokens;
    public long Slots;
    public long KeyWidth;
    public long ValueWidth;
    public long KeysRowStride;
    public long ValuesRowStride;
    public int KeyDType;
    public int ValueDType;
    public int KeyPageDType;
    public int ValuePageDType;
    public int ErrorSite;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary>
/// <c>dsk_paged_attention_params</c>: causal paged attention of a batch (GQA through dsk_paged_attention, MLA through
/// dsk_paged_mla_attention), device metadata checked into the error word, split-K scratch in <see cref="Workspace"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskPagedAttentionParams
{
    public IntPtr Q;
    public IntPtr KeyPages;
    public IntPtr ValuePages;
    public IntPtr BlockTable;
    public IntPtr SequenceLengths;
    public IntPtr QueryStarts;
    public IntPtr Out;
    public IntPtr Workspace;
    public IntPtr ErrorWord;
    public long WorkspaceBytes;
    public long Tokens;
    public long Batch;
    public long MaxPages;
    public long Pages;
    public long PageSize;
    public long QHeads;
    public long KvHeads;
    public long HeadDim;
    public long VHeadDim;
    public float Scale;
    public int QDType;
    public int PageDType;
    public int OutDType;
    public int Path;
    public int MaxSplits;
    public int ErrorSiteBlockTable;
    public int ErrorSiteLengths;
    public int ErrorSiteQueryStarts;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary>A native kernel refused its arguments or the CUDA runtime reported an error; the message names the op.</summary>
public sealed class DskNativeException(DskStatus status, string message) : Exception(message)
{
    /// <summary>What kind of failure the library reported.</summary>
    public DskStatus Status { get; } = status;
}

/// <summary>The entry points of libdeepseek_kernels.so. Call through <see cref="DskNative"/> helpers that check status.</summary>
public static partial class DskNative
{
    /// <summary>The C header's DSK_ABI_VERSION these bindings were written against.</summary>
    public const int AbiVersion = 4;

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_last_error_message")]
    private static partial IntPtr LastErrorMessageNative();

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_abi_version")]
    private static partial int AbiVersionNative();

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_cuda_runtime_version")]
    private static partial int CudaRuntimeVersionNative();

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_rms_norm")]
    private static unsafe partial DskStatus RmsNormNative(DskRmsNormParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_linear")]
    private static unsafe partial DskStatus LinearNative(DskLinearParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_embedding")]
    private static unsafe partial DskStatus EmbeddingNative(DskEmbeddingParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_dequantize_fp8")]
    private static unsafe partial DskStatus DequantizeFp8Native(DskDequantizeFp8Params* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_quantize_fp8_act")]
    private static unsafe partial DskStatus QuantizeFp8ActNative(DskQuantizeFp8ActParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_linear_fp8_w8a8")]
    private static unsafe partial DskStatus LinearFp8W8A8Native(DskLinearFp8W8A8Params* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_rope")]
    private static unsafe partial DskStatus RopeNative(DskRopeParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_kv_append")]
    private static unsafe partial DskStatus KvAppendNative(DskKvAppendParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_paged_attention_workspace_size")]
    private static unsafe partial DskStatus PagedAttentionWorkspaceSizeNative(DskPagedAttentionParams* p, long* bytes);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_paged_attention")]
    private static unsafe partial DskStatus PagedAttentionNative(DskPagedAttentionParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_paged_mla_attention_workspace_size")]
    private static unsafe partial DskStatus PagedMlaAttentionWorkspaceSizeNative(DskPagedAttentionParams* p, long* bytes);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_paged_mla_attention")]
    private static unsafe partial DskStatus PagedMlaAttentionNative(DskPagedAttentionParams* p);

    static readonly Lazy<string?> LoadError = new(() =>
    {
        var result = NativeLibraryLocator.Load(NativeLibraryLocator.DeepSeekKernels);
        if (!result.Loaded)
            return result.Describe();
        int abi = AbiVersionNative();
        return abi == AbiVersion ? null
            : $"{result.LoadedFrom} has C ABI version {abi}, these bindings need {AbiVersion}; rebuild the native library.";
    });

    /// <summary>True when the library is found and has the expected ABI; otherwise <paramref name="reason"/> says why not.</summary>
    public static bool TryLoad(out string reason)
    {
        reason = LoadError.Value ?? "";
        return LoadError.Value is null;
    }

    /// <summary>Throws <see cref="DllNotFoundException"/> (listing where it looked) unless the library is usable.</summary>
    public static void EnsureLoaded()
    {
        if (LoadError.Value is { } error)
            throw new DllNotFoundException(error);
    }

    /// <summary>Whether the loaded library exports <paramref name="entryPoint"/> (false when it is not loaded).</summary>
    public static bool Exports(string entryPoint)
    {
        var result = NativeLibraryLocator.Load(NativeLibraryLocator.DeepSeekKernels);
        return result.Loaded && NativeLibrary.TryGetExport(result.Handle, entryPoint, out _);
    }

    /// <summary>The file the library was loaded from.</summary>
    public static string? LoadedFrom => NativeLibraryLocator.Load(NativeLibraryLocator.DeepSeekKernels).LoadedFrom;

    /// <summary>CUDA runtime version the library was built with (e.g. 11080).</summary>
    public static int CudaRuntimeVersion
    {
        get { EnsureLoaded(); return CudaRuntimeVersionNative(); }
    }

    /// <summary>Runs <c>dsk_rms_norm</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void RmsNorm(in DskRmsNormParams p)
    {
        EnsureLoaded();
        DskRmsNormParams copy = p;
        Check(RmsNormNative(&copy), "dsk_rms_norm");
    }

    /// <summary>Runs <c>dsk_linear</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void Linear(in DskLinearParams p)
    {
        EnsureLoaded();
        DskLinearParams copy = p;
        Check(LinearNative(&copy), "dsk_linear");
    }

    /// <summary>Like <see cref="Linear"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryLinear(in DskLinearParams p, out string message)
    {
        EnsureLoaded();
        DskLinearParams copy = p;
        var status = LinearNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }

    /// <summary>Runs <c>dsk_embedding</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void Embedding(in DskEmbeddingParams p)
    {
        EnsureLoaded();
        DskEmbeddingParams copy = p;
        Check(EmbeddingNative(&copy), "dsk_embedding");
    }

    /// <summary>Runs <c>dsk_dequantize_fp8</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void DequantizeFp8(in DskDequantizeFp8Params p)
    {
        EnsureLoaded();
        DskDequantizeFp8Params copy = p;
        Check(DequantizeFp8Native(&copy), "dsk_dequantize_fp8");
    }

    /// <summary>Runs <c>dsk_quantize_fp8_act</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void QuantizeFp8Act(in DskQuantizeFp8ActParams p)
    {
        EnsureLoaded();
        DskQuantizeFp8ActParams copy = p;
        Check(QuantizeFp8ActNative(&copy), "dsk_quantize_fp8_act");
    }

    /// <summary>Runs <c>dsk_linear_fp8_w8a8</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void LinearFp8W8A8(in DskLinearFp8W8A8Params p)
    {
        EnsureLoaded();
        DskLinearFp8W8A8Params copy = p;
        Check(LinearFp8W8A8Native(&copy), "dsk_linear_fp8_w8a8");
    }

    /// <summary>Runs <c>dsk_rope</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void Rope(in DskRopeParams p)
    {
        EnsureLoaded();
        DskRopeParams copy = p;
        Check(RopeNative(&copy), "dsk_rope");
    }

    /// <summary>Runs <c>dsk_kv_append</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void KvAppend(in DskKvAppendParams p)
    {
        EnsureLoaded();
        DskKvAppendParams copy = p;
        Check(KvAppendNative(&copy), "dsk_kv_append");
    }

    /// <summary>
    /// Bytes of split-K workspace <c>dsk_paged_attention</c> (or, with <paramref name="mla"/>, <c>dsk_paged_mla_attention</c>)
    /// needs for these params (the pointers may be zero); throws <see cref="DskNativeException"/> when the params are refused.
    /// </summary>
    public static unsafe long PagedAttentionWorkspaceSize(in DskPagedAttentionParams p, bool mla)
    {
        EnsureLoaded();
        DskPagedAttentionParams copy = p;
        long bytes = 0;
        if (mla)
            Check(PagedMlaAttentionWorkspaceSizeNative(&copy, &bytes), "dsk_paged_mla_attention_workspace_size");
        else
            Check(PagedAttentionWorkspaceSizeNative(&copy, &bytes), "dsk_paged_attention_workspace_size");
        return bytes;
    }

    /// <summary>Runs <c>dsk_paged_attention</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void PagedAttention(in DskPagedAttentionParams p)
    {
        EnsureLoaded();
        DskPagedAttentionParams copy = p;
        Check(PagedAttentionNative(&copy), "dsk_paged_attention");
    }

    /// <summary>Runs <c>dsk_paged_mla_attention</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void PagedMlaAttention(in DskPagedAttentionParams p)
    {
        EnsureLoaded();
        DskPagedAttentionParams copy = p;
        Check(PagedMlaAttentionNative(&copy), "dsk_paged_mla_attention");
    }

    /// <summary>
    /// Like <see cref="PagedAttention"/> / <see cref="PagedMlaAttention"/> but returns the status and message instead of
    /// throwing (for tests of the C ABI).
    /// </summary>
    public static unsafe DskStatus TryPagedAttention(in DskPagedAttentionParams p, bool mla, out string message)
    {
        EnsureLoaded();
        DskPagedAttentionParams copy = p;
        var status = mla ? PagedMlaAttentionNative(&copy) : PagedAttentionNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }

    /// <summary>Like <see cref="RmsNorm"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryRmsNorm(in DskRmsNormParams p, out string message)
    {
        EnsureLoaded();
        DskRmsNormParams copy = p;
        var status = RmsNormNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }

    static void Check(DskStatus status, string op)
    {
        if (status == DskStatus.Success)
            return;
        string message = LastErrorMessage();
        throw new DskNativeException(status, string.IsNullOrEmpty(message) ? $"{op} failed with status {status}" : message);
    }

    static string LastErrorMessage() => Marshal.PtrToStringUTF8(LastErrorMessageNative()) ?? "";
}
