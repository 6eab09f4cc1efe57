using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>
/// <c>dsk_grouped_linear_fp8_w8a8_params</c>: the MoE experts' W8A8 product (FP8 activations times a stack of FP8 128x128
/// block-scaled expert weights). For every expert e &lt; W.Count and row r in ExpertOffsets[e] .. ExpertOffsets[e + 1],
/// y[r] is dsk_linear_fp8_w8a8's formula with matrix e and no bias. The offsets are device data, checked on the device and
/// reported through ErrorWord (see the C header).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskGroupedLinearFp8W8A8Params
{
    public IntPtr Qx;
    public IntPtr XScale;
    public IntPtr ExpertOffsets;
    public DskWeight W;
    public IntPtr Y;
    public IntPtr ErrorWord;
    public long M;
    public long YRowStride;
    public int ActDType;
    /// <summary>A <see cref="DskW8A8Path"/>; 0 (Auto) picks wgmma where it can run, else mma.sync.</summary>
    public int Path;
    public int ErrorSite;
    public int Reserved;
    public IntPtr Stream;
}

public static partial class DskNative
{
    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_grouped_linear_fp8_w8a8")]
    private static unsafe partial DskStatus GroupedLinearFp8W8A8Native(DskGroupedLinearFp8W8A8Params* p);

    /// <summary>Runs <c>dsk_grouped_linear_fp8_w8a8</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void GroupedLinearFp8W8A8(in DskGroupedLinearFp8W8A8Params p)
    {
        EnsureLoaded();
        DskGroupedLinearFp8W8A8Params copy = p;
        Check(GroupedLinearFp8W8A8Native(&copy), "dsk_grouped_linear_fp8_w8a8");
    }

    /// <summary>Like <see cref="GroupedLinearFp8W8A8"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryGroupedLinearFp8W8A8(in DskGroupedLinearFp8W8A8Params p, out string message)
    {
        EnsureLoaded();
        DskGroupedLinearFp8W8A8Params copy = p;
        var status = GroupedLinearFp8W8A8Native(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }
}
