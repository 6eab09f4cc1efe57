using DeepSeekKernels.Bindings;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The C ABI's own argument checks, called directly (bypassing the C# validation). They run wherever
/// libdeepseek_kernels.so was built, GPU or not: the checks return before any CUDA call.
/// </summary>
public class NativeAbiTests
{
    static void RequireLibrary() =>
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");

    static DskRmsNormParams Valid() => new()
    {
        X = 0x1000, W = 0x2000, Y = 0x3000,
        Rows = 2, Cols = 8, XRowStride = 8, ResidualRowStride = 8, YRowStride = 8, RRowStride = 8,
        Eps = 1e-6f, XDType = (int)DskDType.BF16, WDType = (int)DskDType.F32,
    };

    [Fact]
    public void TheLibraryHasTheExpectedAbiAndCudaVersion()
    {
        RequireLibrary();
        Assert.True(DskNative.CudaRuntimeVersion >= 11080, $"built with CUDA runtime {DskNative.CudaRuntimeVersion}");
    }

    public static TheoryData<string, string> BadParams => new()
    {
        { "null x", "x must not be NULL" },
        { "null y", "y must not be NULL" },
        { "zero rows", "rows must be >= 1 (got 0)" },
        { "zero cols", "cols must be >= 1 (got 0)" },
        { "short x stride", "x_row_stride must be >= cols (got 7, cols 8)" },
        { "zero eps", "eps must be finite and > 0" },
        { "NaN eps", "eps must be finite and > 0" },
        { "residual without r", "residual and r must be both NULL or both set" },
        { "r equals y", "r and y must differ" },
    };

    [Theory, MemberData(nameof(BadParams))]
    public void InvalidParamsAreRefusedWithAMessageNamingTheField(string fault, string expected)
    {
        RequireLibrary();
        var p = Valid();
        switch (fault)
        {
            case "null x": p.X = 0; break;
            case "null y": p.Y = 0; break;
            case "zero rows": p.Rows = 0; break;
            case "zero cols": p.Cols = 0; break;
            case "short x stride": p.XRowStride = 7; break;
            case "zero eps": p.Eps = 0; break;
            case "NaN eps": p.Eps = float.NaN; break;
            case "residual without r": p.Residual = 0x4000; break;
            case "r equals y": p.Residual = 0x4000; p.R = p.Y; break;
        }
        var status = DskNative.TryRmsNorm(p, out string message);
        Assert.Equal(DskStatus.InvalidArgument, status);
        Assert.StartsWith("dsk_rms_norm: ", message);
        Assert.Contains(expected, message);
    }

    [Fact]
    public void UnsupportedDtypesAreRefusedAsUnsupported()
    {
        RequireLibrary();
        var p = Valid();
        p.XDType = (int)DskDType.Fp8E4M3;
        Assert.Equal(DskStatus.Unsupported, DskNative.TryRmsNorm(p, out string message));
        Assert.StartsWith("dsk_rms_norm: ", message);
        Assert.Contains("x_dtype", message);
        var e = Assert.Throws<DskNativeException>(() => DskNative.RmsNorm(p));
        Assert.Equal(DskStatus.Unsupported, e.Status);
    }
}

/// <summary>The C# params structs mirror the C header's layout byte for byte (x86-64 Linux ABI).</summary>
public class NativeStructLayoutTests
{
    [Fact]
    public void RmsNormParamsMatchTheHeader()
    {
        Assert.Equal(112, System.Runtime.InteropServices.Marshal.SizeOf<DskRmsNormParams>());
        Assert.Equal(40, (int)System.Runtime.InteropServices.Marshal.OffsetOf<DskRmsNormParams>(nameof(DskRmsNormParams.Rows)));
        Assert.Equal(88, (int)System.Runtime.InteropServices.Marshal.OffsetOf<DskRmsNormParams>(nameof(DskRmsNormParams.Eps)));
        Assert.Equal(92, (int)System.Runtime.InteropServices.Marshal.OffsetOf<DskRmsNormParams>(nameof(DskRmsNormParams.XDType)));
        Assert.Equal(96, (int)System.Runtime.InteropServices.Marshal.OffsetOf<DskRmsNormParams>(nameof(DskRmsNormParams.WDType)));
        Assert.Equal(104, (int)System.Runtime.InteropServices.Marshal.OffsetOf<DskRmsNormParams>(nameof(DskRmsNormParams.Stream)));
    }
}
