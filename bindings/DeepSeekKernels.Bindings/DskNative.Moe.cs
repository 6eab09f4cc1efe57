using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary><c>dsk_moe_scoring</c>: router logits to scores.</summary>
public enum DskMoeScoring
{
    Softmax = 0,
    Sigmoid = 1,
}

/// <summary><c>dsk_moe_method</c>: how the top-k experts are chosen.</summary>
public enum DskMoeMethod
{
    Greedy = 0,
    GroupLimitedGreedy = 1,
    NoAuxTc = 2,
}

/// <summary><c>dsk_moe_route_params</c>: per token, the top-k experts and their weights from the router logits.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskMoeRouteParams
{
    public IntPtr Logits;
    public IntPtr Bias;
    public IntPtr ExpertIds;
    public IntPtr ExpertWeights;
    public long Tokens;
    public int Experts;
    public int TopK;
    public int Groups;
    public int TopKGroups;
    public int Scoring;
    public int Method;
    public int Normalize;
    public int LogitsDType;
    public float RoutedScalingFactor;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary>
/// <c>dsk_moe_permute_params</c>: the slots grouped by expert (a stable counting sort), x's rows copied into that order;
/// expert ids checked into the error word; scratch in <see cref="Workspace"/> (<see cref="DskNative.MoePermuteWorkspaceSize"/>).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskMoePermuteParams
{
    public IntPtr X;
    public IntPtr ExpertIds;
    public IntPtr Permuted;
    public IntPtr ExpertOffsets;
    public IntPtr SlotRows;
    public IntPtr Workspace;
    public IntPtr ErrorWord;
    public long WorkspaceBytes;
    public long Tokens;
    public long TopK;
    public long Hidden;
    public long Experts;
    public long XRowStride;
    public long PermutedRowStride;
    public int XDType;
    public int ErrorSite;
    public IntPtr Stream;
}

/// <summary><c>dsk_moe_combine_params</c>: each token's expert rows gathered through slot_rows and summed weighted (error word).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskMoeCombineParams
{
    public IntPtr ExpertOutput;
    public IntPtr SlotRows;
    public IntPtr ExpertWeights;
    public IntPtr Y;
    public IntPtr ErrorWord;
    public long Tokens;
    public long TopK;
    public long Hidden;
    public long ExpertOutputRowStride;
    public long YRowStride;
    public int ExpertOutputDType;
    public int YDType;
    public int Accumulate;
    public int ErrorSite;
    public IntPtr Stream;
}

public static partial class DskNative
{
    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_moe_route")]
    private static unsafe partial DskStatus MoeRouteNative(DskMoeRouteParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_moe_permute_workspace_size")]
    private static unsafe partial DskStatus MoePermuteWorkspaceSizeNative(DskMoePermuteParams* p, long* bytes);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_moe_permute")]
    private static unsafe partial DskStatus MoePermuteNative(DskMoePermuteParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_moe_combine")]
    private static unsafe partial DskStatus MoeCombineNative(DskMoeCombineParams* p);

    /// <summary>Runs <c>dsk_moe_route</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void MoeRoute(in DskMoeRouteParams p)
    {
        EnsureLoaded();
        DskMoeRouteParams copy = p;
        Check(MoeRouteNative(&copy), "dsk_moe_route");
    }

    /// <summary>
    /// Bytes of workspace <c>dsk_moe_permute</c> needs for these params (from tokens, top_k and experts; the pointers may be
    /// zero); throws <see cref="DskNativeException"/> when the sizes are refused.
    /// </summary>
    public static unsafe long MoePermuteWorkspaceSize(in DskMoePermuteParams p)
    {
        EnsureLoaded();
        DskMoePermuteParams copy = p;
        long bytes = 0;
        Check(MoePermuteWorkspaceSizeNative(&copy, &bytes), "dsk_moe_permute_workspace_size");
        return bytes;
    }

    /// <summary>Runs <c>dsk_moe_permute</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void MoePermute(in DskMoePermuteParams p)
    {
        EnsureLoaded();
        DskMoePermuteParams copy = p;
        Check(MoePermuteNative(&copy), "dsk_moe_permute");
    }

    /// <summary>Runs <c>dsk_moe_combine</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void MoeCombine(in DskMoeCombineParams p)
    {
        EnsureLoaded();
        DskMoeCombineParams copy = p;
        Check(MoeCombineNative(&copy), "dsk_moe_combine");
    }

    /// <summary>Like <see cref="MoeRoute"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryMoeRoute(in DskMoeRouteParams p, out string message)
    {
        EnsureLoaded();
        DskMoeRouteParams copy = p;
        var status = MoeRouteNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }

    /// <summary>Like <see cref="MoePermute"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryMoePermute(in DskMoePermuteParams p, out string message)
    {
        EnsureLoaded();
        DskMoePermuteParams copy = p;
        var status = MoePermuteNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }

    /// <summary>Like <see cref="MoeCombine"/> but returns the status and message instead of throwing (for tests of the C ABI).</summary>
    public static unsafe DskStatus TryMoeCombine(in DskMoeCombineParams p, out string message)
    {
        EnsureLoaded();
        DskMoeCombineParams copy = p;
        var status = MoeCombineNative(&copy);
        message = status == DskStatus.Success ? "" : LastErrorMessage();
        return status;
    }
}
