using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// The activation buffers of one model, allocated once for forward passes of up to <see cref="Tokens"/>
/// positions, exactly as <see cref="WorkspaceLayout"/> lists them (fixed addresses, so a captured step can be
/// replayed). Views of the first n elements are taken per pass.
/// </summary>
public sealed class Workspace : IDisposable
{
    readonly Dictionary<string, (IDisposable Buffer, DeviceTensor Whole)> _buffers = new();

    public Workspace(DeviceRuntime runtime, ModelShape shape, int tokens, ElementType activations = ElementType.F32)
    {
        Tokens = tokens;
        Activations = activations;
        try
        {
            foreach (var b in WorkspaceLayout.For(shape, tokens, activations))
            {
                switch (b.Type)
                {
                    case ElementType.I32:
                        var i = runtime.Allocate<int>(b.Elements);
                        _buffers.Add(b.Name, (i, DeviceTensor.FromView(i.View)));
                        break;
                    case ElementType.BF16:
                        var h = runtime.Allocate<BFloat16>(b.Elements);
                        _buffers.Add(b.Name, (h, DeviceTensor.FromView(h.View)));
                        break;
                    default:
                        var f = runtime.Allocate<float>(b.Elements);
                        _buffers.Add(b.Name, (f, DeviceTensor.FromView(f.View)));
                        break;
                }
                Bytes += b.Bytes;
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Most positions one forward pass handles.</summary>
    public int Tokens { get; }

    /// <summary>The activation type (f32 or bf16).</summary>
    public ElementType Activations { get; }

    /// <summary>The first <paramref name="elements"/> of an activation buffer, in its element type.</summary>
    public DeviceTensor A(string name, long elements) => _buffers[name].Whole.Slice(0, elements);

    /// <summary>The first <paramref name="elements"/> of a float32 buffer (logits, router logits, expert weights).</summary>
    public DeviceView<float> F(string name, long elements) => A(name, elements).AsView<float>();

    /// <summary>The first <paramref name="elements"/> of an int32 buffer.</summary>
    public DeviceView<int> I(string name, long elements) => A(name, elements).AsView<int>();

    /// <summary>Bytes allocated.</summary>
    public long Bytes { get; }

    public void Dispose()
    {
        foreach (var (buffer, _) in _buffers.Values) buffer.Dispose();
        _buffers.Clear();
    }
}
