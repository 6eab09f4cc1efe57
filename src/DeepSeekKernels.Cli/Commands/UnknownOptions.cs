using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// Words that look like options but are none of the command's. System.CommandLine hands such a word to the
/// command's argument (`dsk generate --tempreature 0.5` would continue the text "--tempreature") or leaves it
/// unmatched; dsk refuses it instead, with the nearest real option. A prompt that really starts with '-' goes
/// after "--", where nothing is taken for an option.
/// </summary>
internal static class UnknownOptions
{
    /// <summary>One line per unknown option, in the order given: "unknown option --tempreature (did you mean --temperature?)".</summary>
    public static IReadOnlyList<string> Find(ParseResult parse)
    {
        var tokens = parse.Tokens;
        int end = tokens.Count;
        for (int i = 0; i < tokens.Count; i++)
            if (tokens[i].Type == TokenType.DoubleDash)
            {
                end = i;
                break;
            }

        var command = parse.CommandResult.Command;
        var taken = new HashSet<Token>(ReferenceEqualityComparer.Instance);
        foreach (var argument in command.Arguments)
            if (parse.GetResult(argument) is { } result)
                foreach (var token in result.Tokens)
                    taken.Add(token);
        var unmatched = new HashSet<string>(parse.UnmatchedTokens, StringComparer.Ordinal);

        var lines = new List<string>();
        for (int i = 0; i < end; i++)
        {
            var token = tokens[i];
            if (token.Type != TokenType.Argument || !LooksLikeAnOption(token.Value))
                continue;
            if (!taken.Contains(token) && !unmatched.Contains(token.Value))
                continue; // the value of an option, e.g. --stop "--"
            string word = token.Value.Split('=', 2)[0];
            string? nearest = Nearest(word, Candidates(parse, command));
            string? hint = nearest != null
                ? $" (did you mean {nearest}?)"
                : command.Arguments.Count > 0
                    ? $" (text that starts with '-' goes after '--': dsk {command.Name} -- \"{token.Value}\")"
                    : null;
            lines.Add($"unknown option {word}{hint}");
        }
        return lines;
    }

    /// <summary>"-x", "--xyz", but not "-", "-5" or "-0.5e3" (a negative number is a value, not an option).</summary>
    internal static bool LooksLikeAnOption(string word) =>
        word.Length > 1 && word[0] == '-'
        && !double.TryParse(word, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    /// <summary>Every name and alias the command accepts here, its own options and the root's recursive ones.</summary>
    static IEnumerable<string> Candidates(ParseResult parse, Command command)
    {
        var options = command.Options.Concat(parse.RootCommandResult.Command.Options.Where(o => o.Recursive || command == parse.RootCommandResult.Command));
        foreach (var option in options)
        {
            yield return option.Name;
            foreach (var alias in option.Aliases)
                yield return alias;
        }
    }

    /// <summary>
    /// The candidate closest to <paramref name="word"/>: the ones it is a prefix of ("--top-k or --top-p"), else the one at the
    /// smallest edit distance (insertions, deletions, substitutions and swaps of neighbours) if that is at most
    /// a third of its letters (at least 1); null when nothing is that close or the word has fewer than 3 letters.
    /// </summary>
    internal static string? Nearest(string word, IEnumerable<string> candidates)
    {
        var names = candidates.Distinct().ToList();
        int letters = word.TrimStart('-').Length;
        var prefixed = names.Where(n => letters >= 2 && n.StartsWith(word, StringComparison.Ordinal)).ToList();
        if (prefixed.Count is >= 1 and <= 3)
            return string.Join(" or ", prefixed);
        if (letters < 3)
            return null; // "-x" is one letter from every short option: no guess
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string name in names)
        {
            int d = Distance(word, name);
            if (d < bestDistance)
            {
                best = name;
                bestDistance = d;
            }
        }
        return bestDistance <= Math.Max(1, letters / 3) ? best : null;
    }

    /// <summary>Edit distance with transpositions of neighbours (optimal string alignment).</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
