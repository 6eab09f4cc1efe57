namespace DeepSeekKernels.Generation;

/// <summary>What <see cref="TextGenerator.Generate"/> produces and when it stops.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate.</summary>
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>How each token is chosen.</summary>
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;

    /// <summary>Stop when the generated text contains any of these; the stop string itself is not returned.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Stop at an end-of-sequence token (not returned in the text).</summary>
    public bool StopAtEos { get; init; } = true;

    /// <summary>Extra end-of-sequence ids beyond the model's own.</summary>
    public IReadOnlyList<int> ExtraEosIds { get; init; } = [];

    /// <summary>
    /// Throws <see cref="ArgumentOutOfRangeException"/> (naming the property, with its value) for the first
    /// option out of range: the sampling options (<see cref="SamplingOptions.Validate"/>), a negative
    /// <see cref="MaxNewTokens"/>, a null or empty stop string, a negative extra EOS id.
    /// </summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Sampling);
        Sampling.Validate();
        if (MaxNewTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, "max-new-tokens must be >= 0.");
        ArgumentNullException.ThrowIfNull(StopStrings);
        for (int i = 0; i < StopStrings.Count; i++)
            if (string.IsNullOrEmpty(StopStrings[i]))
                throw new ArgumentOutOfRangeException(nameof(StopStrings), StopStrings[i],
                    $"stop string {i + 1} is empty: it would stop before the first token.");
        ArgumentNullException.ThrowIfNull(ExtraEosIds);
        foreach (int id in ExtraEosIds)
            if (id < 0)
                throw new ArgumentOutOfRangeException(nameof(ExtraEosIds), id, "an end-of-sequence id must be >= 0.");
    }
}

/// <summary>Why generation stopped.</summary>
public enum FinishReason
{
    /// <summary>MaxNewTokens were generated.</summary>
    Length,
    /// <summary>An end-of-sequence token came.</summary>
    EndOfSequence,
    /// <summary>A stop string appeared in the text.</summary>
    StopString,
    /// <summary>The context (KV cache) is full.</summary>
    ContextFull,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>One generated token, with the text that became complete with it (may be empty).</summary>
public readonly record struct GeneratedToken(int Id, string Text);

/// <summary>The outcome of one generation.</summary>
public sealed record GenerationResult(
    IReadOnlyList<int> PromptIds,
    IReadOnlyList<int> GeneratedIds,
    string Text,
    FinishReason FinishReason,
    TimeSpan PrefillTime,
    TimeSpan DecodeTime)
{
    /// <summary>Generated tokens per second, over the decode steps (the first token comes from the prefill).</summary>
    public double DecodeTokensPerSecond => GeneratedIds.Count > 1 && DecodeTime > TimeSpan.Zero
        ? (GeneratedIds.Count - 1) / DecodeTime.TotalSeconds
        : 0;

    /// <summary>Prompt tokens per second in the prefill.</summary>
    public double PrefillTokensPerSecond => PrefillTime > TimeSpan.Zero ? PromptIds.Count / PrefillTime.TotalSeconds : 0;
}
