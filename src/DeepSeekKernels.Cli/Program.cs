using System.CommandLine;
using DeepSeekKernels.Cli.Commands;
using Spectre.Console;

// Redirected output (CI logs, files) has no terminal width: use COLUMNS when the shell exports it, else wide
// enough that tables are not wrapped at 80 columns.
if (Console.IsOutputRedirected)
    AnsiConsole.Profile.Width = TerminalWidth.ForRedirectedOutput(Environment.GetEnvironmentVariable("COLUMNS"));

var verbose = new Option<bool>("--verbose")
{
    Description = $"On an error, print the full exception after the error line (also: {CliErrors.VerboseVariable}=1).",
    Recursive = true,
};
var root = new RootCommand("dsk: DeepSeek-family kernels and runner for .NET.")
{
    GenerateCommand.Create(),
    ChatCommand.Create(),
    ServeCommand.Create(),
    TokenizeCommand.Create(),
    InfoCommand.Create(),
    PlanCommand.Create(),
    CheckCommand.Create(),
    BenchCommand.Create(),
    RandomCheckpointCommand.Create(),
};
root.Options.Add(verbose);

// No command at all: the usage, as `dsk --help` prints it, and exit code 1 (nothing was done).
if (args.Length == 0)
{
    root.Parse(["--help"]).Invoke();
    return CliErrors.UserError;
}

var parse = root.Parse(args);
var command = parse.CommandResult.Command;
string name = command == root ? "dsk" : $"dsk {command.Name}";
string help = command == root ? "(see 'dsk --help')" : $"(see 'dsk {command.Name} --help')";

// Words the parser could not place: one line per mistake, in a user's words, and a pointer to the help (not
// System.CommandLine's whole help text). An unknown option is named with the nearest real one.
var unknown = UnknownOptions.Find(parse);
var errors = unknown.Count > 0 ? unknown : ParseErrors.Lines(parse, root);
if (errors.Count > 0)
{
    foreach (string error in errors)
        Console.Error.WriteLine($"{name}: error: {error}");
    Console.Error.WriteLine(help);
    return CliErrors.UserError;
}

bool traces = parse.GetValue(verbose) || CliErrors.VerboseFromEnvironment;
try
{
    return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    // Whatever the command printed stays; the error comes after it, on stderr.
    Console.Out.Flush();
    return CliErrors.Report(e, name, traces, Console.Error);
}
