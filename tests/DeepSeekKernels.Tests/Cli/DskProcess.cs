using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>Runs the dsk command-line program (built next to the tests) as a separate process, as a user does.</summary>
internal static class DskProcess
{
    public sealed record Result(int ExitCode, string Out, string Error);

    public static Result Run(string? stdin, params string[] args)
    {
        // The dotnet host of the running runtime: <root>/shared/Microsoft.NETCore.App/<version>/ -> <root>/dotnet.
        string runtimeDir = RuntimeEnvironment.GetRuntimeDirectory();
        string dotnet = Path.GetFullPath(Path.Combine(runtimeDir, "..", "..", "..", "dotnet"));
        string dsk = Path.Combine(AppContext.BaseDirectory, "dsk.dll");
        Assert.True(File.Exists(dsk), $"dsk.dll is not next to the tests ({dsk})");
        var start = new ProcessStartInfo(File.Exists(dotnet) ? dotnet : "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Support.RepositoryRoot.Path, // where a bundle's dsk finds the embedded model
        };
        start.ArgumentList.Add(dsk);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        start.Environment["DSK_DEVICE"] = "cpu";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (stdin != null)
            process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "dsk did not finish in 2 minutes");
        return new Result(process.ExitCode, output.Result, error.Result);
    }
}
