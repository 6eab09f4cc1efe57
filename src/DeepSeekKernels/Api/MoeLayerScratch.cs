using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The device buffers <see cref="Ops.MoeLayer"/> works in, for up to <see cref="MaxTokens"/> tokens of one
/// <see cref="MoeLayer"/>'s shape: router logits, expert ids and weights (f32/int32), the permuted rows, the expert
/// offsets and slot rows, the gate|up and activated rows and the expert outputs (in the activation type), and the
/// permutation's workspace (<see cref="Ops.MoePermuteWorkspaceBytes"/>). Allocated once and reused by every call (the
/// pointers a captured CUDA graph holds stay valid; no op of the layer allocates).
/// </summary>
public sealed class MoeLayerScratch : IDisposable
{
    readonly IDisposable[] _owned;

    internal MoeLayerScratch(int maxTokens, ElementType activations, DeviceView<float> routerLogits, DeviceView<int> expertIds,
        DeviceView<float> expertWeights, DeviceTensor permuted, DeviceView<int> expertOffsets, DeviceView<int> slotRows,
        DeviceTensor gateUp, DeviceTensor activated, DeviceTensor expertOutput, DeviceView<int> permuteWorkspace, params IDisposable[] owned)
    {
        (MaxTokens, Activations, RouterLogits, ExpertIds, ExpertWeights, Permuted, ExpertOffsets, SlotRows, GateUp, Activated, ExpertOutput) =
            (maxTokens, activations, routerLogits, expertIds, expertWeights, permuted, expertOffsets, slotRows, gateUp, activated, expertOutput);
        PermuteWorkspace = permuteWorkspace;
        _owned = owned;
    }

    /// <summary>Allocates the buffers for up to <paramref name="maxTokens"/> tokens of <paramref name="layer"/> on its runtime.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="layer"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">maxTokens is less than 1, or activations is not f32 or bf16.</exception>
    /// <exception cref="DeviceMemoryException">The device has not enough free memory.</exception>
    public static MoeLayerScratch Allocate(MoeLayer layer, int maxTokens, ElementType activations = ElementType.F32)
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
            return new MoeLayerScratch(maxTokens, activations, logits, ids, weights, permuted, offsets, slotRows, gateUp, activated, expertOutput,
                permuteWorkspace, [.. owned]);
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

    public void Dispose()
    {
        foreach (var buffer in _owned)
            buffer.Dispose();
    }
}
