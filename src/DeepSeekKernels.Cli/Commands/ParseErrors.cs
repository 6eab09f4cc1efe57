using System.CommandLine;
using System.Text.RegularExpressions;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>System.CommandLine's parse errors, in a user's words.</summary>
internal static partial class ParseErrors
{
    /// <summary>
    /// One line per parse error. A word where a command was expected becomes "unknown command 'genrate' (did you
    /// mean generate?)".
    /// </summary>
    public static IReadOnlyList<string> Lines(ParseResult parse, RootCommand root)
    {
        var lines = new List<string>();
        bool atRoot = parse.CommandResult.Command == root;
        bool unknownCommand = atRoot && parse.Errors.Any(e => UnrecognizedWord().IsMatch(Readable(e.Message)));
        foreach (var error in parse.Errors)
        {
            if (unknownCommand && parse.CommandResult.Command.Subcommands.Count > 0 && error.Message.StartsWith("Required command", StringComparison.Ordinal))
                continue; // said better by the unknown command's line
            string line = Readable(error.Message);
            if (atRoot && UnrecognizedWord().Match(line) is { Success: true } m)
            {
                string word = m.Groups["word"].Value;
                string? nearest = UnknownOptions.Nearest(word, root.Subcommands.Select(c => c.Name));
                line = $"unknown command '{word}' (" + (nearest != null ? $"did you mean {nearest}?" :
                    $"the commands are {string.Join(", ", root.Subcommands.Select(c => c.Name))}") + ")";
            }
            lines.Add(line);
        }
        return lines;
    }

    /// <summary>
    /// The message on one line, with .NET type names said plainly: "Cannot parse argument 'abc' for option
    /// '--seed' as expected type 'System.Nullable`1[System.Int32]'." becomes "... for option '--seed' as an
    /// integer.", and a list of allowed values stays on the line.
    /// </summary>
    public static string Readable(string message) =>
        ExpectedType().Replace(Whitespace().Replace(message.Trim(), " "), m => "as " + (m.Groups["type"].Value switch
        {
            "Int32" or "Int64" or "Int16" or "UInt32" or "UInt64" => "an integer",
            "Single" or "Double" or "Decimal" => "a number",
            "Boolean" => "true or false",
            var other => "a " + other,
        }));

    [GeneratedRegex(@"as expected type '(?:System\.Nullable`1\[)?System\.(?<type>\w+)\]?'")]
    private static partial Regex ExpectedType();

    [GeneratedRegex(@"\s*[\r\n]+\s*")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"^Unrecognized command or argument '(?<word>[^-'][^']*)'\.?$")]
    private static partial Regex UnrecognizedWord();
}
