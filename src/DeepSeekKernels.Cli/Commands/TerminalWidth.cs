using System.Globalization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>The width tables are drawn at when stdout is not a terminal.</summary>
internal static class TerminalWidth
{
    /// <summary>Used when COLUMNS is not set (or not a width): wide enough for every table dsk draws.</summary>
    public const int Default = 160;

    /// <summary>COLUMNS when it is a whole number from 40 to 1000 (what a shell exports), else <see cref="Default"/>.</summary>
    public static int ForRedirectedOutput(string? columns) =>
        int.TryParse(columns?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int width) && width is >= 40 and <= 1000
            ? width
            : Default;
}
