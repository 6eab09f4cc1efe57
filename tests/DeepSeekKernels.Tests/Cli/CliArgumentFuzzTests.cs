using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>
/// Seeded random command lines, as a user might type them: real commands and options with values that are
/// valid, out of range, malformed, empty or absurd, unknown options, stray words, and model paths that are
/// missing, files or damaged. Whatever dsk makes of them, it exits 0 or 1 (never 2, a bug), never prints a
/// stack trace or a .NET name, refuses in one error line, and prints nothing on stdout before refusing a
/// request it could check up front.
/// </summary>
public class CliArgumentFuzzTests
{
    const int Runs = 64;

    static readonly string[] Commands = ["generate", "chat", "tokenize", "info", "plan", "check"];

    static readonly Dictionary<string, string[]> Options = new()
    {
        ["generate"] = ["--temperature", "-t", "--top-k", "--top-p", "--repetition-penalty", "--seed", "-n", "--stop", "--context", "--prompt-ids", "--print-ids", "--backend", "--device", "--quant", "--allow-fallback", "--kv-dtype", "--batch-file", "--max-batch", "--cuda-graphs", "-m"],
        ["chat"] = ["--system", "--temperature", "--top-k", "-n", "--context", "--backend", "--quant", "--allow-fallback", "--kv-dtype", "-m"],
        ["tokenize"] = ["--json-lines", "--no-special-tokens", "--strict-utf8", "-i", "-m"],
        ["info"] = ["-m"],
        ["plan"] = ["-m", "--context", "--batch", "--gpu-memory", "--memory", "--device", "--prefill-chunk", "--quant"],
        ["check"] = ["--device"],
    };

    static readonly string[] Values =
    [
        "0", "1", "3", "-1", "-3", "0.5", "1.5", "NaN", "-Infinity", "2147483647", "-2147483648", "99999999999", "1e40",
        "", " ", "abc", "--", "-", "1,2,3", "1,,2", ",", "5,99999", "é", "🎉", "cpu", "cuda", "auto", "reference", "ilgpu", "native", "none", "int4", "fp8",
        "80GB", "0GiB", "24", "lots", "/nonexistent", "\u0000",
    ];

    static readonly string[] Stray = ["--tempreature", "--foo=1", "-x", "hello", "--verbose", "--help", "--", "-5"];

    public static TheoryData<int> Seeds() => [.. Enumerable.Range(0, Runs)];

    [Theory, MemberData(nameof(Seeds))]
    public void AnyCommandLineGetsAResultOrOneClearRefusal(int seed)
    {
        var random = new Random(9_000 + seed);
        string command = Commands[random.Next(Commands.Length)];
        var args = new List<string> { command };
        int count = random.Next(0, 4);
        for (int i = 0; i < count; i++)
        {
            if (random.Next(6) == 0)
            {
                args.Add(Stray[random.Next(Stray.Length)]);
                continue;
            }
            string option = Options[command][random.Next(Options[command].Length)];
            args.Add(option);
            if (option is "--print-ids" or "--allow-fallback" or "--cuda-graphs" or "--json-lines" or "--no-special-tokens" or "--strict-utf8")
                continue;
            args.Add(option is "-m" or "-i" ? Path(random) : Values[random.Next(Values.Length)]);
        }
        // Keep each run short: the embedded model, and few new tokens unless the draw set them.
        if (command is "generate" or "chat" && !args.Contains("-n"))
            args.AddRange(["-n", "2"]);
        if (args.Contains("--help"))
            args.Remove("--help"); // help is not an error, and it is long

        var r = DskProcess.Run("hello\n\"json\"\n", [.. args]);
        string shown = string.Join(" ", args.Select(a => $"[{a}]"));
        Assert.True(r.ExitCode is 0 or 1, $"exit code {r.ExitCode} for {shown}: {r.Error}");
        int doubleDash = args.IndexOf("--");
        if (args.Take(doubleDash < 0 ? args.Count : doubleDash).Any(a => a is "--tempreature" or "--foo=1" or "-x"))
            Assert.True(r.ExitCode == 1 && r.Error.Contains("unknown option", StringComparison.Ordinal), $"an unknown option was not refused in {shown}: {r.Error}");
        if (args.Contains("--verbose"))
            return; // asked for the trace
        DskProcess.AssertNoTrace(r);
        foreach (var forbidden in new[] { "(Parameter '", "Actual value was", "DevicePreference", "System.", "Exception:" })
            Assert.False(r.Error.Contains(forbidden, StringComparison.Ordinal), $"'{forbidden}' in the error of {shown}: {r.Error}");
        if (r.ExitCode == 1)
        {
            Assert.True(r.ErrorLines.Count(l => l.Contains(": error: ", StringComparison.Ordinal)) >= 1, $"no error line for {shown}: {r.Error}");
            bool checkedUpFront = command is not ("tokenize" or "chat") && !r.Error.Contains("loaded ", StringComparison.Ordinal);
            if (checkedUpFront)
                Assert.True(r.Out.Length == 0, $"stdout before the refusal of {shown}: {r.Out}");
        }
    }

    /// <summary>A copy of the embedded model whose tokenizer.json is cut short.</summary>
    static readonly Lazy<string> DamagedTokenizer = new(() =>
    {
        var copy = ModelCopies.Of();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => copy.Dispose();
        string tokenizer = copy.File("tokenizer.json");
        File.WriteAllText(tokenizer, File.ReadAllText(tokenizer)[..4000]);
        return copy.Path;
    });

    /// <summary>A model or input path: the embedded model, a fixture, a config.json, a damaged tokenizer, or something that is not one.</summary>
    static string Path(Random random) => random.Next(9) switch
    {
        7 => DamagedTokenizer.Value,
        8 => System.IO.Path.Combine(DamagedTokenizer.Value, "tokenizer.json"),
        0 => CheckpointFixtures.PydocTiny,
        1 => CheckpointFixtures.HfTiny("qwen2"),
        2 => System.IO.Path.Combine(CheckpointFixtures.HfTiny("llama"), "config.json"),
        3 => System.IO.Path.Combine(CheckpointFixtures.PydocTiny, "tokenizer.json"),
        4 => CheckpointFixtures.RepositoryRoot,
        5 => "/nonexistent/model",
        _ => "",
    };
}
