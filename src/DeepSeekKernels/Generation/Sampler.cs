using System.Numerics.Tensors;

namespace DeepSeekKernels.Generation;

/// <summary>
/// Picks the next token from one row of logits on the host (the logits of one position, [vocab]), as
/// Hugging Face's generate() does with the same options: repetition penalty over the tokens seen so far
/// (prompt included), temperature, top-k, top-p, then a seeded draw.
/// </summary>
public sealed class Sampler
{
    readonly SamplingOptions _options;
    readonly Random _random;
    float[] _scratch = [];
    int[] _order = [];

    public Sampler(SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _random = options.Seed is int seed ? new Random(seed) : new Random();
    }

    /// <summary>The options this sampler applies.</summary>
    public SamplingOptions Options => _options;

    /// <summary>Chooses a token id from <paramref name="logits"/>; <paramref name="seen"/> are the ids the repetition penalty applies to.</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> seen)
    {
        if (logits.IsEmpty)
            throw new ArgumentException("logits are empty.", nameof(logits));
        if (_scratch.Length != logits.Length)
        {
            _scratch = new float[logits.Length];
            _order = new int[logits.Length];
        }
        var scores = _scratch.AsSpan();
        logits.CopyTo(scores);

        if (_options.RepetitionPenalty != 1f)
        {
            foreach (int id in seen)
            {
                if ((uint)id >= (uint)scores.Length)
                    continue;
                float s = logits[id]; // from the original logits, so a repeated id is penalised once
                scores[id] = s > 0 ? s / _options.RepetitionPenalty : s * _options.RepetitionPenalty;
            }
        }

        if (_options.Temperature == 0f)
            return ArgMax(scores);

        TensorPrimitives.Divide(scores, _options.Temperature, scores);

        // Sort ids by score, descending (stable: lower id first among equals).
        var order = _order.AsSpan();
        for (int i = 0; i < order.Length; i++)
            order[i] = i;
        var scoreArray = _scratch;
        Array.Sort(_order, (a, b) => scoreArray[b].CompareTo(scoreArray[a]) is int c && c != 0 ? c : a.CompareTo(b));

        int keep = order.Length;
        if (_options.TopK > 0)
            keep = Math.Min(keep, _options.TopK);

        // Softmax over the kept ids, in sorted order.
        float max = scores[order[0]];
        var probabilities = new float[keep];
        double total = 0;
        for (int i = 0; i < keep; i++)
        {
            probabilities[i] = MathF.Exp(scores[order[i]] - max);
            total += probabilities[i];
        }
        if (_options.TopP < 1f)
        {
            // HF keeps the tokens whose cumulative probability, summed from the least likely, is above
            // 1 - top_p; equivalently the most likely prefix whose mass before it is below top_p (at least one).
            double cumulative = 0;
            int prefix = 0;
            while (prefix < keep && cumulative < _options.TopP * total)
                cumulative += probabilities[prefix++];
            keep = Math.Max(1, prefix);
            total = 0;
            for (int i = 0; i < keep; i++)
                total += probabilities[i];
        }

        double draw = _random.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            draw -= probabilities[i];
            if (draw < 0)
                return order[i];
        }
        return order[keep - 1];
    }

    /// <summary>Index of the largest value; the first one among equals; NaN never wins.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best] || float.IsNaN(values[best]))
                best = i;
        return best;
    }
}
