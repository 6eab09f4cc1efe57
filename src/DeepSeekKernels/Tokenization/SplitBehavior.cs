namespace DeepSeekKernels.Tokenization;

/// <summary>What a split does with the delimiters it finds (Hugging Face's SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    /// <summary>Drop them.</summary>
    Removed,

    /// <summary>Keep each as a piece of its own.</summary>
    Isolated,

    /// <summary>Append each to the piece before it.</summary>
    MergedWithPrevious,

    /// <summary>Prepend each to the piece after it.</summary>
    MergedWithNext,

    /// <summary>Keep runs of consecutive delimiters together as one piece.</summary>
    Contiguous,
}
