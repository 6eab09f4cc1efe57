namespace DeepSeekKernels.Tokenization;

/// <summary>Hugging Face's "Sequence" pre-tokenizer: each step splits every piece the step before produced.</summary>
internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizerStep> steps) : PreTokenizerStep
{
    /// <inheritdoc />
    public override void Split(string piece, List<string> output)
    {
        var pieces = new List<string> { piece };
        var next = new List<string>();
        foreach (var step in steps)
        {
            next.Clear();
            foreach (var p in pieces)
                step.Split(p, next);
            (pieces, next) = (next, pieces);
        }
        foreach (var p in pieces)
        {
            if (p.Length > 0)
                output.Add(p);
        }
    }
}
