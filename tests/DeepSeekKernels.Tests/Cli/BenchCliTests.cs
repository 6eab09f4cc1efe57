using System.Globalization;
using System.Text.Json;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>`dsk bench` (llama-bench's counterpart) on a tiny fixture: its lines, its JSON, and its refusals.</summary>
public class BenchCliTests
{
    static readonly string Llama = CheckpointFixtures.HfTiny("llama");

    static double Rate(string line, string test)
    {
        // "pp8: 1234.56 tokens/s (median of 1)" or "rep 1: tg4 1234.56 tokens/s"
        int at = line.IndexOf(test, StringComparison.Ordinal);
        Assert.True(at >= 0, $"no {test} in '{line}'");
        string rest = line[(at + test.Length)..].TrimStart(':', ' ');
        return double.Parse(rest[..rest.IndexOf(' ')], CultureInfo.InvariantCulture);
    }

    [Fact]
    public void BenchPrintsEachRepetitionTheMediansThePeakRssAndAJsonLine()
    {
        var r = DskProcess.Run(null, "bench", "-m", Llama, "--prompt-tokens", "8", "--gen-tokens", "4", "--repetitions", "1", "--json",
            "--backend", "reference");
        Assert.True(r.ExitCode == 0, r.Error);
        var lines = r.Out.TrimEnd('\n').Split('\n');
        Assert.Equal(6, lines.Length);
        Assert.StartsWith("rep 1: pp8 ", lines[0]);
        Assert.StartsWith("rep 1: tg4 ", lines[1]);
        Assert.StartsWith("pp8: ", lines[2]);
        Assert.StartsWith("tg4: ", lines[3]);
        foreach (var (line, test) in new[] { (lines[0], "pp8"), (lines[1], "tg4"), (lines[2], "pp8"), (lines[3], "tg4") })
        {
            double rate = Rate(line, test);
            Assert.True(double.IsFinite(rate) && rate > 0, $"rate {rate} in '{line}'");
        }
        Assert.Equal(Rate(lines[0], "pp8"), Rate(lines[2], "pp8"), 0.01); // one repetition: the median is it
        Assert.StartsWith("peak RSS: ", lines[4]);
        Assert.Contains(" MB; weights: ", lines[4]);

        using var json = JsonDocument.Parse(lines[5]);
        var root = json.RootElement;
        Assert.Equal(8, root.GetProperty("n_prompt").GetInt32());
        Assert.Equal(4, root.GetProperty("n_gen").GetInt32());
        Assert.Equal(1, root.GetProperty("pp_tokens_per_s").GetArrayLength());
        Assert.Equal(1, root.GetProperty("tg_tokens_per_s").GetArrayLength());
        Assert.True(root.GetProperty("pp_median").GetDouble() > 0);
        Assert.True(root.GetProperty("tg_median").GetDouble() > 0);
        long weights = root.GetProperty("weight_bytes").GetInt64();
        long rss = root.GetProperty("peak_rss_bytes").GetInt64();
        Assert.InRange(weights, 100_000, 100_000_000); // the fixture's ~1 MB of weights
        Assert.True(rss > weights, $"peak RSS {rss} B below the weights' {weights} B");
        Assert.Equal("reference", root.GetProperty("backend").GetString());
        Assert.Equal("none", root.GetProperty("quant").GetString());
    }

    [Fact]
    public void BenchRunsOnlyTheTestsAsked()
    {
        var r = DskProcess.Run(null, "bench", "-m", Llama, "--prompt-tokens", "0", "--gen-tokens", "3", "--repetitions", "2", "--no-warmup");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.DoesNotContain("pp", r.Out);
        Assert.Contains("rep 2: tg3 ", r.Out);
        Assert.Contains("tg3: ", r.Out);
        Assert.Contains("(median of 2)", r.Out);
    }

    [Fact]
    public void BenchWithInt4RunsTheQuantisedModel()
    {
        var r = DskProcess.Run(null, "bench", "-m", Llama, "-p", "8", "-n", "4", "-r", "1", "--quant", "int4", "--json");
        Assert.True(r.ExitCode == 0, r.Error);
        using var json = JsonDocument.Parse(r.Out.TrimEnd('\n').Split('\n')[^1]);
        Assert.Equal("int4", json.RootElement.GetProperty("quant").GetString());
        // the cpu backend's default arithmetic (auto picks a GPU backend where there is one: no int4_dot there)
        Assert.Equal(json.RootElement.GetProperty("backend").GetString() == "cpu" ? "f32" : null, json.RootElement.GetProperty("int4_dot").GetString());
        Assert.False(json.RootElement.GetProperty("fp8_activations").GetBoolean());
        Assert.False(json.RootElement.GetProperty("cuda_graphs").GetBoolean());
    }

    [Fact]
    public void BenchWithInt8DotSaysSo()
    {
        var r = DskProcess.Run(null, "bench", "-m", Llama, "-p", "0", "-n", "4", "-r", "1", "--quant", "int4", "--int4-dot", "int8",
            "--backend", "cpu", "--json");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("int8 activations for INT4 weights", r.Error);
        using var json = JsonDocument.Parse(r.Out.TrimEnd('\n').Split('\n')[^1]);
        Assert.Equal("int8", json.RootElement.GetProperty("int4_dot").GetString());
    }

    [Fact]
    public void BenchWithFp8ActivationsRecordsIt()
    {
        var r = DskProcess.Run(null, "bench", "-m", CheckpointFixtures.HfTiny("deepseek_v3_fp8"), "-p", "40", "-n", "2", "-r", "1", "--no-warmup",
            "--fp8-activations", "--backend", "cpu", "--json");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("FP8 (W8A8) prefill for FP8-block weights", r.Error);
        using var json = JsonDocument.Parse(r.Out.TrimEnd('\n').Split('\n')[^1]);
        Assert.True(json.RootElement.GetProperty("fp8_activations").GetBoolean());
    }

    [Fact]
    public void BenchWithProfileSplitsEachTestsTimeByOp()
    {
        var r = DskProcess.Run(null, "bench", "-m", Llama, "-p", "8", "-n", "4", "-r", "2", "--backend", "cpu", "--profile", "--json");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("profile pp8 (16 tokens timed): ", r.Out);
        Assert.Contains("profile tg4 (8 tokens timed): ", r.Out);
        Assert.Contains("outside the ops", r.Out);
        Assert.Contains("Linear(x=f32, w=", r.Out);
        using var json = JsonDocument.Parse(r.Out.TrimEnd('\n').Split('\n')[^1]);
        var tg = json.RootElement.GetProperty("profile").GetProperty("tg");
        Assert.Equal(8, tg.GetProperty("tokens").GetInt64());
        double wall = tg.GetProperty("wall_s").GetDouble(), inOps = tg.GetProperty("ops_s").GetDouble();
        Assert.True(inOps > 0 && inOps <= wall, $"ops {inOps} s of a wall {wall} s");
        var ops = tg.GetProperty("ops").EnumerateArray().ToArray();
        Assert.Equal(inOps, ops.Sum(o => o.GetProperty("seconds").GetDouble()), 1e-9);
        // one embedding lookup of the token per decode step (and one of the last row for the logits)
        var embeddings = ops.Where(o => o.GetProperty("op").GetString()!.StartsWith("Embedding(", StringComparison.Ordinal)).ToArray();
        Assert.Equal(16, embeddings.Sum(o => o.GetProperty("calls").GetInt64()));
    }

    public static TheoryData<string[], string> BadArguments() => new()
    {
        { ["--prompt-tokens", "-1"], "--prompt-tokens" },
        { ["--gen-tokens", "-5"], "--gen-tokens" },
        { ["--repetitions", "0"], "--repetitions" },
        { ["--prompt-tokens", "0", "--gen-tokens", "0"], "nothing to measure" },
        { ["--prompt-tokens", "99999"], "--prompt-tokens 99999 exceeds the model's max_position_embeddings" },
        { ["--gen-tokens", "99999", "--prompt-tokens", "8"], "--gen-tokens 99999 exceeds" },
        { ["--repetitions", "abc"], "--repetitions" },
        { ["--prompt-tokens"], "--prompt-tokens" },
        { ["--backend", "nosuch"], "'nosuch' not recognized" }, // the engine options' own refusal, as in generate
        { ["--quant", "int3"], "'int3' not recognized" },
        { ["--int4-dot", "int4"], "--int4-dot int4: give f32 or int8" },
        { ["--int4-dot", "int8", "--backend", "reference"], "--int4-dot applies to the cpu backend; the backend here is reference" },
    };

    [Theory, MemberData(nameof(BadArguments))]
    public void BadArgumentsAreRefusedNamingTheFlag(string[] args, string expected)
    {
        var r = DskProcess.Run(null, ["bench", "-m", Llama, .. args]);
        DskProcess.AssertRefused(r, "dsk bench", expected);
    }

    [Fact]
    public void AMissingModelFolderIsRefused()
    {
        var r = DskProcess.Run(null, "bench", "-m", "/nonexistent/model", "-p", "8", "-n", "4", "-r", "1");
        DskProcess.AssertRefused(r, "dsk bench", "/nonexistent/model");
    }
}
