using System.Text.Json;
using DeepSeekKernels.Tests.Checkpoints;
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
        Assert.Contains("32 layers x 2 (k, v) x 8 kv heads x 128 x 2 B x 32,768 tokens x 1", r.Out);
    }

    [Fact]
    public void PlanReadsACheckpointFolder()
    {
        var r = DskProcess.Run(null, "plan", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "--context", "512", "--gpu-memory", "1GiB");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("3 layers x (64 latent + 16 rope) x 2 B x 512 tokens x 1", r.Out);
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
    [InlineData("generate -m /nonexistent/model", "dsk generate: error: The model folder '/nonexistent/model' does not exist.")]
    [InlineData("generate --prompt-ids 1,x", "dsk generate: error: --prompt-ids: 'x' (entry 2) is not a non-negative integer.")]
    [InlineData("plan --gpu-memory lots", "dsk plan: error: --gpu-memory 'lots' is not a size")]
    [InlineData("generate --temperature -1", "dsk generate: error: temperature must be finite and >= 0")]
    [InlineData("info -m /nonexistent/config.json", "dsk info: error: '/nonexistent/config.json' is neither a model folder nor a config.json file.")]
    public void BadInputGetsOneClearLineAndExitCode1(string args, string message)
    {
        var r = DskProcess.Run(null, args.Split(' '));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Error);
        Assert.DoesNotContain("   at ", r.Error); // no stack trace
    }

    [Fact]
    public void APromptLongerThanTheContextIsRefused()
    {
        var r = DskProcess.Run(null, "generate", "--prompt-ids", string.Join(",", Enumerable.Range(2, 40)), "--context", "16");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("The prompt has 40 tokens; the context holds 16", r.Error);
    }
}
