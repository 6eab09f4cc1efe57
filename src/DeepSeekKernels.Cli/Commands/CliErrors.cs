using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// How dsk reports a failure: one line on stderr, "dsk COMMAND: error: ...", and exit code 1 for what a user can
/// cause (a flag, a file, a model, the machine); "dsk COMMAND: internal error: ..." and exit code 2 for anything
/// else, which is a bug in dsk. The stack trace only with --verbose or DSK_VERBOSE=1.
/// </summary>
internal static class CliErrors
{
    /// <summary>Exit code for an error the user can fix (bad flag, damaged file, model too large, no GPU).</summary>
    public const int UserError = 1;

    /// <summary>Exit code for an exception dsk did not expect: a bug.</summary>
    public const int Bug = 2;

    /// <summary>The environment variable that, set to 1 (or true), prints the full exception after the error line.</summary>
    public const string VerboseVariable = "DSK_VERBOSE";

    /// <summary>True when DSK_VERBOSE asks for traces.</summary>
    public static bool VerboseFromEnvironment =>
        Environment.GetEnvironmentVariable(VerboseVariable)?.Trim().ToLowerInvariant() is "1" or "true" or "yes";

    /// <summary>
    /// True for the exceptions a user's input or machine explains: refusals of flags, files, checkpoints,
    /// tokenizers and configurations, a model that does not fit, missing devices and libraries, failed reads.
    /// Everything else (ArgumentException from inside the library, NullReferenceException, ...) is a bug.
    /// </summary>
    public static bool IsUserError(Exception e) => e is UsageException or CheckpointException or TokenizerException
        or ModelDoesNotFitException or DeviceMemoryException or NonFiniteLogitsException or NoCudaDeviceException
        or IOException or UnauthorizedAccessException or DllNotFoundException or NotSupportedException
        or OutOfMemoryException;

    /// <summary>
    /// Writes <paramref name="e"/> as dsk's one error line (and, when <paramref name="verbose"/>, the full
    /// exception after it) to <paramref name="error"/>, and returns the exit code.
    /// </summary>
    public static int Report(Exception e, string command, bool verbose, TextWriter error)
    {
        int code = IsUserError(e) ? UserError : Bug;
        error.WriteLine(code == UserError
            ? $"{command}: error: {(e is OpNotSupportedException op ? Unsupported(op) : OneLine(e))}"
            : $"{command}: internal error: {e.GetType().Name}: {OneLine(e)} (a bug in dsk; " +
              (verbose ? "the trace follows" : $"run it again with --verbose or {VerboseVariable}=1 for the trace") + ", and please report it)");
        if (verbose)
            error.WriteLine(e.ToString());
        return code;
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
        return string.Join(" ", message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    /// <summary>A strict backend refused an op call: name the call and the flag that lets it run on the reference.</summary>
    public static string Unsupported(OpNotSupportedException e) =>
        $"{e.Signature} is not supported by --backend {e.Backend.ToString().ToLowerInvariant()}" + (e.Reason is null ? "" : $" ({e.Reason})")
        + "; add --allow-fallback to run the ops it lacks on the reference backend (staged through host memory on a GPU: slow).";

    /// <summary>"The native backend ..." as "the native backend ...", to follow a flag and a colon.</summary>
    public static string LowerFirst(string text) =>
        text.Length > 1 && char.IsUpper(text[0]) && !char.IsUpper(text[1]) ? char.ToLowerInvariant(text[0]) + text[1..] : text;

    /// <summary>Writes a status line to stderr, unwrapped (stdout stays for the output itself).</summary>
    public static void Status(string text) => Console.Error.WriteLine(text);

    /// <summary>Writes a warning line to stderr: "dsk COMMAND: warning: ...".</summary>
    public static void Warning(string command, string text) => Console.Error.WriteLine($"dsk {command}: warning: {text}");
}
