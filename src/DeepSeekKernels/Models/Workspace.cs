using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// The activation buffers of one model, allocated once for forward passes of up to <see cref="Tokens"/>
/// positions, exactly as <see cref="WorkspaceLayout"/> lists them. Views of the first n rows are taken per pass.
/// </summary>
public sealed class Workspace : IDisposable
{
    readonly Dictionary<string, DeviceBuffer<float>> _floats = new();
    readonly Dictionary<string, DeviceBuffer<int>> _ints = new();

    public Workspace(DeviceRuntime runtime, ModelShape shape, int tokens)
    {
        Tokens = tokens;
        try
        {
            foreach (var buffer in WorkspaceLayout.For(shape, tokens))
            {
                if (buffer.IsInt32)
                    _ints.Add(buffer.Name, runtime.Allocate<int>(buffer.Elements));
                else
                    _floats.Add(buffer.Name, runtime.Allocate<float>(buffer.Elements));
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

    /// <summary>The first <paramref name="elements"/> of a float buffer.</summary>
    public DeviceView<float> F(string name, long elements) => _floats[name].Slice(0, elements);

    /// <summary>The first <paramref name="elements"/> of an int32 buffer.</summary>
    public DeviceView<int> I(string name, long elements) => _ints[name].Slice(0, elements);

    /// <summary>Bytes allocated.</summary>
    public long Bytes => (_floats.Values.Sum(b => b.Length) + _ints.Values.Sum(b => b.Length)) * 4;

    public void Dispose()
    {
        foreach (var b in _floats.Values) b.Dispose();
        foreach (var b in _ints.Values) b.Dispose();
        _floats.Clear();
        _ints.Clear();
    }
}
