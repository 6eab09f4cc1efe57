using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// The keys and values of one sequence, per layer, for up to <see cref="Capacity"/> positions. For MLA
/// (DeepSeek) each layer holds only the compressed latent row [kv_lora_rank + qk_rope_head_dim] per
/// position (normed latent, then the roped key part), shared by all heads; for grouped-query attention
/// each layer holds keys and values [kv_heads * head_dim] per position. fp32 on the reference path.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly DeviceBuffer<float>[] _keys;
    readonly DeviceBuffer<float>[]? _values;

    internal KvCache(CausalLanguageModel owner, DeviceRuntime runtime, int layers, int capacity, int keyWidth, int valueWidth)
    {
        Owner = owner;
        Capacity = capacity;
        KeyWidth = keyWidth;
        ValueWidth = valueWidth;
        _keys = new DeviceBuffer<float>[layers];
        _values = valueWidth > 0 ? new DeviceBuffer<float>[layers] : null;
        try
        {
            for (int l = 0; l < layers; l++)
            {
                _keys[l] = runtime.Allocate<float>((long)capacity * keyWidth);
                if (_values != null)
                    _values[l] = runtime.Allocate<float>((long)capacity * valueWidth);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    internal CausalLanguageModel Owner { get; }

    /// <summary>Positions the cache can hold.</summary>
    public int Capacity { get; }

    /// <summary>Positions filled so far (the next token's position).</summary>
    public int Length { get; internal set; }

    /// <summary>Elements per position per layer: the latent row for MLA, kv_heads * head_dim for keys otherwise.</summary>
    public int KeyWidth { get; }

    /// <summary>Elements per position per layer of the values (0 for MLA, whose values live in the latent row).</summary>
    public int ValueWidth { get; }

    /// <summary>Bytes allocated.</summary>
    public long Bytes => _keys.Sum(k => k?.Length ?? 0) * 4 + (_values?.Sum(v => v?.Length ?? 0) ?? 0) * 4;

    internal DeviceBuffer<float> Keys(int layer) => _keys[layer];

    internal DeviceBuffer<float> Values(int layer) =>
        _values?[layer] ?? throw new InvalidOperationException("An MLA cache has no separate values.");

    /// <summary>Forgets every position (the buffers are kept).</summary>
    public void Clear() => Length = 0;

    public void Dispose()
    {
        foreach (var k in _keys) k?.Dispose();
        if (_values != null)
            foreach (var v in _values) v?.Dispose();
    }
}
