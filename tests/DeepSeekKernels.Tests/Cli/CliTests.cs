using System.Text.Json;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>`dsk` end to end: the commands a user runs, with their output and their errors.</summary>
public class CliTests
{
    static (string Prompt, int[] Greedy) FirstSample()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(CheckpointFixtures.PydocTiny, "samples.json")));
        var sample = json.RootElement[0];
        return (sample.GetProperty("prompt").GetString()!, [.. sample.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32())]);
    }

    [Fact]
    public void GenerateWithNoArgumentsWritesTheEmbeddedModelsText()
    {
        var r = DskProcess.Run(null, "generate", "--max-new-tokens", "12");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.StartsWith("The list type is not a list of\nthe list.", r.Out);
        Assert.Contains("generated", r.Error); // the statistics go to stderr
    }

    [Fact]
    public void GenerateFromIdsPrintsTheGreedyIds()
    {
        var (prompt, greedy) = FirstSample();
        var ids = HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny).Encode(prompt);
        var r = DskProcess.Run(null, "generate", "--prompt-ids", string.Join(",", ids), "--print-ids", "--max-new-tokens", "16", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(string.Join(",", greedy.Take(16)), r.Out.Trim());
    }

    [Fact]
    public void GenerateRunsAFixtureCheckpointFromIds()
    {
        var r = DskProcess.Run(null, "generate", "-m", CheckpointFixtures.HfTiny("qwen2"), "--prompt-ids", "5,6,7", "--print-ids", "-n", "4");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(4, r.Out.Trim().Split(',').Length);
    }

    [Fact]
    public void TokenizeJsonLinesPrintsOneIdLinePerInput()
    {
        string[] texts = ["The list type", "two\nlines", "emoji 🎉 and 中文"];
        var tokenizer = HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
        var r = DskProcess.Run(string.Join("\n", texts.Select(t => JsonSerializer.Serialize(t))) + "\n", "tokenize", "--json-lines");
        Assert.True(r.ExitCode == 0, r.Error);
        var lines = r.Out.TrimEnd('\n').Split('\n');
        Assert.Equal(texts.Length, lines.Length);
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(string.Join(",", tokenizer.Encode(texts[i])), lines[i]);
    }

    [Fact]
    public void InfoShowsArchitectureParametersAndBytesPerDtype()
    {
        var r = DskProcess.Run(null, "info", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"));
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("deepseek_v3", r.Out);
        Assert.Contains("active per token", r.Out);
        Assert.Contains("F8_E4M3", r.Out);
        Assert.Contains("fp8 e4m3, 128x128 blocks", r.Out);
    }

    [Fact]
    public void PlanShowsEveryLineForEachFormat()
    {
        string config = Path.Combine(Directory.CreateTempSubdirectory("dsk-plan").FullName, "config.json");
        File.WriteAllText(config, HubConfigs.R1DistillLlama8B);
        var r = DskProcess.Run(null, "plan", "-m", config, "--context", "32768", "--gpu-memory", "24GB");
        Assert.True(r.ExitCode == 0, r.Error);
        foreach (var item in new[] { "linear weights", "weight scales", "KV cache", "activations", "total", "fits?", "max context", "bf16", "fp8", "int4" })
            Assert.Contains(item, r.Out);
        Assert.Contains("32 layers x 2 (k, v) x 8 kv heads x 128 x 2 B (bf16)", r.Out); // the rest may wrap
        Assert.Contains("2,048 pages of", r.Out);
    }

    /// <summary>`dsk plan --device cpu`: host memory, the CPU runner's float32 KV cache, no attention workspace, the process's allowance.</summary>
    [Fact]
    public void PlanForTheCpuPlansHostMemoryAsTheCpuRunnerAllocates()
    {
        var r = DskProcess.Run(null, "plan", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--context", "512", "--device", "cpu", "--quant", "fp8");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("host memory ", r.Out);
        Assert.Contains("(available on this host: MemAvailable", r.Out);
        Assert.Contains("3 layers x (64 latent + 16 rope) x 4 B (f32) x 1 x 8 pages of 64", r.Out);
        Assert.Contains("none on the CPU", r.Out);
        Assert.Contains("the dsk process", r.Out);
        Assert.DoesNotContain("CUDA context", r.Out);

        var small = DskProcess.Run(null, "plan", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--device", "cpu", "--memory", "64MiB", "--quant", "fp8");
        Assert.True(small.ExitCode == 0, small.Error);
        Assert.Contains("host memory 64.0 MiB (given)", small.Out);
        Assert.Matches(@"fits\?\s*│\s*total <= 64\.0 MiB\s*│\s*no", small.Out); // the process's allowance alone is 256 MiB
        Assert.Matches(@"max context\s*│.*│\s*0\s*│", small.Out);

        var bad = DskProcess.Run(null, "plan", "--device", "tpu");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("tpu", bad.Error);
    }

    [Fact]
    public void PlanReadsACheckpointFolder()
    {
        var r = DskProcess.Run(null, "plan", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--context", "512", "--gpu-memory", "1GiB");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("3 layers x (64 latent + 16 rope) x 2 B (bf16) x 1 x 8 pages of 64", r.Out);
    }

    [Fact]
    public void GenerateWithQuantInt4SaysWhatItQuantised()
    {
        var r = DskProcess.Run(null, "generate", "-m", CheckpointFixtures.HfTiny("llama"), "--quant", "int4", "--prompt-ids", "5,6,7", "--print-ids", "-n", "4");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(4, r.Out.Trim().Split(',').Length);
        Assert.Contains("--quant int4: 22 weight tensors quantised", r.Error);
    }

    /// <summary>An AWQ copy of the embedded model: info names the scheme, plan says the INT4 plan is what loads, generate writes text.</summary>
    [Fact]
    public void InfoPlanAndGenerateReadAnAwqCheckpoint()
    {
        using var temp = new TempFolder();
        string folder = Int4CheckpointWriter.WriteQuantized(CheckpointFixtures.PydocTiny, temp.Path, Int4Packing.Awq, 32);
        var info = DskProcess.Run(null, "info", "-m", folder);
        Assert.True(info.ExitCode == 0, info.Error);
        Assert.Contains("awq int4, group 32, AWQ GEMM packing", info.Out);
        Assert.DoesNotContain("not read", info.Out);
        var plan = DskProcess.Run(null, "plan", "-m", folder, "--device", "cpu", "--quant", "int4");
        Assert.True(plan.ExitCode == 0, plan.Error);
        Assert.True(System.Text.RegularExpressions.Regex.Replace(plan.Out, @"\s+", " ").Contains("the int4 plan (in the checkpoint's groups) is what it loads", StringComparison.Ordinal), plan.Out);
        Assert.Contains("groups of 32 x (2 B scale + 2 B zero point)", plan.Out);
        var r = DskProcess.Run("How do I open a file?\n\n", "chat", "-m", folder, "-n", "8", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.False(string.IsNullOrWhiteSpace(r.Out), "no text");
    }

    /// <summary>The embedded model's files copied into <paramref name="folder"/> (an existing, empty folder).</summary>
    internal static void CopyEmbeddedModel(string folder)
    {
        foreach (var file in Directory.GetFiles(CheckpointFixtures.PydocTiny))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
    }

    /// <summary>DeepSeek-V3's own chat_template (tests/fixtures/tokenizers/deepseek_v3).</summary>
    internal static string DeepSeekV3ChatTemplate => System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(
        Path.Combine(RepositoryRoot.Path, "tests", "fixtures", "tokenizers", "deepseek_v3", "tokenizer_config.json")))!["chat_template"]!.GetValue<string>();

    /// <summary>Writes <paramref name="template"/> as the chat_template of the tokenizer_config.json in <paramref name="folder"/>.</summary>
    internal static void SetChatTemplate(string folder, string template)
    {
        string path = Path.Combine(folder, "tokenizer_config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["chat_template"] = template;
        File.WriteAllText(path, config.ToJsonString());
    }

    /// <summary>
    /// chat renders with the model's own chat_template when its tokenizer_config.json has one (DeepSeek-V3's here, on a copy of
    /// the embedded model); a template the engine cannot parse is named in a warning and the built-in format used instead.
    /// </summary>
    [Fact]
    public void ChatUsesTheModelsChatTemplateWhereItHasOne()
    {
        using var temp = new TempFolder();
        CopyEmbeddedModel(temp.Path);
        SetChatTemplate(temp.Path, DeepSeekV3ChatTemplate);
        var (prompt, _) = FirstSample();
        var r = DskProcess.Run(prompt + "\n\n", "chat", "-m", temp.Path, "-n", "8", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("the model's chat template", r.Error);
        Assert.False(string.IsNullOrWhiteSpace(r.Out), "no reply");

        SetChatTemplate(temp.Path, "{% for m in messages %}{% include 'x' %}{% endfor %}");
        var broken = DskProcess.Run(prompt + "\n\n", "chat", "-m", temp.Path, "-n", "4", "--temperature", "0");
        Assert.True(broken.ExitCode == 0, broken.Error);
        Assert.Contains("dsk chat: warning:", broken.Error);
        Assert.Contains("the statement '{% include %}' is not supported (line 1, column 24", broken.Error);
        Assert.Contains("DeepSeek's chat format", broken.Error);
    }

    /// <summary>
    /// --batch-file "messages": rendered with the model's chat template (DeepSeek-V3's, given to a copy of the embedded model;
    /// with the tools laid out by it) or, without one, with DeepSeek's format built in; the prompt's token count is the
    /// rendered conversation's; "tools" without a template is refused naming the line.
    /// </summary>
    [Fact]
    public void BatchFileMessagesAreRenderedWithTheChatTemplate()
    {
        using var temp = new TempFolder();
        string folder = temp.Subfolder("model");
        CopyEmbeddedModel(folder);
        const string tools = """[{"type": "function", "function": {"name": "lookup", "description": "Docs of a name", "parameters": {"type": "object"}}}]""";
        string requests = temp.File("requests.jsonl");
        File.WriteAllText(requests,
            """{"messages": [{"role": "user", "content": "How do I open a file?"}], "max_new_tokens": 4, "temperature": 0, "id": "plain"}""" + "\n" +
            """{"messages": [{"role": "user", "content": "Docs of open?"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{\"name\": \"open\"}"}}]}, {"role": "tool", "content": "open(file, mode='r')"}], "tools": """ + tools + """, "max_new_tokens": 4, "temperature": 0, "id": "tool"}""" + "\n");

        var tokenizer = HfTokenizer.FromFolder(folder);
        var noTemplate = DskProcess.Run(null, "generate", "-m", folder, "--batch-file", requests);
        Assert.Equal(1, noTemplate.ExitCode);
        Assert.Contains($"{requests}:2: \"tools\" need the model's chat template, and {folder} has none", noTemplate.Error);

        SetChatTemplate(folder, DeepSeekV3ChatTemplate);
        var r = DskProcess.Run(null, "generate", "-m", folder, "--batch-file", requests);
        Assert.True(r.ExitCode == 0, r.Error);
        var lines = r.Out.Trim().Split('\n');
        Assert.Equal(2, lines.Length);
        var template = ChatTemplate.FromFolder(folder, tokenizer)!;
        ChatMessage[] plain = [ChatMessage.User("How do I open a file?")];
        ChatMessage[] withTool =
        [
            ChatMessage.User("Docs of open?"), ChatMessage.AssistantCalls(new ToolCall("lookup", "{\"name\": \"open\"}")), ChatMessage.Tool("open(file, mode='r')"),
        ];
        using (var first = JsonDocument.Parse(lines[0]))
            Assert.Equal(tokenizer.Encode(template.Render(plain, true), addSpecialTokens: false).Length, first.RootElement.GetProperty("prompt_tokens").GetInt32());
        using (var second = JsonDocument.Parse(lines[1]))
        {
            Assert.Equal("tool", second.RootElement.GetProperty("id").GetString());
            Assert.Equal(tokenizer.Encode(template.Render(withTool, true, tools), addSpecialTokens: false).Length, second.RootElement.GetProperty("prompt_tokens").GetInt32());
        }
    }

    [Fact]
    public void GenerateWithFp8ActivationsRunsAnFp8CheckpointAndPlanCountsIt()
    {
        string ids = string.Join(",", Enumerable.Range(2, 40)); // a 40-token prompt: one prefill chunk past the W8A8 threshold
        var r = DskProcess.Run(null, "generate", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--fp8-activations", "--prompt-ids", ids, "--print-ids", "-n", "3");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(3, r.Out.Trim().Split(',').Length);
        Assert.Contains("FP8 (W8A8) prefill for FP8-block weights", r.Error);
        var plain = DskProcess.Run(null, "plan", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--quant", "fp8");
        var fp8 = DskProcess.Run(null, "plan", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--quant", "fp8", "--fp8-activations");
        Assert.True(plain.ExitCode == 0 && fp8.ExitCode == 0, plain.Error + fp8.Error);
        Assert.DoesNotContain("with the FP8 inputs of W8A8", plain.Out);
        Assert.Contains("with the FP8 inputs of W8A8", fp8.Out);
    }

    [Fact]
    public void QuantThatCannotQuantiseAnythingWarnsAndRunsAsStored()
    {
        // deepseek_v3_fp8: FP8 weights stay FP8, and lm_head's 192 in features are not a multiple of INT4's group
        var r = DskProcess.Run(null, "generate", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--quant", "int4", "--prompt-ids", "5,6,7", "--print-ids", "-n", "2");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("dsk generate: warning: --quant int4: no weight tensor could be quantised; 117 already FP8 in the checkpoint, kept as stored; "
            + "1 kept dense (in features not a multiple of 128, which INT4 groups need: lm_head.weight [512, 192]): the model runs as stored.", r.Error);
    }

    [Fact]
    public void ChatTakesQuant()
    {
        var r = DskProcess.Run("How do I open a file?\n\n", "chat", "-n", "4", "--quant", "fp8");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("--quant fp8: 101 weight tensors quantised", r.Error);
    }

    [Fact]
    public void PlanWithQuantShowsThatPlanAlone()
    {
        string config = Path.Combine(Directory.CreateTempSubdirectory("dsk-plan").FullName, "config.json");
        File.WriteAllText(config, HubConfigs.R1DistillLlama8B);
        var r = DskProcess.Run(null, "plan", "-m", config, "--quant", "int4", "--gpu-memory", "24GB");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("int4: 58,630,144 groups of 128 x (2 B scale + 2 B zero point)", r.Out);
        Assert.DoesNotContain("bf16 (none)", r.Out);
        Assert.DoesNotContain("fp8", r.Out);
    }

    [Fact]
    public void ChatAnswersInTheChatFormatUntilAnEmptyLine()
    {
        var r = DskProcess.Run("How do I open a file?\n\n", "chat", "-n", "8");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.StartsWith("> ", r.Out);
        Assert.True(r.Out.Length > 4, "the model answered nothing");
        Assert.Contains("chatting with DeepSeekV3", r.Error);
    }

    [Theory]
    [InlineData("generate -m /nonexistent/model", "dsk generate: error: --model /nonexistent/model: no such folder.")]
    [InlineData("generate --prompt-ids 1,x", "dsk generate: error: --prompt-ids: 'x' (entry 2) is not a non-negative integer.")]
    [InlineData("plan --gpu-memory lots", "dsk plan: error: --gpu-memory 'lots' is not a size")]
    [InlineData("info -m /nonexistent/config.json", "dsk info: error: --model /nonexistent/config.json: no such file or folder (give a model folder or a config.json).")]
    public void BadInputGetsOneClearLineAndExitCode1(string args, string message)
    {
        var r = DskProcess.Run(null, args.Split(' '));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Error);
        Assert.DoesNotContain("   at ", r.Error); // no stack trace
    }

    /// <summary>
    /// Options out of range are refused before anything happens (no model loaded, no prompt echoed), in one
    /// line that names the flag and the value as typed, not .NET's property names and "Actual value was".
    /// </summary>
    [Theory]
    [InlineData("generate --temperature -1", "dsk generate: error: --temperature -1: temperature must be finite and >= 0 (0 = greedy).")]
    [InlineData("generate -t NaN", "dsk generate: error: --temperature NaN: temperature must be finite and >= 0 (0 = greedy).")]
    [InlineData("generate --top-p 1.5", "dsk generate: error: --top-p 1.5: top-p must be in (0, 1] (1 = off).")]
    [InlineData("generate --top-k -3", "dsk generate: error: --top-k -3: top-k must be >= 0 (0 = off).")]
    [InlineData("generate --repetition-penalty 0", "dsk generate: error: --repetition-penalty 0: repetition penalty must be finite and > 0 (1 = off).")]
    [InlineData("generate -n -5", "dsk generate: error: --max-new-tokens -5: max-new-tokens must be >= 0.")]
    [InlineData("generate --context 0", "dsk generate: error: --context 0 is outside 1..1024 (the model's max_position_embeddings).")]
    [InlineData("generate --context 5000", "dsk generate: error: --context 5000 is outside 1..1024 (the model's max_position_embeddings).")]
    [InlineData("chat --top-k -1", "dsk chat: error: --top-k -1: top-k must be >= 0 (0 = off).")]
    [InlineData("chat --context 0", "dsk chat: error: --context 0 is outside 1..1024 (the model's max_position_embeddings).")]
    [InlineData("plan --batch 0", "dsk plan: error: --batch 0: must be at least 1.")]
    [InlineData("plan --context 2048", "dsk plan: error: --context 2048 is outside 1..1024 (the model's max_position_embeddings).")]
    public void AnOptionOutOfRangeIsRefusedBeforeAnythingRuns(string args, string message)
    {
        var r = DskProcess.Run("hello\n", args.Split(' '));
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(message, r.Error.Trim());
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void PlanWithNoOptionsPlansTheEmbeddedModelAtTheLongestContextItAllows()
    {
        // The default context, 8192, is more than the embedded model's max_position_embeddings (1024).
        var r = DskProcess.Run(null, "plan");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("context 1,024 x batch 1", r.Out);
        if (!r.Out.Contains("from NVML", StringComparison.Ordinal)) // no GPU here: the plan says how to plan for this host instead
            Assert.Contains("--device cpu plans for this host", r.Out.Replace("\n", ""));
    }

    [Fact]
    public void ALineThatIsNotAJsonStringIsNamed()
    {
        var r = DskProcess.Run("\"fine\"\n{\"x\"\n", "tokenize", "--json-lines");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("dsk tokenize: error: --json-lines: line 2 is not a JSON string such as \"two\\nlines\" (not readable from byte 2).", r.Error.Trim());
        Assert.Single(r.Out.Trim().Split('\n')); // line 1's ids were printed before
    }

    [Fact]
    public void AnEmptyStopStringIsRefused()
    {
        var r = DskProcess.Run(null, "generate", "--stop", "");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("dsk generate: error: --stop \"\": stop string 1 is empty: it would stop before the first token.", r.Error.Trim());
        Assert.Equal("", r.Out);
    }

    /// <summary>Words the parser cannot read: one line each in plain words (no .NET type names, no help dump) and a pointer to --help.</summary>
    [Theory]
    [InlineData("generate --seed abc", "dsk generate: error: Cannot parse argument 'abc' for option '--seed' as an integer.", "(see 'dsk generate --help')")]
    [InlineData("generate --temperature warm", "dsk generate: error: Cannot parse argument 'warm' for option '--temperature' as a number.", "(see 'dsk generate --help')")]
    [InlineData("generate --backend cuda", "dsk generate: error: Argument 'cuda' not recognized. Must be one of: 'auto' 'cpu' 'reference' 'ilgpu' 'native'", "(see 'dsk generate --help')")]
    [InlineData("plan --batch many", "dsk plan: error: Cannot parse argument 'many' for option '--batch' as an integer.", "(see 'dsk plan --help')")]
    [InlineData("generate --quant int3", "dsk generate: error: Argument 'int3' not recognized. Must be one of: 'none' 'int4' 'fp8'", "(see 'dsk generate --help')")]
    [InlineData("chat --quant INT4", "dsk chat: error: Argument 'INT4' not recognized. Must be one of: 'none' 'int4' 'fp8'", "(see 'dsk chat --help')")]
    [InlineData("plan --quant bf16", "dsk plan: error: Argument 'bf16' not recognized. Must be one of: 'none' 'int4' 'fp8'", "(see 'dsk plan --help')")]
    public void WordsTheParserCannotReadGetAPlainLineAndAPointerToHelp(string args, string message, string pointer)
    {
        var r = DskProcess.Run(null, args.Split(' '));
        Assert.Equal(1, r.ExitCode);
        Assert.Equal([message, pointer], r.Error.Trim().Split('\n').Select(l => l.TrimEnd('\r')));
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void APromptLongerThanTheContextIsRefused()
    {
        var r = DskProcess.Run(null, "generate", "--prompt-ids", string.Join(",", Enumerable.Range(2, 40)), "--context", "16");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("the prompt has 40 tokens and --context 16 leaves no room to generate", r.Error);
        Assert.Equal("", r.Out);
    }
}
