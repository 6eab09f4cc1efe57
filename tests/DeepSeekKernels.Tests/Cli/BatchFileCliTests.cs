using System.Text.Json;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>
/// `dsk generate --batch-file`: many requests on one continuous-batching scheduler, one JSON line each in input order,
/// each the same ids a single `dsk generate` gives for that request; a bad file is refused before the model loads.
/// </summary>
public class BatchFileCliTests
{
    [Fact]
    public void EachRequestGetsTheIdsASingleRunGivesInInputOrder()
    {
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "requests.jsonl");
        File.WriteAllLines(file,
        [
            """{"prompt": "def add(a, b):", "max_new_tokens": 12, "id": "add"}""",
            "",
            """{"prompt_ids": [1, 2, 3], "max_new_tokens": 5, "temperature": 0.8, "seed": 7}""",
            """{"prompt": "The list type", "max_new_tokens": 20, "stop": ["."]}""",
        ]);
        var batch = DskProcess.Run((string?)null, "generate", "--batch-file", file, "-t", "0", "--max-batch", "2");
        Assert.True(batch.ExitCode == 0, batch.Error);
        var lines = batch.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        var results = lines.Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal("add", results[0].GetProperty("id").GetString());
        Assert.Equal(3, results[1].GetProperty("id").GetInt32()); // the line number
        Assert.Equal(4, results[2].GetProperty("id").GetInt32());

        int[] Ids(JsonElement r) => [.. r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())];
        int[] Single(params string[] args)
        {
            var r = DskProcess.Run((string?)null, ["generate", .. args, "--print-ids"]);
            Assert.True(r.ExitCode == 0, r.Error);
            return [.. r.Out.Trim().Split(',').Select(int.Parse)];
        }
        Assert.Equal(Single("def add(a, b):", "-n", "12", "-t", "0"), Ids(results[0]));
        Assert.Equal(Single("--prompt-ids", "1,2,3", "-n", "5", "-t", "0.8", "--seed", "7"), Ids(results[1]));
        var stopped = DskProcess.Run((string?)null, "generate", "The list type", "-n", "20", "-t", "0", "--stop", ".");
        Assert.Equal("The list type" + results[2].GetProperty("text").GetString(), stopped.Out.TrimEnd('\n'));
        Assert.Equal("stop", results[2].GetProperty("finish_reason").GetString());
        Assert.Equal("length", results[0].GetProperty("finish_reason").GetString());
        Assert.Contains("3 requests, up to 2 at once", batch.Error);
    }

    /// <summary>
    /// A batch whose KV cache cannot fit is refused before the weights load, with the cache's part of the bill: 64
    /// sequences at a context of 2^24 positions of the llama fixture's f32 rows are 825 GB of pages.
    /// </summary>
    [Fact]
    public void ABatchWhoseKvCacheCannotFitIsRefusedBeforeTheModelLoads()
    {
        const long kvBytes = 64L * (1 << 24) * 3 * 2 * 2 * 16 * 4; // sequences x positions x layers x (k, v) x kv heads x head_dim x f32
        if (DeepSeekKernels.Runtime.HostMemory.AvailableBytes() is long available && available > kvBytes)
            Assert.Skip($"this host has {available:N0} bytes available: the cache would fit");
        using var model = ModelCopies.Of(CheckpointFixtures.HfTiny("llama"), editConfig: c => c["max_position_embeddings"] = 1 << 24);
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "requests.jsonl");
        File.WriteAllLines(file, Enumerable.Repeat("""{"prompt_ids": [1, 2, 3], "max_new_tokens": 2}""", 64));
        var r = DskProcess.Run((string?)null, "generate", "-m", model.Path, "--batch-file", file, "--max-batch", "64",
            "--context", (1 << 24).ToString(), "--dtype", "float32");
        DskProcess.AssertRefused(r, "dsk generate", "+ KV cache ");
        Assert.Contains(" for 64 sequences of 16,777,216 positions in f32) but ", r.Error);
        Assert.Contains("nothing was loaded", r.Error);
        Assert.DoesNotContain("loaded llama", r.Error);

        // 256 such sequences are more slots than a 32-bit index addresses: a refusal of the request, not an internal error
        File.WriteAllLines(file, Enumerable.Repeat("""{"prompt_ids": [1, 2, 3], "max_new_tokens": 2}""", 256));
        var huge = DskProcess.Run((string?)null, "generate", "-m", model.Path, "--batch-file", file, "--max-batch", "256",
            "--context", (1 << 24).ToString(), "--dtype", "float32");
        DskProcess.AssertRefused(huge, "dsk generate", "is more than 2,147,483,647 slots, the most a 32-bit index addresses; ask for fewer sequences at once or a shorter context.");
    }

    [Theory]
    [InlineData("""{"prompt": "x", "temprature": 0}""", "requests.jsonl:1: ", "temperature")]
    [InlineData("""{"prompt_ids": [1, 99999]}""", "requests.jsonl:1: ", "99999")]
    [InlineData("""{"prompt": "a"}\n{"prompt": 3}""", "requests.jsonl:2: ", "\"prompt\"")]
    [InlineData("not json", "requests.jsonl:1: ", "JSON")]
    public void ABadRequestFileIsRefusedWithItsLineBeforeTheModelLoads(string content, string where, string fragment)
    {
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "requests.jsonl");
        File.WriteAllText(file, content.Replace("\\n", "\n"));
        var r = DskProcess.Run((string?)null, "generate", "--batch-file", file);
        DskProcess.AssertRefused(r, "dsk generate", fragment);
        Assert.Contains(where, r.Error);
        Assert.DoesNotContain("loaded", r.Error);
    }

    [Fact]
    public void ABatchFileAndAPromptTogetherAreRefused()
    {
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "requests.jsonl");
        File.WriteAllText(file, """{"prompt": "a"}""");
        DskProcess.AssertRefused(DskProcess.Run((string?)null, "generate", "hello", "--batch-file", file), "dsk generate",
            "--batch-file holds the prompts");
        DskProcess.AssertRefused(DskProcess.Run((string?)null, "generate", "--batch-file", file, "--max-batch", "0"), "dsk generate",
            "--max-batch must be at least 1");
    }
}
