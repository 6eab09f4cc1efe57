using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Cli;

// dsk tried as a new user would, with damaged model folders and odd arguments (issue 9). Each class is one class
// of defect: every refusal is one line naming the file or flag, exit code 1, no stack trace, nothing on stdout
// before the request is known to be valid, and nothing silently wrong.

/// <summary>Damaged tokenizer files and unreadable paths, per command: one error line, exit code 1, no trace.</summary>
public class CliNoTraceTests
{
    /// <summary>Ways to damage a model folder's tokenizer files.</summary>
    public static TheoryData<string, string> TokenizerDamage()
    {
        var data = new TheoryData<string, string>();
        foreach (var command in new[] { "generate", "chat", "tokenize" })
            foreach (var damage in new[] { "garbage tokenizer.json", "empty tokenizer.json", "tokenizer.json not an object", "garbage tokenizer_config.json", "truncated tokenizer.json" })
                data.Add(command, damage);
        return data;
    }

    [Theory, MemberData(nameof(TokenizerDamage))]
    public void ADamagedTokenizerIsOneLineNamingTheFile(string command, string damage)
    {
        using var copy = ModelCopies.Of();
        string folder = copy.Path;
        string tokenizer = Path.Combine(folder, "tokenizer.json");
        string file = tokenizer;
        switch (damage)
        {
            case "garbage tokenizer.json": File.WriteAllText(tokenizer, "{garbage"); break;
            case "empty tokenizer.json": File.WriteAllText(tokenizer, ""); break;
            case "tokenizer.json not an object": File.WriteAllText(tokenizer, "[1, 2, 3]"); break;
            case "truncated tokenizer.json": File.WriteAllText(tokenizer, File.ReadAllText(tokenizer)[..5000]); break;
            case "garbage tokenizer_config.json":
                file = Path.Combine(folder, "tokenizer_config.json");
                File.WriteAllText(file, "{\"x\":");
                break;
        }
        string[] args = command == "generate" ? ["generate", "hello", "-m", folder] : [command, "-m", folder];
        var r = DskProcess.Run("hello\n", args);
        DskProcess.AssertRefused(r, $"dsk {command}", file);
    }

    /// <summary>Paths that cannot be read as what the flag wants: missing, a file for a folder, a folder for a file, a path through a file.</summary>
    public static TheoryData<string, string, string> UnreadablePaths() => new()
    {
        { "generate", "--model", "missing" }, { "generate", "--model", "file" }, { "generate", "--model", "through-file" }, { "generate", "--model", "empty-folder" },
        { "chat", "--model", "missing" }, { "chat", "--model", "file" }, { "chat", "--model", "empty-folder" },
        { "tokenize", "--model", "missing" }, { "tokenize", "--model", "file" }, { "tokenize", "--model", "empty-folder" },
        { "tokenize", "--input", "missing" }, { "tokenize", "--input", "empty" }, { "tokenize", "--input", "folder" }, { "tokenize", "--input", "through-file" },
        { "info", "--model", "missing" }, { "info", "--model", "through-file" }, { "info", "--model", "empty-folder" }, { "info", "--model", "file" },
        { "plan", "--model", "missing" }, { "plan", "--model", "through-file" }, { "plan", "--model", "empty-folder" }, { "plan", "--model", "file" },
    };

    [Theory, MemberData(nameof(UnreadablePaths))]
    public void AnUnreadablePathIsOneLineNamingTheFlagOrFile(string command, string flag, string kind)
    {
        using var temp = new TempFolder();
        string file = temp.File("notes.txt");
        File.WriteAllText(file, "not a model\n");
        string path = kind switch
        {
            "missing" => temp.File("no-such-thing"),
            "file" => file,
            "folder" => temp.Path,
            "through-file" => Path.Combine(file, "config.json"),
            "empty-folder" => temp.Subfolder("empty"),
            "empty" => "",
            _ => throw new ArgumentException(kind),
        };
        var r = DskProcess.Run("hello\n", command, flag, path);
        DskProcess.AssertRefused(r, $"dsk {command}", kind switch { "through-file" => file, "empty" => $"{flag} \"\"", _ => path });
    }

    [Fact]
    public void VerboseAddsTheTraceAfterTheSameLine()
    {
        string missing = Path.Combine(Path.GetTempPath(), "dsk-no-such-model-" + Guid.NewGuid().ToString("N"));
        var plain = DskProcess.Run(null, "generate", "-m", missing);
        DskProcess.AssertRefused(plain, "dsk generate", "no such folder");

        var verbose = DskProcess.Run(null, "generate", "-m", missing, "--verbose");
        Assert.Equal(1, verbose.ExitCode);
        Assert.StartsWith(plain.ErrorLines[0], verbose.Error);
        Assert.Contains("   at ", verbose.Error);

        var fromEnvironment = DskProcess.Run(null, new Dictionary<string, string?> { ["DSK_VERBOSE"] = "1" }, "generate", "-m", missing);
        Assert.Equal(1, fromEnvironment.ExitCode);
        Assert.Contains("   at ", fromEnvironment.Error);
    }
}

/// <summary>Nothing reaches stdout before the request is known to be valid.</summary>
public class CliOutputOrderTests
{
    [Fact]
    public void APromptLongerThanTheModelAllowsIsRefusedBeforeItIsEchoed()
    {
        string prompt = string.Concat(Enumerable.Repeat("The list type is a sequence. ", 600));
        var r = DskProcess.Run(null, "generate", prompt);
        DskProcess.AssertRefused(r, "dsk generate", "tokens; the model holds at most 1,024 (max_position_embeddings)");
        Assert.DoesNotContain("loaded", r.Error); // refused before the weights were read
    }

    [Fact]
    public void APromptLongerThanTheGivenContextIsRefusedBeforeItIsEchoed()
    {
        var r = DskProcess.Run(null, "generate", "The list type is a sequence of values, and so on and on.", "--context", "8");
        DskProcess.AssertRefused(r, "dsk generate", "leaves no room to generate: give a context above");
    }

    [Fact]
    public void AChatThatOutgrowsItsContextEndsWithAnErrorAndExitCode1()
    {
        var r = DskProcess.Run("How do I open a file in Python and read its lines?\n", "chat", "--context", "12");
        Assert.Equal(1, r.ExitCode);
        DskProcess.AssertNoTrace(r);
        Assert.Contains("dsk chat: error: the conversation has ", r.Error);
        Assert.Contains("the chat cannot go on", r.Error);
    }
}

/// <summary>Nothing silently wrong: non-finite logits, dropped ids, replaced bytes, a config the files contradict.</summary>
public class CliSilentlyWrongTests
{
    [Theory]
    [InlineData("1,,2", "entry 2 is empty")]
    [InlineData("1,2,", "entry 3 is empty")]
    [InlineData(",1", "entry 1 is empty")]
    [InlineData("1, ,2", "entry 2 is empty")]
    [InlineData("5,2048", "2048 (entry 2) is outside the model's vocabulary, 0..2047")]
    [InlineData("99999999999", "99999999999 (entry 1) is outside the model's vocabulary")]
    [InlineData("-1", "'-1' (entry 1) is not a non-negative integer")]
    public void PromptIdsAreTakenExactlyOrRefused(string ids, string message)
    {
        var r = DskProcess.Run(null, "generate", "--prompt-ids", ids, "-n", "2");
        DskProcess.AssertRefused(r, "dsk generate", "--prompt-ids: " + message);
    }

    static readonly byte[] MixedUtf8 = [.. "ok\n"u8, 0x66, 0xFF, 0xFE, 0x67, (byte)'\n', .. "caf\u00e9\n"u8];

    [Fact]
    public void InvalidUtf8OnTokenizesInputIsNamedOnStderr()
    {
        var r = DskProcess.Run(MixedUtf8, null, "tokenize", "--no-special-tokens");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(3, r.Out.TrimEnd('\n').Split('\n').Length);
        var warning = Assert.Single(r.ErrorLines);
        Assert.Equal("dsk tokenize: warning: line 2 is not valid UTF-8 (byte 2 of the line); its invalid bytes were read as U+FFFD (--strict-utf8 refuses such input).", warning);
    }

    [Fact]
    public void StrictUtf8RefusesTheLineAfterTheValidOnes()
    {
        var r = DskProcess.Run(MixedUtf8, null, "tokenize", "--strict-utf8");
        DskProcess.AssertRefused(r, "dsk tokenize", "--strict-utf8: line 2 is not valid UTF-8 (byte 2 of the line).", stdoutEmpty: false);
        Assert.Single(r.Out.TrimEnd('\n').Split('\n')); // line 1's ids, streamed before line 2 was read
    }

    [Fact]
    public void NaNWeightsStopGenerationWithAnErrorNamingThePosition()
    {
        using var copy = ModelCopies.Of(fill: ("model.norm.weight", float.NaN));
        string folder = copy.Path;
        var r = DskProcess.Run(null, "generate", "--prompt-ids", "5,6,7", "--print-ids", "-n", "4", "-m", folder);
        DskProcess.AssertRefused(r, "dsk generate", "position 2");
        Assert.Contains("weights", r.ErrorLines.Single(l => l.Contains("error:")));
    }

    [Fact]
    public void InfWeightsStopGenerationToo()
    {
        using var copy = ModelCopies.Of(fill: ("model.layers.0.self_attn.o_proj.weight", float.PositiveInfinity));
        string folder = copy.Path;
        var r = DskProcess.Run(null, "generate", "The list type", "-n", "4", "-m", folder);
        DskProcess.AssertRefused(r, "dsk generate", "weights"); // nothing on stdout: the prompt is echoed with the first text
    }

    [Fact]
    public void InfoRefusesAConfigThatClaimsLayersTheFilesDoNotHave()
    {
        using var copy = ModelCopies.Of(editConfig: c => c["num_hidden_layers"] = 5);
        string folder = copy.Path;
        var r = DskProcess.Run(null, "info", "-m", folder);
        DskProcess.AssertRefused(r, "dsk info", "model.layers.4.");

        var generate = DskProcess.Run(null, "generate", "-m", folder, "hello");
        DskProcess.AssertRefused(generate, "dsk generate", "model.layers.4.");
    }

    [Fact]
    public void InfoRefusesAConfigWhoseSizesContradictTheTensors()
    {
        using var copy = ModelCopies.Of(editConfig: c => c["moe_intermediate_size"] = 256);
        string folder = copy.Path;
        var r = DskProcess.Run(null, "info", "-m", folder);
        DskProcess.AssertRefused(r, "dsk info", "[128, 256]");
    }

    [Fact]
    public void InfoSaysWhenTheFilesHoldLayersTheConfigDoesNotUse()
    {
        using var copy = ModelCopies.Of(editConfig: c => c["num_hidden_layers"] = 2);
        string folder = copy.Path;
        var r = DskProcess.Run(null, "info", "-m", folder);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("tensors the config does not use: layer 3 is beyond num_hidden_layers (2); e.g. model.layers.3.", r.Out);
        Assert.Contains("MTP tensors", r.Out); // layer 2, where num_nextn_predict_layers = 1 puts the MTP layer
    }
}

/// <summary>Sizes computed without wrapping; absurd sizes refused naming the flag or config key, and never slow.</summary>
public class CliAbsurdSizeTests
{
    [Fact]
    public void AHugeMaxNewTokensRunsUntilTheContextIsFull()
    {
        var ids = string.Join(",", Enumerable.Range(0, 1010).Select(i => 5 + i % 1000));
        var r = DskProcess.Run(null, "generate", "--prompt-ids", ids, "--print-ids", "-n", "2147483647");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("(ContextFull)", r.Error);
        // 1010 prompt positions and 13 fed-back tokens fill the 1024 positions; the 15th token is sampled from the last logits.
        Assert.Equal(1024 - 1010 + 1, r.Out.Trim().Split(',').Length);
    }

    [Fact]
    public void APlanThatOverflowsNamesTheFlags()
    {
        string config = Path.Combine(Directory.CreateTempSubdirectory("dsk-plan").FullName, "config.json");
        File.WriteAllText(config, HubConfigs.DeepSeekV3);
        var r = DskProcess.Run(null, "plan", "-m", config, "--batch", "1602202737", "--context", "163840");
        DskProcess.AssertRefused(r, "dsk plan", "--context 163,840 x --batch 1,602,202,737");
    }

    [Theory]
    [InlineData("1e30", "outside 1 B..")]
    [InlineData("0GB", "outside 1 B..")]
    [InlineData("-5", "outside 1 B..")]
    [InlineData("NaN", "outside 1 B..")]
    [InlineData("Infinity", "outside 1 B..")]
    public void AnAbsurdGpuMemoryIsRefused(string value, string message)
    {
        var r = DskProcess.Run(null, "plan", "--gpu-memory", value);
        DskProcess.AssertRefused(r, "dsk plan", $"--gpu-memory '{value}' is " + message);
    }

    [Fact]
    public void AHugeMaxPositionEmbeddingsIsPlannedAndRunAtTheContextUsed()
    {
        using var copy = ModelCopies.Of(editConfig: c => c["max_position_embeddings"] = int.MaxValue);
        string folder = copy.Path;
        var plan = DskProcess.Run(null, "plan", "-m", folder);
        Assert.True(plan.ExitCode == 0, plan.Error);
        Assert.Contains("8,192 positions (the context) x 16 x 4 B", plan.Out); // the RoPE table for the context planned, not for 2^31 positions

        var generate = DskProcess.Run(null, "generate", "-m", folder, "--prompt-ids", "5,6,7", "--print-ids", "-n", "3");
        Assert.True(generate.ExitCode == 0, generate.Error);
        var original = DskProcess.Run(null, "generate", "--prompt-ids", "5,6,7", "--print-ids", "-n", "3");
        Assert.Equal(original.Out, generate.Out);
    }

    [Fact]
    public void AConfigWithAHugeLayerCountIsDescribedAtOnceWithoutWeights()
    {
        using var copy = ModelCopies.Of(editConfig: c => c["num_hidden_layers"] = int.MaxValue);
        string folder = copy.Path;
        var r = DskProcess.Run(null, "info", "-m", Path.Combine(folder, "config.json"));
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("2,147,483,647 / 256 / 2,048", r.Out);

        var withWeights = DskProcess.Run(null, "info", "-m", folder);
        DskProcess.AssertRefused(withWeights, "dsk info", "model.layers.4.");
    }

    [Fact]
    public void SizesTooLargeToCountAreRefusedNamingTheConfig()
    {
        using var copy = ModelCopies.Of(editConfig: c =>
        {
            c["num_hidden_layers"] = int.MaxValue;
            c["hidden_size"] = 2147483520;
            c["vocab_size"] = int.MaxValue;
            c["moe_intermediate_size"] = int.MaxValue;
            c["intermediate_size"] = int.MaxValue;
        });
        string folder = copy.Path;
        string config = Path.Combine(folder, "config.json");
        foreach (var command in new[] { "info", "plan" })
        {
            var r = DskProcess.Run(null, command, "-m", config);
            DskProcess.AssertRefused(r, $"dsk {command}", config);
        }
    }
}

/// <summary>Unknown options are named (with the nearest real one), not taken as the prompt.</summary>
public class CliUnknownOptionTests
{
    [Theory]
    [InlineData("generate --tempreature 0.5", "dsk generate", "unknown option --tempreature (did you mean --temperature?)")]
    [InlineData("generate --tempreature=0.5", "dsk generate", "unknown option --tempreature (did you mean --temperature?)")]
    [InlineData("generate --max-new-token 5", "dsk generate", "unknown option --max-new-token (did you mean --max-new-tokens?)")]
    [InlineData("generate --temp 0.5", "dsk generate", "unknown option --temp (did you mean --temperature?)")]
    [InlineData("generate -x", "dsk generate", "unknown option -x (text that starts with '-' goes after '--': dsk generate -- \"-x\")")]
    [InlineData("chat --sytem be-brief", "dsk chat", "unknown option --sytem (did you mean --system?)")]
    [InlineData("plan --contxt 5", "dsk plan", "unknown option --contxt (did you mean --context?)")]
    [InlineData("info --foo", "dsk info", "unknown option --foo")]
    [InlineData("tokenize --json-line", "dsk tokenize", "unknown option --json-line (did you mean --json-lines?)")]
    [InlineData("check --devise cpu", "dsk check", "unknown option --devise (did you mean --device?)")]
    [InlineData("genrate", "dsk", "unknown command 'genrate' (did you mean generate?)")]
    public void AnUnknownOptionIsNamedWithTheNearestRealOne(string args, string command, string message)
    {
        var r = DskProcess.Run("hello\n", args.Split(' '));
        Assert.Equal(1, r.ExitCode);
        DskProcess.AssertNoTrace(r);
        Assert.Equal([$"{command}: error: {message}", $"(see '{command} --help')"], r.ErrorLines);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void APromptThatStartsWithDashesGoesAfterTheDoubleDash()
    {
        var r = DskProcess.Run(null, "generate", "-n", "3", "--", "--tempreature is not an option here");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.StartsWith("--tempreature is not an option here", r.Out);
    }

    [Fact]
    public void NegativeNumbersAreValuesNotOptions()
    {
        var r = DskProcess.Run(null, "generate", "--top-k", "-3");
        DskProcess.AssertRefused(r, "dsk generate", "--top-k -3: top-k must be >= 0");
    }

    [Fact]
    public void AnOptionsValueMayStartWithDashes()
    {
        var r = DskProcess.Run(null, "generate", "--stop", "--never--", "-n", "3");
        Assert.True(r.ExitCode == 0, r.Error);
    }
}

/// <summary>Errors in the user's words: flags, not .NET names.</summary>
public class CliWordingTests
{
    [Fact]
    public void NoGpuIsSaidWithTheDeviceFlag()
    {
        Assert.SkipWhen(TestDevices.Cuda != null, "This machine has a CUDA GPU: --device cuda works here.");
        foreach (var args in new[] { new[] { "check", "--device", "cuda" }, ["generate", "--backend", "ilgpu", "--device", "cuda"] })
        {
            var r = DskProcess.Run(null, args);
            DskProcess.AssertRefused(r, $"dsk {args[0]}", "--device cuda: no CUDA GPU was found on this machine; use --device auto");
            Assert.DoesNotContain("DevicePreference", r.Error);
        }
    }

    [Fact]
    public void NoGpuAskedForThroughTheEnvironmentNamesTheVariable()
    {
        Assert.SkipWhen(TestDevices.Cuda != null, "This machine has a CUDA GPU: DSK_DEVICE=cuda works here.");
        var r = DskProcess.Run(null, new Dictionary<string, string?> { ["DSK_DEVICE"] = "cuda" }, "check");
        DskProcess.AssertRefused(r, "dsk check", "DSK_DEVICE=cuda: no CUDA GPU was found on this machine; unset DSK_DEVICE or set it to cpu.");
    }

    [Fact]
    public void TheNativeBackendWithoutAGpuIsSaidWithTheBackendFlag()
    {
        Assert.SkipWhen(TestDevices.Cuda != null, "This machine has a CUDA GPU.");
        var r = DskProcess.Run(null, "generate", "--backend", "native");
        DskProcess.AssertRefused(r, "dsk generate", "--backend native: the native backend is not available");
    }

    [Theory]
    [InlineData("plan --prefill-chunk 0", "dsk plan", "--prefill-chunk 0: must be at least 1 (tokens per forward pass).")]
    [InlineData("plan --prefill-chunk -7", "dsk plan", "--prefill-chunk -7: must be at least 1 (tokens per forward pass).")]
    [InlineData("plan --batch -1", "dsk plan", "--batch -1: must be at least 1.")]
    [InlineData("generate --prompt-ids 1 hello", "dsk generate", "give either a text prompt or --prompt-ids, not both.")]
    public void AFlagOutOfRangeIsNamedAsTyped(string args, string command, string message)
    {
        var r = DskProcess.Run(null, args.Split(' '));
        DskProcess.AssertRefused(r, command, message);
        Assert.DoesNotContain("request.", r.Error);
        Assert.DoesNotContain("(Parameter", r.Error);
    }
}

/// <summary>Small things people notice.</summary>
public class CliPresentationTests
{
    [Fact]
    public void PlanStatesTheKvCacheBytesPerToken()
    {
        string config = Path.Combine(Directory.CreateTempSubdirectory("dsk-plan").FullName, "config.json");
        File.WriteAllText(config, HubConfigs.R1DistillLlama8B);
        var r = DskProcess.Run(null, "plan", "-m", config);
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("KV cache 128.0 KiB per token", r.Out); // 32 layers x 2 x 8 kv heads x 128 x 2 B
    }

    [Fact]
    public void InfoHasNoEmptyHeaderRowAndCountsLayersInGoodEnglish()
    {
        var r = DskProcess.Run(null, "info");
        Assert.True(r.ExitCode == 0, r.Error);
        var lines = r.Out.Split('\n');
        Assert.StartsWith("╭", lines[0]);
        Assert.Contains("model_type", lines[1]); // the first row is data, not an empty header
        Assert.Contains("1 dense layer (intermediate", r.Out);
        Assert.Contains("3 MoE layers", r.Out);
    }

    [Theory]
    [InlineData("100", 100)]
    [InlineData("60", 60)]
    [InlineData(null, 160)]
    [InlineData("wide", 160)]
    public void PipedTablesFollowColumns(string? columns, int width)
    {
        var r = DskProcess.Run(null, new Dictionary<string, string?> { ["COLUMNS"] = columns }, "plan");
        Assert.True(r.ExitCode == 0, r.Error);
        int widest = r.Out.Split('\n').Max(l => l.TrimEnd('\r').Length);
        Assert.True(widest <= width, $"a line of {widest} characters at COLUMNS={columns}");
        Assert.True(widest > width - 20, $"the table used {widest} of {width} columns");
    }
}
