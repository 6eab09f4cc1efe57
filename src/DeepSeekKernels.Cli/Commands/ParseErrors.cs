using System.Text.RegularExpressions;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>System.CommandLine's parse errors, in a user's words.</summary>
internal static partial class ParseErrors
{
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
}
