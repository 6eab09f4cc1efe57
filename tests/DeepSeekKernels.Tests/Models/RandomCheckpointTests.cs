using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Cli;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// <see cref="RandomCheckpoint"/> (`dsk random-checkpoint`): for every architecture it writes exactly the tensors the loader
/// reads (CheckpointConformance finds nothing missing and nothing unread), in shards with an index when asked, with the
/// documented values, the same bytes for the same seed; the model loads and runs; bad requests write nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public sealed class RandomCheckpointTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("dsk-random-checkpoint-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>The fixtures' configs, FP8's aside (its quantization_config is refused: <see cref="AQuantizedConfigIsRefusedAndNothingIsWritten"/>).</summary>
    public static TheoryData<string> Configs() => [.. CheckpointFixtures.Names.Append("dsv3-pydoc-tiny").Where(name => name != "deepseek_v3_fp8")];

    [Theory, MemberData(nameof(Configs))]
    public void EveryTensorTheLoaderReadsAndNoOtherInShardsThatLoadAndRun(string name)
    {
        string folder = Path.Combine(_root, name);
        var report = RandomCheckpoint.Write(CheckpointFixtures.Folder(name), folder, seed: 7, shardBytes: 1 << 20);

        using (var checkpoint = Checkpoint.Open(folder))
        {
            var conformance = CheckpointConformance.Check(checkpoint);
            Assert.Equal(report.Tensors, conformance.TensorsRead);
            Assert.Empty(conformance.UnreadTensors);
            Assert.Equal(report.Tensors, checkpoint.Tensors.Count);
            Assert.Equal(report.Parameters * 2, report.Bytes);
            Assert.All(checkpoint.Tensors, t => Assert.Equal(SafetensorsDType.BF16, t.DType));
        }
        bool sharded = report.Files.Count > 1;
        Assert.Equal(sharded, File.Exists(Path.Combine(folder, Checkpoint.IndexFileName)));
        Assert.Equal(report.Bytes > 1 << 20, sharded); // the fixtures hold 0.5 to 9.5 MB: most are split into 1 MiB shards
        Assert.Empty(Directory.GetFiles(folder, "*.part"));

        using var model = ModelLoader.Load(folder, Ops.Create(TestDevices.Cpu, Backend.Reference));
        using var cache = model.CreateCache(8);
        var logits = new float[model.Shape.Vocab];
        model.Forward([1, 2, 3, 4, 5, 6, 7, 8], cache, logits);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        Assert.True(logits.Max() > logits.Min(), "random weights gave constant logits");
    }

    [Fact]
    public void ValuesAreAsDocumentedAndTheSameSeedWritesTheSameBytes()
    {
        string config = CheckpointFixtures.Folder("deepseek_v3");
        string a = Path.Combine(_root, "a"), b = Path.Combine(_root, "b"), c = Path.Combine(_root, "c");
        RandomCheckpoint.Write(config, a, seed: 3);
        RandomCheckpoint.Write(config, b, seed: 3);
        RandomCheckpoint.Write(config, c, seed: 4);
        byte[] bytesA = File.ReadAllBytes(Path.Combine(a, Checkpoint.SingleFileName));
        Assert.Equal(bytesA, File.ReadAllBytes(Path.Combine(b, Checkpoint.SingleFileName)));
        Assert.NotEqual(bytesA, File.ReadAllBytes(Path.Combine(c, Checkpoint.SingleFileName)));
        Assert.Equal(File.ReadAllBytes(Path.Combine(config, "config.json")), File.ReadAllBytes(Path.Combine(a, "config.json")));

        using var file = SafetensorsFile.Open(Path.Combine(a, Checkpoint.SingleFileName));
        // Matrices: uniform on [-0.0346, 0.0346), standard deviation 0.02, mean 0 (the embedding table: tens of thousands of values).
        float[] embed = file.ReadAsFloat32("model.embed_tokens.weight");
        double mean = embed.Average(v => (double)v), std = Math.Sqrt(embed.Average(v => ((double)v - mean) * ((double)v - mean)));
        Assert.InRange(embed.Length, 10_000, int.MaxValue);
        Assert.InRange(mean, -0.001, 0.001);
        Assert.InRange(std, 0.0196, 0.0204);
        Assert.InRange(embed.Max(), 0.033f, 0.0347f);
        Assert.InRange(embed.Min(), -0.0347f, -0.033f);
        // The tensors of one model differ from each other (each has its own stream).
        Assert.NotEqual(file.ReadAsFloat32("lm_head.weight").Take(64), embed.Take(64));
        Assert.All(file.ReadAsFloat32("model.norm.weight"), v => Assert.Equal(1f, v));
        Assert.All(file.ReadAsFloat32("model.layers.1.mlp.gate.e_score_correction_bias"), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void AQuantizedConfigIsRefusedAndNothingIsWritten()
    {
        string folder = Path.Combine(_root, "fp8");
        var e = Assert.Throws<CheckpointException>(() => RandomCheckpoint.Write(CheckpointFixtures.Folder("deepseek_v3_fp8"), folder));
        Assert.Contains("quantization_config", e.Message);
        Assert.Contains("--quant", e.Message);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void AModelLargerThanTheDiskIsRefusedFromItsSizesBeforeAnythingIsListedOrWritten()
    {
        // DeepSeek-V3's tiny fixture claiming 2^30 routed experts: tens of terabytes, refused at once (the layout is never
        // listed: a billion expert names would exhaust memory before the disk check).
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(CheckpointFixtures.Folder("deepseek_v3"), "config.json")))!;
        config["n_routed_experts"] = 1 << 30;
        string configPath = Path.Combine(_root, "huge.json");
        File.WriteAllText(configPath, config.ToJsonString());
        string folder = Path.Combine(_root, "huge");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<CheckpointException>(() => RandomCheckpoint.Write(configPath, folder));
        Assert.Contains("do not fit", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void AFolderThatIsNotEmptyIsRefusedAndKeepsWhatItHeld()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_root, "busy")).FullName;
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "mine");
        var e = Assert.Throws<CheckpointException>(() => RandomCheckpoint.Write(CheckpointFixtures.Folder("llama"), folder));
        Assert.Contains("not empty", e.Message);
        Assert.Equal(["notes.txt"], Directory.GetFiles(folder).Select(Path.GetFileName));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(folder, "notes.txt")));
    }

    [Fact]
    public void TheCommandWritesACheckpointThatDskBenchRuns()
    {
        string folder = Path.Combine(_root, "cli");
        var write = DskProcess.Run(null, "random-checkpoint", CheckpointFixtures.Folder("qwen2"), folder, "--seed", "5");
        Assert.True(write.ExitCode == 0, write.Error);
        Assert.Contains("tensors", write.Out);
        var bench = DskProcess.Run(null, "bench", "-m", folder, "-p", "8", "-n", "4", "-r", "1", "--backend", "reference");
        Assert.True(bench.ExitCode == 0, bench.Error);
        Assert.Contains("tg4:", bench.Out);

        var again = DskProcess.Run(null, "random-checkpoint", CheckpointFixtures.Folder("qwen2"), folder);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("not empty", again.Error);
        var badShard = DskProcess.Run(null, "random-checkpoint", CheckpointFixtures.Folder("qwen2"), Path.Combine(_root, "x"), "--shard-gb", "0");
        Assert.NotEqual(0, badShard.ExitCode);
        Assert.Contains("--shard-gb 0", badShard.Error);
        Assert.False(Directory.Exists(Path.Combine(_root, "x")));
    }
}
