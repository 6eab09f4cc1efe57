using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>Runs a command body and turns the errors a user can cause into one clear line and exit code 1.</summary>
internal static class CliErrors
{
    public static int Run(string command, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is CheckpointException or UnsupportedModelException or ArgumentException or FormatException
            or DeepSeekKernels.Models.ModelDoesNotFitException or DeepSeekKernels.Runtime.DeviceMemoryException
            or FileNotFoundException or DirectoryNotFoundException or NotSupportedException or DllNotFoundException
            or InvalidOperationException or InvalidDataException or IOException or OutOfMemoryException)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"dsk {command}: error: {OneLine(e)}");
            return 1;
        }
    }

    /// <summary>
    /// The exception's message as one line, without what .NET appends to an argument exception's message for
    /// programmers (" (Parameter 'name')" and a second line "Actual value was ..."): a user reads the flag.
    /// </summary>
    public static string OneLine(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentOutOfRangeException { ActualValue: not null })
        {
            int newline = message.LastIndexOf(Environment.NewLine, StringComparison.Ordinal);
            if (newline >= 0)
                message = message[..newline];
        }
        if (e is ArgumentException { ParamName: { Length: > 0 } name })
        {
            string suffix = $" (Parameter '{name}')";
            if (message.EndsWith(suffix, StringComparison.Ordinal))
                message = message[..^suffix.Length];
        }
        return message.ReplaceLineEndings(" ");
    }

    /// <summary>Writes a status line to stderr, unwrapped (stdout stays for the output itself).</summary>
    public static void Status(string text) => Console.Error.WriteLine(text);
}
