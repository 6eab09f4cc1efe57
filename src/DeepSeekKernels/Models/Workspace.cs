using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// The activation buffers of one model, allocated once for forward passes of up to <see cref="Tokens"/>
/// positions, exactly as <see cref="WorkspaceLayout"/> lists them, in one <see cref="DeviceArena"/> (fixed addresses, so a
/// captured step can be replayed). Views of the first n elements are taken per pass.
/// </summary>
public sealed class Workspace : IDisposable
{
    readonly Dictionary<string, DeviceTensor> _buffers = new();
    readonly DeviceArena _arena;

    public Workspace(DeviceRuntime runtime, ModelShape shape, int tokens, ElementType activations = ElementType.F32, bool fp8Activations = false)
    {
        Tokens = tokens;
        Activations = activations;
        Fp8Activations = fp8Activations;
        var layout = WorkspaceLayout.For(shape, tokens, activations, fp8Activations);
        _arena = runtime.CreateArena(DeviceArena.SizeOf(layout.Select(b => b.Bytes)));
        foreach (var b in layout)
        {
            _buffers.Add(b.Name, b.Type switch
            {
                ElementType.I32 => DeviceTensor.FromView(_arena.Allocate<int>(b.Elements).View),
                ElementType.BF16 => DeviceTensor.FromView(_arena.Allocate<BFloat16>(b.Elements).View),
                ElementType.Fp8E4M3 => DeviceTensor.FromView(_arena.Allocate<Float8E4M3>(b.Elements).View),
                _ => DeviceTensor.FromView(_arena.Allocate<float>(b.Elements).View),
            });
        }
    }

    /// <summary>Most positions one forward pass handles.</summary>
    public int Tokens { get; }

    /// <summary>The activation type (f32 or bf16).</summary>
    public ElementType Activations { get; }

    /// <summary>Whether prefill's FP8-block linear layers run W8A8 (<see cref="Projection"/>): the workspace then holds their FP8 inputs.</summary>
    public bool Fp8Activations { get; }

    /// <summary>The first <paramref name="elements"/> of an FP8 buffer.</summary>
    public DeviceView<Float8E4M3> Fp8(string name, long elements) => A(name, elements).AsView<Float8E4M3>();

    /// <summary>The first <paramref name="elements"/> of an activation buffer, in its element type.</summary>
    public DeviceTensor A(string name, long elements) => _buffers[name].Slice(0, elements);

    /// <summary>The first <paramref name="elements"/> of a float32 buffer (logits, router logits, expert weights).</summary>
    public DeviceView<float> F(string name, long elements) => A(name, elements).AsView<float>();

    /// <summary>The first <paramref name="elements"/> of an int32 buffer.</summary>
    public DeviceView<int> I(string name, long elements) => A(name, elements).AsView<int>();

    /// <summary>Bytes allocated: the arena's capacity (every buffer, each aligned to <see cref="DeviceArena.Alignment"/>).</summary>
    public long Bytes => _arena.Capacity;

    /// <summary>Bytes the buffers took from the arena (equal to <see cref="Bytes"/> when the layout's formula is right).</summary>
    internal long UsedBytes => _arena.Used;

    public void Dispose()
    {
        _buffers.Clear();
        _arena.Dispose();
    }
}
