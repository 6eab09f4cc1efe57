namespace DeepSeekKernels.Reference;

/// <summary>
/// Rotary position embedding: the frequency tables, computed exactly as Hugging Face transformers 5.x computes
/// them (in float32, operation by operation, so tables match to float32 noise), and the rotation itself.
/// </summary>
/// <remarks>
/// PyTorch details mirrored: <c>a ** t</c> of a Python float and a float32 tensor is a float32 power;
/// <c>s / t</c> of a Python scalar by a tensor is <c>t.reciprocal() * s</c> (<c>Tensor.__rtruediv__</c>), two
/// roundings; a Python scalar combined with a float32 tensor is first rounded to float32; plain Python
/// arithmetic (the YaRN correction range, get_mscale) is float64.
/// </remarks>
internal static class RopeReference
{
    /// <summary>
    /// inv_freq [rotaryDim / 2] and the attention factor for <paramref name="scaling"/>, as the transformers 5.x
    /// function for its kind computes them. Arguments are assumed valid (RopeTable.Create checks them).
    /// </summary>
    public static float[] InverseFrequencies(RopeScaling scaling, int rotaryDim, out double attentionFactor)
    {
        attentionFactor = 1.0;
        return scaling.Kind switch
        {
            RopeKind.Default => DefaultInverseFrequencies(scaling.Theta, rotaryDim),
            RopeKind.Linear => Linear(scaling, rotaryDim),
            RopeKind.Yarn => Yarn(scaling, rotaryDim, out attentionFactor),
            RopeKind.Llama3 => Llama3(scaling, rotaryDim),
            _ => throw new ArgumentOutOfRangeException(nameof(scaling), scaling.Kind, "Unknown RopeKind."),
        };
    }

    /// <summary>
    /// Mirrors <c>compute_default_rope_parameters</c> (the models' rotary classes in transformers 5.x;
    /// <c>_compute_default_rope_parameters</c> before):
    /// <c>inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float) / dim))</c>.
    /// </summary>
    static float[] DefaultInverseFrequencies(double theta, int dim)
    {
        var inv = new float[dim / 2];
        float baseF = (float)theta;
        for (int i = 0; i < inv.Length; i++)
            inv[i] = 1f / MathF.Pow(baseF, (float)(2 * i) / dim);
        return inv;
    }

    /// <summary>Mirrors <c>_compute_linear_scaling_rope_parameters</c>: the default inv_freq, then <c>inv_freq /= factor</c>.</summary>
    static float[] Linear(RopeScaling scaling, int dim)
    {
        var inv = DefaultInverseFrequencies(scaling.Theta, dim);
        float factor = (float)scaling.Factor!.Value;
        for (int i = 0; i < inv.Length; i++)
            inv[i] /= factor;
        return inv;
    }

    /// <summary>The YaRN factor and pre-training length as transformers 5.x resolves them (see <see cref="Yarn"/>).</summary>
    public static (double Factor, int OriginalMaxPositions) YarnFactor(RopeScaling scaling)
    {
        // rope standardisation: original_max_position_embeddings defaults to max_position_embeddings.
        int original = scaling.OriginalMaxPositions ?? scaling.MaxPositions;
        // _compute_yarn_parameters (5.x): "if factor is None: factor = max_position_embeddings / original_max_position_embeddings".
        double factor = scaling.Factor ?? (double)scaling.MaxPositions / original;
        return (factor, original);
    }

    /// <summary>
    /// Mirrors <c>_compute_yarn_parameters</c> (transformers 5.x): <c>get_mscale</c> and the
    /// <c>mscale</c>/<c>mscale_all_dim</c> attention-factor rule, <c>find_correction_dim</c>,
    /// <c>find_correction_range</c> with <c>truncate</c>, <c>linear_ramp_factor</c>, and the blend of the
    /// interpolated and extrapolated frequencies.
    /// </summary>
    static float[] Yarn(RopeScaling scaling, int dim, out double attentionFactor)
    {
        double theta = scaling.Theta;
        var (factor, originalMax) = YarnFactor(scaling);

        static double GetMscale(double scale, double mscale = 1) => scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;
        // "if mscale and mscale_all_dim" is Python truthiness: null and 0 are both false.
        if (scaling.AttentionFactor is double given)
            attentionFactor = given;
        else if (scaling.Mscale is double m && m != 0 && scaling.MscaleAllDim is double mAll && mAll != 0)
            attentionFactor = GetMscale(factor, m) / GetMscale(factor, mAll);
        else
            attentionFactor = GetMscale(factor);

        // "beta_fast = rope_parameters_dict.get('beta_fast') or 32", likewise beta_slow "or 1".
        double betaFast = scaling.BetaFast == 0 ? 32 : scaling.BetaFast;
        double betaSlow = scaling.BetaSlow == 0 ? 1 : scaling.BetaSlow;

        // find_correction_dim / find_correction_range, in float64 (plain Python math).
        double FindCorrectionDim(double rotations) =>
            dim * Math.Log(originalMax / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = FindCorrectionDim(betaFast);
        double high = FindCorrectionDim(betaSlow);
        if (scaling.Truncate)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }
        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        // linear_ramp_factor(min, max, dim // 2): "if min == max: max += 0.001".
        if (low == high)
            high += 0.001;

        int half = dim / 2;
        var inv = new float[half];
        float baseF = (float)theta, factorF = (float)factor, lowF = (float)low, rangeF = (float)(high - low);
        for (int i = 0; i < half; i++)
        {
            float posFreq = MathF.Pow(baseF, (float)(2 * i) / dim);       // pos_freqs
            float extrapolation = 1f / posFreq;                           // inv_freq_extrapolation
            float interpolation = 1f / (factorF * posFreq);               // inv_freq_interpolation
            float ramp = Math.Clamp(((float)i - lowF) / rangeF, 0f, 1f);  // linear_ramp_factor
            float extrapolationFactor = 1f - ramp;                        // inv_freq_extrapolation_factor
            inv[i] = interpolation * (1f - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        return inv;
    }

    /// <summary>
    /// Mirrors <c>_compute_llama3_parameters</c>: wavelengths above <c>old_context_len / low_freq_factor</c> are
    /// divided by the factor, those below <c>old_context_len / high_freq_factor</c> kept, and the band between
    /// smoothly interpolated.
    /// </summary>
    static float[] Llama3(RopeScaling scaling, int dim)
    {
        var inv = DefaultInverseFrequencies(scaling.Theta, dim);
        double factor = scaling.Factor!.Value;
        int oldContextLength = scaling.OriginalMaxPositions ?? scaling.MaxPositions;
        double lowFreqWavelength = oldContextLength / scaling.LowFreqFactor;   // Python float64
        double highFreqWavelength = oldContextLength / scaling.HighFreqFactor;
        float factorF = (float)factor, twoPi = (float)(2 * Math.PI), oldF = oldContextLength;
        float lowWlF = (float)lowFreqWavelength, highWlF = (float)highFreqWavelength;
        float lowFactorF = (float)scaling.LowFreqFactor, bandF = (float)(scaling.HighFreqFactor - scaling.LowFreqFactor);
        for (int i = 0; i < inv.Length; i++)
        {
            float wavelength = 1f / inv[i] * twoPi;                         // 2 * math.pi / inv_freq
            float scaled = wavelength > lowWlF ? inv[i] / factorF : inv[i];  // inv_freq_llama
            float smooth = (1f / wavelength * oldF - lowFactorF) / bandF;   // smooth_factor
            float smoothed = (1f - smooth) * scaled / factorF + smooth * scaled;
            bool isMediumFrequency = !(wavelength < highWlF) && !(wavelength > lowWlF);
            inv[i] = isMediumFrequency ? smoothed : scaled;
        }
        return inv;
    }

    /// <summary>
    /// The tables [maxPositions, rotaryDim / 2] the rotary classes' forward computes:
    /// <c>freqs = position * inv_freq</c>, <c>cos = cos(freqs) * attention_factor</c>, likewise sin, all float32.
    /// </summary>
    public static (float[] Cos, float[] Sin) Tables(float[] inverseFrequencies, int maxPositions, float attentionFactor)
    {
        int half = inverseFrequencies.Length;
        var cos = new float[(long)maxPositions * half];
        var sin = new float[cos.Length];
        Parallel.For(0, maxPositions, position =>
        {
            float p = position;
            int row = position * half;
            for (int i = 0; i < half; i++)
            {
                float angle = p * inverseFrequencies[i];
                cos[row + i] = MathF.Cos(angle) * attentionFactor;
                sin[row + i] = MathF.Sin(angle) * attentionFactor;
            }
        });
        return (cos, sin);
    }

    /// <summary>
    /// In place: rotates elements [ropeOffset, ropeOffset + 2 * half) of every head of x [tokens, heads, headStride]
    /// by the angles of its token's position. HalfSplit: (v[i], v[i + half]); Interleaved: (v[2i], v[2i + 1]); a
    /// pair (a, b) at angle index i becomes (a * cos[i] - b * sin[i], b * cos[i] + a * sin[i]), which is
    /// <c>q * cos + rotate_half(q) * sin</c>. Positions are checked first (nothing is written if one is bad).
    /// </summary>
    public static unsafe void Rope(nint x, ReadOnlySpan<int> positions, float[] cos, float[] sin, int maxPositions, int half,
        int heads, int headStride, int ropeOffset, RopeLayout layout)
    {
        for (int t = 0; t < positions.Length; t++)
        {
            if ((uint)positions[t] >= (uint)maxPositions)
                throw new ArgumentOutOfRangeException("positions", positions[t],
                    $"Rope: positions[{t}] = {positions[t]} is outside [0, {maxPositions}) (the table's MaxPositions).");
        }
        int tokens = positions.Length;
        if ((long)tokens * heads * half < 1 << 15)
        {
            for (int t = 0; t < tokens; t++)
                Token(x, t, positions[t], cos, sin, half, heads, headStride, ropeOffset, layout);
        }
        else
        {
            InParallel(x, positions.ToArray(), cos, sin, half, heads, headStride, ropeOffset, layout);
        }
    }

    // apart, so that its closure is allocated only when the tokens run in parallel
    static void InParallel(nint x, int[] positions, float[] cos, float[] sin, int half, int heads, int headStride, int ropeOffset,
        RopeLayout layout) =>
        Parallel.For(0, positions.Length, t => Token(x, t, positions[t], cos, sin, half, heads, headStride, ropeOffset, layout));

    /// <summary>Token t (at <paramref name="position"/>): every head rotated in place.</summary>
    static unsafe void Token(nint x, int t, int position, float[] cos, float[] sin, int half, int heads, int headStride, int ropeOffset,
        RopeLayout layout)
    {
        int row = position * half;
        for (int h = 0; h < heads; h++)
        {
            float* v = (float*)x + ((long)t * heads + h) * headStride + ropeOffset;
            for (int i = 0; i < half; i++)
            {
                float c = cos[row + i], s = sin[row + i];
                int ia = layout == RopeLayout.HalfSplit ? i : 2 * i;
                int ib = layout == RopeLayout.HalfSplit ? i + half : 2 * i + 1;
                float a = v[ia], b = v[ib];
                v[ia] = a * c - b * s;
                v[ib] = b * c + a * s;
            }
        }
    }
}
