using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The cos and sin tables of rotary position embedding on a device: [<see cref="MaxPositions"/>,
/// <see cref="RotaryDim"/> / 2] float32 each, with the attention factor (YaRN's mscale) folded into both, computed
/// exactly as Hugging Face transformers 5.x computes them (<c>modeling_rope_utils.py</c>, and the models' rotary
/// embedding forward), so that <see cref="Ops.Rope"/> reproduces its cos/sin to float32 noise. Owns its buffers:
/// dispose it when the model is unloaded.
/// </summary>
public sealed class RopeTable : IDisposable
{
    readonly DeviceBuffer<float> _cos;
    readonly DeviceBuffer<float> _sin;
    readonly float[] _inverseFrequencies;
    bool _disposed;

    RopeTable(DeviceRuntime runtime, RopeScaling scaling, int rotaryDim, int maxPositions, float[] inverseFrequencies,
        float attentionFactor, float[] cos, float[] sin)
    {
        Runtime = runtime;
        Scaling = scaling;
        RotaryDim = rotaryDim;
        MaxPositions = maxPositions;
        AttentionFactor = attentionFactor;
        _inverseFrequencies = inverseFrequencies;
        HostCos = cos;
        HostSin = sin;
        _cos = runtime.Upload<float>(cos);
        try
        {
            _sin = runtime.Upload<float>(sin);
        }
        catch
        {
            _cos.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Computes the tables for positions [0, <paramref name="maxPositions"/>) and uploads them to
    /// <paramref name="runtime"/>'s device.
    /// </summary>
    /// <param name="runtime">The runtime the tables live on (the one <see cref="Ops.Rope"/> runs on).</param>
    /// <param name="scaling">The model's RoPE parameters.</param>
    /// <param name="rotaryDim">Rotated elements per head: even, at least 2 (DeepSeek: qk_rope_head_dim; Llama: head_dim * partial_rotary_factor).</param>
    /// <param name="maxPositions">Positions the table covers (the context length the runner allows).</param>
    /// <exception cref="ArgumentNullException"><paramref name="runtime"/> or <paramref name="scaling"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    /// <exception cref="ArgumentException">A RoPE parameter the kind needs is missing or out of range.</exception>
    public static RopeTable Create(DeviceRuntime runtime, RopeScaling scaling, int rotaryDim, int maxPositions)
    {
        const string op = "RopeTable.Create";
        if (runtime is null)
            ThrowHelper.ArgumentNull(op, nameof(runtime));
        if (scaling is null)
            ThrowHelper.ArgumentNull(op, nameof(scaling));
        if (rotaryDim < 2 || rotaryDim % 2 != 0)
            ThrowHelper.OutOfRange(op, nameof(rotaryDim), rotaryDim, $"rotaryDim must be even and at least 2 (got {rotaryDim}).");
        if (maxPositions < 1)
            ThrowHelper.OutOfRange(op, nameof(maxPositions), maxPositions, $"maxPositions must be at least 1 (got {maxPositions}).");
        if ((long)maxPositions * (rotaryDim / 2) > int.MaxValue)
            ThrowHelper.OutOfRange(op, nameof(maxPositions), maxPositions, $"maxPositions * rotaryDim / 2 must fit in {int.MaxValue} elements.");
        CheckScaling(op, scaling);
        var inverse = RopeReference.InverseFrequencies(scaling, rotaryDim, out double attentionFactor);
        float factor = (float)attentionFactor;
        var (cos, sin) = RopeReference.Tables(inverse, maxPositions, factor);
        return new RopeTable(runtime, scaling, rotaryDim, maxPositions, inverse, factor, cos, sin);
    }

    static void CheckScaling(string op, RopeScaling s)
    {
        const string p = "scaling";
        if (!double.IsFinite(s.Theta) || s.Theta <= 0)
            ThrowHelper.Argument(op, p, $"Theta must be finite and greater than 0 (got {s.Theta}).");
        if (!Enum.IsDefined(s.Kind))
            ThrowHelper.Argument(op, p, $"Kind {s.Kind} is not a RopeKind.");
        if (s.Factor is double f && (!double.IsFinite(f) || f <= 0))
            ThrowHelper.Argument(op, p, $"Factor must be finite and greater than 0 (got {f}).");
        if (s.OriginalMaxPositions is int o && o < 1)
            ThrowHelper.Argument(op, p, $"OriginalMaxPositions must be at least 1 (got {o}).");
        if (s.MaxPositions < 0)
            ThrowHelper.Argument(op, p, $"MaxPositions must not be negative (got {s.MaxPositions}).");
        switch (s.Kind)
        {
            case RopeKind.Linear when s.Factor is null:
                ThrowHelper.Argument(op, p, "Linear RoPE needs Factor.");
                break;
            case RopeKind.Llama3:
                if (s.Factor is null)
                    ThrowHelper.Argument(op, p, "Llama3 RoPE needs Factor.");
                if ((s.OriginalMaxPositions ?? s.MaxPositions) < 1)
                    ThrowHelper.Argument(op, p, "Llama3 RoPE needs OriginalMaxPositions (or MaxPositions).");
                if (!double.IsFinite(s.LowFreqFactor) || s.LowFreqFactor <= 0 || !double.IsFinite(s.HighFreqFactor)
                    || s.HighFreqFactor <= s.LowFreqFactor)
                    ThrowHelper.Argument(op, p, $"Llama3 RoPE needs 0 < LowFreqFactor < HighFreqFactor (got {s.LowFreqFactor} and {s.HighFreqFactor}).");
                break;
            case RopeKind.Yarn:
                if ((s.OriginalMaxPositions ?? s.MaxPositions) < 1)
                    ThrowHelper.Argument(op, p, "YaRN RoPE needs OriginalMaxPositions or MaxPositions.");
                if (s.Factor is null && s.MaxPositions < 1)
                    ThrowHelper.Argument(op, p, "YaRN RoPE without Factor needs MaxPositions (factor = MaxPositions / OriginalMaxPositions).");
                if (!double.IsFinite(s.BetaFast) || !double.IsFinite(s.BetaSlow) || s.BetaFast < 0 || s.BetaSlow < 0)
                    ThrowHelper.Argument(op, p, $"BetaFast and BetaSlow must be finite and not negative (got {s.BetaFast} and {s.BetaSlow}).");
                if (s.AttentionFactor is double a && (!double.IsFinite(a) || a <= 0))
                    ThrowHelper.Argument(op, p, $"AttentionFactor must be finite and greater than 0 (got {a}).");
                break;
        }
    }

    /// <summary>The runtime the tables live on.</summary>
    public DeviceRuntime Runtime { get; }

    /// <summary>The parameters the tables were computed from.</summary>
    public RopeScaling Scaling { get; }

    /// <summary>Rotated elements per head (the tables have RotaryDim / 2 columns).</summary>
    public int RotaryDim { get; }

    /// <summary>Positions covered: [0, MaxPositions).</summary>
    public int MaxPositions { get; }

    /// <summary>The attention factor folded into both tables (YaRN's mscale ratio; 1 for the other kinds).</summary>
    public float AttentionFactor { get; }

    /// <summary>inv_freq [RotaryDim / 2], as transformers computes it (a copy).</summary>
    public float[] InverseFrequencies => (float[])_inverseFrequencies.Clone();

    /// <summary>cos(position * inv_freq) * AttentionFactor, [MaxPositions, RotaryDim / 2].</summary>
    public DeviceView<float> Cos
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _cos.View;
        }
    }

    /// <summary>sin(position * inv_freq) * AttentionFactor, [MaxPositions, RotaryDim / 2].</summary>
    public DeviceView<float> Sin
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _sin.View;
        }
    }

    /// <summary>Whether <see cref="Dispose"/> ran.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Host copies of the tables (what the reference backend reads).</summary>
    internal float[] HostCos { get; }

    internal float[] HostSin { get; }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _cos.Dispose();
        _sin.Dispose();
    }
}
