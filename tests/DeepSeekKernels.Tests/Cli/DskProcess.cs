using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>Runs the dsk command-line program (built next to the tests) as a separate process, as a user does.</summary>
internal static class DskProcess
{
    public sealed record Result(int ExitCode, string Out, string Error)
    {
        /// <summary>The stderr lines, without empty ones.</summary>
        public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>Runs dsk with <paramref name="args"/>, text on stdin (or none), on the CPU.</summary>
    public static Result Run(string? stdin, params string[] args) =>
        Run(stdin is null ? null : System.Text.Encoding.UTF8.GetBytes(stdin), null, args);

    /// <summary>
    /// Runs dsk with raw bytes on stdin and extra environment variables (a null value removes one). COLUMNS and
    /// DSK_VERBOSE are removed unless given, and DSK_DEVICE is cpu unless given, so the results do not depend on the
    /// shell that runs the tests.
    /// </summary>
    public static Result Run(byte[]? stdin, IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        using var process = Start(environment, args);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (stdin != null)
        {
            process.StandardInput.BaseStream.Write(stdin);
            process.StandardInput.BaseStream.Flush();
        }
        process.StandardInput.Close();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "dsk did not finish in 2 minutes");
        return new Result(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>Starts dsk as <see cref="Run(byte[], IReadOnlyDictionary{string, string}, string[])"/> does, its streams redirected, and returns at once (a server).</summary>
    public static Process Start(IReadOnlyDictionary<string, string?>? environment, params string[] args)
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
        // The JIT as .NET tiers a short process, not as dsk.csproj tunes it for a long run (loops optimized at once, every
        // method hot after 30 calls with no delay) and without PGO's instrumentation: what dsk does is the same, its
        // compiling is not. Measured 2026-12-02 (2 cores): `dsk generate -n 2` 1.65 -> 0.74 s of CPU, `dsk plan` 0.72 -> 0.35 s;
        // the suite starts about 200 dsk processes.
        start.Environment["DOTNET_TC_QuickJitForLoops"] = "1";
        start.Environment["DOTNET_TC_CallCountingDelayMs"] = "100";
        start.Environment["DOTNET_TieredPGO"] = "0";
        start.Environment.Remove("COLUMNS");
        start.Environment.Remove("DSK_VERBOSE");
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
                start.Environment.Remove(name);
            else
                start.Environment[name] = value;
        }
        return Process.Start(start)!;
    }

    /// <summary>
    /// Asserts dsk refused the request as a user's error: exit code 1, its one error line (then at most the pointer
    /// to --help) on stderr containing <paramref name="expected"/>, no stack trace, nothing on stdout.
    /// </summary>
    public static void AssertRefused(Result r, string command, string expected, bool stdoutEmpty = true)
    {
        Assert.True(r.ExitCode == 1, $"exit code {r.ExitCode}, stderr: {r.Error}");
        AssertNoTrace(r);
        var errors = r.ErrorLines.Where(l => l.Contains(": error: ", StringComparison.Ordinal)).ToArray();
        string line = Assert.Single(errors);
        Assert.StartsWith($"{command}: error: ", line);
        Assert.Contains(expected, line);
        if (stdoutEmpty)
            Assert.Equal("", r.Out);
    }

    /// <summary>No .NET stack trace or exception dump on either stream.</summary>
    public static void AssertNoTrace(Result r)
    {
        foreach (var text in new[] { r.Error, r.Out })
        {
            Assert.DoesNotContain("   at ", text);
            Assert.DoesNotContain("Unhandled exception", text);
            Assert.DoesNotContain("--->", text);
        }
    }
}
