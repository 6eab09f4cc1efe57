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
return root.Parse(args).Invoke();
