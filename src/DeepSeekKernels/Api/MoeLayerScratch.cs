using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The device buffers <see cref="Ops.MoeLayer"/> works in, for up to <see cref="MaxTokens"/> tokens of one
/// <see cref="MoeLayer"/>'s shape: router logits, expert ids and weights (f32/int32), the permuted rows, the expert
/// offsets and slot rows, the gate|up and activated rows and the expert outputs (in the activation type), and the
/// permutation's workspace (<see cref="Ops.MoePermuteWorkspaceBytes"/>); with FP8 activations
/// (<see cref="Fp8Activations"/>), also the FP8 copy of the experts' inputs and its 1 x 128 scales, for W8A8 experts.
/// Allocated once and reused by every call (the pointers a captured CUDA graph holds stay valid; no op of the layer
/// allocates).
/// </summary>
public sealed class MoeLayerScratch : IDisposable
{
    readonly IDisposable[] _owned;

    internal MoeLayerScratch(int maxTokens, ElementType activations, DeviceView<float> routerLogits, DeviceView<int> expertIds,
        DeviceView<float> expertWeights, DeviceTensor permuted, DeviceView<int> expertOffsets, DeviceView<int> slotRows,
        DeviceTensor gateUp, DeviceTensor activated, DeviceTensor expertOutput, DeviceView<int> permuteWorkspace,
        DeviceView<Float8E4M3> fp8Inputs = default, DeviceView<float> fp8Scales = default, params IDisposable[] owned)
    {
        (MaxTokens, Activations, RouterLogits, ExpertIds, ExpertWeights, Permuted, ExpertOffsets, SlotRows, GateUp, Activated, ExpertOutput) =
            (maxTokens, activations, routerLogits, expertIds, expertWeights, permuted, expertOffsets, slotRows, gateUp, activated, expertOutput);
        PermuteWorkspace = permuteWorkspace;
        (Fp8Inputs, Fp8Scales) = (fp8Inputs, fp8Scales);
        _owned = owned;
    }

    /// <summary>FP8 elements of the experts' quantised inputs for <paramref name="maxTokens"/> tokens: every slot's row of the wider of hidden and intermediate.</summary>
    public static long Fp8InputElements(MoeLayer layer, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return checked((long)maxTokens * layer.TopK * Math.Max(layer.Hidden, layer.Intermediate));
    }

    /// <summary>float32 scales of <see cref="Fp8InputElements"/>: one per 128 elements of each slot's row.</summary>
    public static long Fp8ScaleElements(MoeLayer layer, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(layer);
        int block = Ops.Fp8ActivationBlock;
        return checked((long)maxTokens * layer.TopK * ((Math.Max(layer.Hidden, layer.Intermediate) + block - 1) / block));
    }

    /// <summary>Allocates the buffers for up to <paramref name="maxTokens"/> tokens of <paramref name="layer"/> on its runtime.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="layer"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">maxTokens is less than 1, or activations is not f32 or bf16.</exception>
    /// <exception cref="DeviceMemoryException">The device has not enough free memory.</exception>
    /// <param name="layer">The layer whose shape the buffers hold (its runtime allocates them).</param>
    /// <param name="maxTokens">Most tokens one call may take.</param>
    /// <param name="activations">The row buffers' type: f32 or bf16.</param>
    /// <param name="fp8Activations">
    /// Also allocate the FP8 inputs and scales, so that <see cref="Ops.MoeLayer"/> runs FP8-block experts as W8A8 from
    /// <see cref="Ops.MoeLayerW8A8MinTokens"/> tokens (prefill; see there).
    /// </param>
    public static MoeLayerScratch Allocate(MoeLayer layer, int maxTokens, ElementType activations = ElementType.F32, bool fp8Activations = false)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        if (activations is not (ElementType.F32 or ElementType.BF16))
            throw new ArgumentOutOfRangeException(nameof(activations), activations, "MoeLayerScratch: activations are f32 or bf16.");
        var runtime = layer.Runtime;
        long t = maxTokens, slots = t * layer.TopK;
        var owned = new List<IDisposable>();
        try
        {
            DeviceBuffer<T> Buffer<T>(long length) where T : unmanaged
            {
                var buffer = runtime.Allocate<T>(length);
                owned.Add(buffer);
                return buffer;
            }
            DeviceTensor Act(long rows, long cols) => activations == ElementType.BF16 // flat: the op cuts what a call needs
                ? Buffer<BFloat16>(rows * cols).AsTensor(rows * cols)
                : Buffer<float>(rows * cols).AsTensor(rows * cols);
            var logits = Buffer<float>(t * layer.Experts).View;
            var ids = Buffer<int>(slots).View;
            var weights = Buffer<float>(slots).View;
            var permuted = Act(slots, layer.Hidden);
            var offsets = Buffer<int>(layer.Experts + 1L).View;
            var slotRows = Buffer<int>(slots).View;
            var gateUp = Act(slots, 2L * layer.Intermediate);
            var activated = Act(slots, layer.Intermediate);
            var expertOutput = Act(slots, layer.Hidden);
            var permuteWorkspace = Buffer<int>(Ops.MoePermuteWorkspaceBytes(slots, layer.Experts) / sizeof(int)).View;
            var fp8Inputs = fp8Activations ? Buffer<Float8E4M3>(Fp8InputElements(layer, maxTokens)).View : default;
            var fp8Scales = fp8Activations ? Buffer<float>(Fp8ScaleElements(layer, maxTokens)).View : default;
            return new MoeLayerScratch(maxTokens, activations, logits, ids, weights, permuted, offsets, slotRows, gateUp, activated, expertOutput,
                permuteWorkspace, fp8Inputs, fp8Scales, [.. owned]);
        }
        catch
        {
            foreach (var buffer in owned)
                buffer.Dispose();
            throw;
        }
    }

    /// <summary>Most tokens one call may take.</summary>
    public int MaxTokens { get; }

    /// <summary>The activation type of the row buffers (the layer's input must have it).</summary>
    public ElementType Activations { get; }

    internal DeviceView<float> RouterLogits { get; }
    internal DeviceView<int> ExpertIds { get; }
    internal DeviceView<float> ExpertWeights { get; }
    internal DeviceTensor Permuted { get; }
    internal DeviceView<int> ExpertOffsets { get; }
    internal DeviceView<int> SlotRows { get; }
    internal DeviceTensor GateUp { get; }
    internal DeviceTensor Activated { get; }
    internal DeviceTensor ExpertOutput { get; }
    internal DeviceView<int> PermuteWorkspace { get; }
    internal DeviceView<Float8E4M3> Fp8Inputs { get; }
    internal DeviceView<float> Fp8Scales { get; }

    /// <summary>Whether the scratch holds FP8 inputs: <see cref="Ops.MoeLayer"/> may then run FP8-block experts as W8A8.</summary>
    public bool Fp8Activations => !Fp8Inputs.IsNull;

    public void Dispose()
    {
        foreach (var buffer in _owned)
            buffer.Dispose();
    }
}
