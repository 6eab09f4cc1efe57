namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Turns the matches of a split pattern into pieces the way Hugging Face's NormalizedString.split does: the text
/// is first cut into segments that cover it (each a delimiter match or the gap between two), then the behaviour
/// decides what becomes of the delimiters; empty pieces are dropped.
/// </summary>
internal static class SplitSegments
{
    /// <summary>One segment: [Start, End) in UTF-16 units, and whether it is a delimiter.</summary>
    internal readonly record struct Segment(int Start, int End, bool IsMatch);

    /// <summary>Appends the gaps and matches of <paramref name="matches"/> (sorted, not overlapping) over a text of
    /// <paramref name="length"/> units to <paramref name="segments"/>; with <paramref name="invert"/>, gaps count
    /// as the delimiters.</summary>
    public static void FromMatches(IReadOnlyList<(int Start, int End)> matches, int length, bool invert, List<Segment> segments)
    {
        int previous = 0;
        foreach (var (start, end) in matches)
        {
            if (previous != start)
                segments.Add(new Segment(previous, start, invert));
            segments.Add(new Segment(start, end, !invert));
            previous = end;
        }
        if (previous != length)
            segments.Add(new Segment(previous, length, invert));
    }

    /// <summary>Applies <paramref name="behavior"/> to <paramref name="segments"/> and appends the non-empty pieces
    /// of <paramref name="text"/> to <paramref name="output"/>.</summary>
    public static void Apply(string text, List<Segment> segments, SplitBehavior behavior, List<string> output)
    {
        var pieces = new List<(int Start, int End)>(segments.Count);
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var s in segments)
                    pieces.Add((s.Start, s.End));
                break;
            case SplitBehavior.Removed:
                foreach (var s in segments)
                {
                    if (!s.IsMatch)
                        pieces.Add((s.Start, s.End));
                }
                break;
            case SplitBehavior.Contiguous:
                foreach (var s in segments)
                {
                    if (s.IsMatch == previousMatch && pieces.Count > 0)
                        pieces[^1] = (pieces[^1].Start, s.End);
                    else
                        pieces.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var s in segments)
                {
                    if (s.IsMatch && !previousMatch && pieces.Count > 0)
                        pieces[^1] = (pieces[^1].Start, s.End);
                    else
                        pieces.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = segments.Count - 1; i >= 0; i--)
                {
                    var s = segments[i];
                    if (s.IsMatch && !previousMatch && pieces.Count > 0)
                        pieces[^1] = (s.Start, pieces[^1].End);
                    else
                        pieces.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                pieces.Reverse();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(behavior), behavior, "unknown split behaviour");
        }
        foreach (var (start, end) in pieces)
        {
            if (end > start)
                output.Add(text[start..end]);
        }
    }
}
