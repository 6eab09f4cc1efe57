using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>The attention half of a decoder layer: normed input rows in, attention output rows out, cache updated.</summary>
internal interface IAttentionBlock : IDisposable
{
    /// <summary>Key and value widths per position this block stores in a <see cref="KvCache"/> layer.</summary>
    (int KeyWidth, int ValueWidth) CacheWidths { get; }

    /// <summary>
    /// Runs <paramref name="count"/> positions starting at <paramref name="start"/>: input [count, hidden],
    /// output [count, hidden]; writes their keys/values to rows start..start+count of the cache layer.
    /// </summary>
    void Forward(Ops ops, Workspace ws, KvCache cache, int layer, int start, int count, DeviceView<float> input, DeviceView<float> output);
}

/// <summary>The MLP half of a decoder layer: normed input rows in, output rows out.</summary>
internal interface IMlpBlock : IDisposable
{
    void Forward(Ops ops, Workspace ws, int count, DeviceView<float> input, DeviceView<float> output);
}
