namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// A request dsk refuses because of what the user gave it (a flag's value, an argument, a prompt, a path), with
/// the message to print: one line that names the flag or file. The top level prints it and exits with 1.
/// </summary>
internal sealed class UsageException(string message, Exception? inner = null) : Exception(message, inner);
