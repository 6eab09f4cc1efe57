namespace DeepSeekKernels.Generation;

/// <summary>
/// How the next token is chosen from the logits, in Hugging Face's order: repetition penalty, then
/// temperature, top-k, top-p, then a draw from the softmax (or argmax when <see cref="Temperature"/> is 0).
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>0 means greedy (argmax; ties go to the lowest id, as torch.argmax); otherwise logits are divided by it.</summary>
    public float Temperature { get; init; } = 0.6f;

    /// <summary>Keep only the k most likely tokens; 0 turns the filter off.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p; 1 turns the filter off.</summary>
    public float TopP { get; init; } = 0.95f;

    /// <summary>HF's repetition penalty (CTRL): a seen token's logit is divided by it when positive, multiplied when negative; 1 is off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Seed of the random draw; null draws a seed from the system.</summary>
    public int? Seed { get; init; }

    /// <summary>Greedy decoding: the argmax at every step.</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0, TopP = 1 };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0)
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be finite and >= 0 (0 = greedy).");
        if (TopK < 0)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "top-k must be >= 0 (0 = off).");
        if (!(TopP > 0 && TopP <= 1))
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top-p must be in (0, 1] (1 = off).");
        if (!float.IsFinite(RepetitionPenalty) || RepetitionPenalty <= 0)
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, "repetition penalty must be finite and > 0 (1 = off).");
    }
}
