using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>
/// <c>dsk_grouped_linear_params</c>: the experts' projections of a mixture of experts. For every expert e &lt; W.Count and
/// row r in ExpertOffsets[e] .. ExpertOffsets[e + 1]: y[r] = epilogue(x[r] @ W[e]^T) (NONE or SILU_MUL). The offsets are
/// device data, checked on the device and reported through ErrorWord (see the C header).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskGroupedLinearParams
{
    public IntPtr X;
    public IntPtr ExpertOffsets;
    public DskWeight W;
    public IntPtr Y;
    public IntPtr ErrorWord;
    public long M;
    public long XRowStride;
    public long YRowStride;
    public int XDType;
    public int YDType;
    public int Epilogue;
    public int Path;
    public int ErrorSite;
    public int Reserved;
    public IntPtr Stream;
}

public static partial class DskNative
{
    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_grouped_linear")]
    private static unsafe partial DskStatus GroupedLinearNative(DskGroupedLinearParams* p);

    /// <summary>Runs <c>dsk_grouped_linear</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void GroupedLinear(in DskGroupedLinearParams p)
    {
        EnsureLoaded();
        DskGroupedLinearParams copy = p;
        Check(GroupedLinearNative(&copy), "dsk_grouped_linear");
    }

    /// <summary>Like <see cref="GroupedLinear"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryGroupedLinear(in DskGroupedLinearParams p, out string message)
    {
        EnsureLoaded();
        DskGroupedLinearParams copy = p;
        var status = GroupedLinearNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }
}
