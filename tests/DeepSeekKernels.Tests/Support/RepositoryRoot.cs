namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// The source checkout the tests read their fixtures from: the folder holding tests/fixtures, found above the
/// test assembly (a build in bin/), else above $DSK_REPO_ROOT (a device bundle unpacked elsewhere: xunit runs in
/// the assembly's folder, so scripts/gpu-check.sh names the checkout), else above the current directory.
/// </summary>
public static class RepositoryRoot
{
    static readonly Lazy<string> Root = new(Find);

    /// <summary>The repository root.</summary>
    public static string Path => Root.Value;

    static string Find()
    {
        string? fromVariable = Environment.GetEnvironmentVariable("DSK_REPO_ROOT");
        foreach (var start in new[] { AppContext.BaseDirectory, fromVariable, Environment.CurrentDirectory })
        {
            if (string.IsNullOrEmpty(start))
                continue;
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (Directory.Exists(System.IO.Path.Combine(dir.FullName, "tests", "fixtures")))
                    return dir.FullName;
        }
        throw new DirectoryNotFoundException(
            $"tests/fixtures not found above {AppContext.BaseDirectory} or {Environment.CurrentDirectory}; set DSK_REPO_ROOT to the checkout.");
    }
}
