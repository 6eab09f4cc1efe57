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
    public const int AbiVersion = 1;

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_last_error_message")]
    private static partial IntPtr LastErrorMessageNative();

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_abi_version")]
    private static partial int AbiVersionNative();

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_cuda_runtime_version")]
    private static partial int CudaRuntimeVersionNative();

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_rms_norm")]
    private static unsafe partial DskStatus RmsNormNative(DskRmsNormParams* p);

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
