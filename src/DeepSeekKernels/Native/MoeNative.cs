using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Mixture-of-experts routing, permutation and combine through the hand-CUDA kernels (dsk_moe_route, dsk_moe_permute,
/// dsk_moe_combine: kernels/moe_*.cu) on the runtime's stream. Routing reads f32 or bf16 logits; the permutation copies f32
/// or bf16 rows bit for bit (x and permuted of one type); the combine reads f32 or bf16 expert rows into an f32 or bf16
/// destination. Expert ids and slot rows are device data: a bad one is recorded in the runtime's error word under
/// <see cref="DeviceErrorSite.MoePermuteIds"/> / <see cref="DeviceErrorSite.MoeCombineRows"/> (a
/// <see cref="DeviceIndexException"/> at the next synchronisation). The permutation's scratch (per-chunk expert counts)
/// comes from the backend's MoE <see cref="KernelWorkspace"/> (the same grow-once, capture-safe device buffer the
/// attention kernels use, a separate instance), sized by dsk_moe_permute_workspace_size.
/// </summary>
internal static class MoeNative
{
    /// <summary>ids, weights [tokens, routing.TopK] from logits [tokens, routing.Experts] (and bias [routing.Experts] or default).</summary>
    public static void Route(DeviceRuntime runtime, DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids,
        DeviceView<float> weights, int tokens, MoeRouting routing)
    {
        bool grouped = routing.Method != MoeTopKMethod.Greedy;
        var p = new DskMoeRouteParams
        {
            Logits = logits.Pointer,
            Bias = bias.IsNull ? IntPtr.Zero : bias.Pointer,
            ExpertIds = ids.Pointer,
            ExpertWeights = weights.Pointer,
            Tokens = tokens,
            Experts = routing.Experts,
            TopK = routing.TopK,
            Groups = grouped ? routing.Groups : 1,
            TopKGroups = grouped ? routing.TopKGroups : 1,
            Scoring = routing.Scoring == MoeScoring.Sigmoid ? (int)DskMoeScoring.Sigmoid : (int)DskMoeScoring.Softmax,
            Method = routing.Method switch
            {
                MoeTopKMethod.GroupLimitedGreedy => (int)DskMoeMethod.GroupLimitedGreedy,
                MoeTopKMethod.NoAuxTc => (int)DskMoeMethod.NoAuxTc,
                _ => (int)DskMoeMethod.Greedy,
            },
            Normalize = routing.NormalizeTopK ? 1 : 0,
            LogitsDType = (int)logits.ElementType,
            RoutedScalingFactor = (float)routing.RoutedScalingFactor,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.MoeRoute(p);
    }

    /// <summary>
    /// permuted [tokens * topK, hidden], offsets [experts + 1], slotRows [tokens * topK] from x [tokens, hidden] and
    /// ids [tokens * topK]; x and permuted dense and of one element type.
    /// </summary>
    public static void Permute(DeviceRuntime runtime, KernelWorkspace workspace, DeviceTensor x, DeviceView<int> ids,
        DeviceTensor permuted, DeviceView<int> offsets, DeviceView<int> slotRows, int tokens, int topK, int hidden, int experts,
        DeviceView<int> callerWorkspace)
    {
        if (x.ElementType != permuted.ElementType)
            throw new NotSupportedException($"MoePermute: dsk_moe_permute copies rows bit for bit, so x ({x.ElementType.Name()}) and permuted "
                + $"({permuted.ElementType.Name()}) must have one element type on the native backend.");
        var p = new DskMoePermuteParams
        {
            X = x.Pointer,
            ExpertIds = ids.Pointer,
            Permuted = permuted.Pointer,
            ExpertOffsets = offsets.Pointer,
            SlotRows = slotRows.Pointer,
            ErrorWord = runtime.Errors.Word.View.Pointer,
            Tokens = tokens,
            TopK = topK,
            Hidden = hidden,
            Experts = experts,
            XRowStride = hidden,
            PermutedRowStride = hidden,
            XDType = (int)x.ElementType,
            ErrorSite = DeviceErrorSite.MoePermuteIds.Id,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        (p.Workspace, p.WorkspaceBytes) = callerWorkspace.IsNull
            ? workspace.Reserve(DskNative.MoePermuteWorkspaceSize(p), "MoePermute")
            : (callerWorkspace.Pointer, callerWorkspace.Length * sizeof(int)); // Ops.MoePermuteWorkspaceBytes covers the library's need
        DskNative.MoePermute(p);
    }

    /// <summary>y [tokens, hidden] (+)= sum_k weights[t, k] * expertOutput[slotRows[t * topK + k]], expertOutput [tokens * topK, hidden].</summary>
    public static void Combine(DeviceRuntime runtime, DeviceTensor expertOutput, DeviceView<int> slotRows, DeviceView<float> weights,
        DeviceTensor y, int tokens, int topK, int hidden, bool accumulate)
    {
        var p = new DskMoeCombineParams
        {
            ExpertOutput = expertOutput.Pointer,
            SlotRows = slotRows.Pointer,
            ExpertWeights = weights.Pointer,
            Y = y.Pointer,
            ErrorWord = runtime.Errors.Word.View.Pointer,
            Tokens = tokens,
            TopK = topK,
            Hidden = hidden,
            ExpertOutputRowStride = hidden,
            YRowStride = hidden,
            ExpertOutputDType = (int)expertOutput.ElementType,
            YDType = (int)y.ElementType,
            Accumulate = accumulate ? 1 : 0,
            ErrorSite = DeviceErrorSite.MoeCombineRows.Id,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.MoeCombine(p);
    }
}
