namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// The source checkout the tests read their fixtures from: the folder holding tests/fixtures, found above the
/// test assembly (a build in bin/), else above the current directory (a device bundle unpacked elsewhere and run
/// from the checkout, as scripts/gpu-check.sh does), else $DSK_REPO_ROOT.
/// </summary>
public static class RepositoryRoot
{
    static readonly Lazy<string> Root = new(Find);

    /// <summary>The repository root.</summary>
    public static string Path => Root.Value;

    static string Find()
    {
        string? fromVariable = Environment.GetEnvironmentVariable("DSK_REPO_ROOT");
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory, fromVariable })
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
