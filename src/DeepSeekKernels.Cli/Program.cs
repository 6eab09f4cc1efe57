using System.CommandLine;
using DeepSeekKernels.Cli.Commands;
using Spectre.Console;

// Redirected output (CI logs, files) has no terminal width; do not wrap tables at 80 columns there.
if (Console.IsOutputRedirected)
    AnsiConsole.Profile.Width = 160;

var root = new RootCommand("dsk: DeepSeek-family kernels and runner for .NET.")
{
    GenerateCommand.Create(),
    ChatCommand.Create(),
    TokenizeCommand.Create(),
    InfoCommand.Create(),
    PlanCommand.Create(),
    CheckCommand.Create(),
};
var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // One line per mistake and a pointer to the help, as for every other error a user can cause (CliErrors);
    // System.CommandLine's own handler would print the whole help after them.
    foreach (var error in parse.Errors)
        Console.Error.WriteLine($"dsk: error: {ParseErrors.Readable(error.Message)}");
    var command = parse.CommandResult.Command;
    Console.Error.WriteLine(command == root ? "(see 'dsk --help')" : $"(see 'dsk {command.Name} --help')");
    return 1;
}
return parse.Invoke();
