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
            Console.Error.WriteLine($"dsk {command}: error: {e.Message}");
            return 1;
        }
    }

    /// <summary>Writes a status line to stderr, unwrapped (stdout stays for the output itself).</summary>
    public static void Status(string text) => Console.Error.WriteLine(text);
}
