using System.Text.Json;
using DeepSeekKernels.Checkpoints;
using TopK = DeepSeekKernels.MoeTopKMethod;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>Model folders: the fixtures against their configs, FP8 scales, and folder-level faults.</summary>
public class CheckpointTests
{
    public static TheoryData<string> AllModelFolders() => CheckpointFixtures.AllModelFolders();

    [Theory, MemberData(nameof(AllModelFolders))]
    public void EveryFixtureHoldsExactlyTheTensorsItsConfigImplies(string name)
    {
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.Folder(name));
        var config = checkpoint.Config;
        var expected = ConfigImpliedShapes.For(config);

        foreach (var (tensor, shape) in expected)
            checkpoint.ExpectShape(tensor, shape);

        // nothing unexpected: only FP8 scales of expected weights, and MTP layers the runner ignores
        foreach (var tensor in checkpoint.Tensors)
        {
            if (expected.ContainsKey(tensor.Name))
                continue;
            bool fp8Scale = tensor.Name.EndsWith(".weight_scale_inv", StringComparison.Ordinal)
                && expected.ContainsKey(tensor.Name[..^"_scale_inv".Length]);
            bool mtp = config.NumNextnPredictLayers > 0 && tensor.Name.StartsWith($"model.layers.{config.NumHiddenLayers}.", StringComparison.Ordinal);
            Assert.True(fp8Scale || mtp, $"{name}: unexpected tensor {tensor}");
        }

        var norm = checkpoint.ReadAsFloat32("model.norm.weight");
        Assert.Equal(config.HiddenSize, norm.Length);
        Assert.All(norm, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(checkpoint.Tensors.Sum(t => t.ByteLength), checkpoint.TotalBytes);
        Assert.Equal(checkpoint.TotalBytes, checkpoint.BytesByDType.Values.Sum());
    }

    [Theory]
    [InlineData("deepseek_v3", ModelArchitecture.DeepSeekV3, 16, 96)]
    [InlineData("deepseek_v3_fp8", ModelArchitecture.DeepSeekV3, 16, 96)]
    [InlineData("deepseek_v2_lite", ModelArchitecture.DeepSeekV2, 8, null)]
    public void DeepSeekFixturesParseAsTheirReadmeSays(string name, ModelArchitecture architecture, int experts, int? qLoraRank)
    {
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.HfTiny(name));
        var c = checkpoint.Config;
        Assert.Equal(architecture, c.Architecture);
        Assert.True(c.IsDeepSeek);
        Assert.Equal(experts, c.NRoutedExperts);
        Assert.Equal(qLoraRank, c.QLoraRank);
        Assert.False(c.IsMoeLayer(0));
        Assert.True(c.IsMoeLayer(1));
        Assert.True(c.IsMoeLayer(2));
        Assert.True(c.RopeInterleave);
        if (architecture == ModelArchitecture.DeepSeekV3)
        {
            Assert.Equal(TopK.NoAuxTc, c.TopkMethod);
            Assert.Equal(MoeScoring.Sigmoid, c.ScoringFunc);
            Assert.Equal((4, 2), (c.NGroup, c.TopkGroup));
            Assert.Equal(RopeKind.Yarn, c.RopeScaling.Type);
            Assert.Equal(256, c.RopeScaling.OriginalMaxPositionEmbeddings);
            Assert.Equal(1, c.NumNextnPredictLayers);
        }
        else
        {
            Assert.Equal(TopK.Greedy, c.TopkMethod);
            Assert.Equal(MoeScoring.Softmax, c.ScoringFunc);
            Assert.False(c.NormTopkProb);
            Assert.Equal(2, c.NSharedExperts);
            Assert.Equal(RopeScalingConfig.None, c.RopeScaling);
        }
    }

    [Fact]
    public void Fp8WeightsHaveFloat32BlockScales()
    {
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.HfTiny("deepseek_v3_fp8"));
        var q = checkpoint.Config.Quantization;
        Assert.NotNull(q);
        Assert.Equal(new QuantizationConfig { QuantMethod = "fp8", Format = "e4m3", WeightBlockRows = 128, WeightBlockCols = 128, ActivationScheme = "dynamic" }, q);

        var down = checkpoint.GetTensor("model.layers.0.mlp.down_proj.weight");
        Assert.Equal(SafetensorsDType.F8_E4M3, down.DType);
        Assert.Equal([192L, 384], down.Shape);
        var downScale = checkpoint.ExpectShape("model.layers.0.mlp.down_proj.weight_scale_inv", 2, 3); // ceil(192/128), ceil(384/128)
        Assert.Equal(SafetensorsDType.F32, downScale.DType);

        int fp8 = 0;
        foreach (var w in checkpoint.Tensors.Where(t => t.DType == SafetensorsDType.F8_E4M3))
        {
            fp8++;
            Assert.Equal(2, w.Rank);
            var scale = checkpoint.ExpectShape(w.Name + "_scale_inv", q.ScaleShape(w.Shape[0], w.Shape[1]));
            Assert.Equal(SafetensorsDType.F32, scale.DType);
            Assert.All(checkpoint.ReadAsFloat32(scale.Name), s => Assert.True(s > 0 && float.IsFinite(s), $"{scale.Name}: {s}"));
        }
        Assert.True(fp8 > 10);

        // what stays bf16 / f32
        Assert.Equal(SafetensorsDType.BF16, checkpoint.GetTensor("model.embed_tokens.weight").DType);
        Assert.Equal(SafetensorsDType.BF16, checkpoint.GetTensor("lm_head.weight").DType);
        Assert.Equal(SafetensorsDType.BF16, checkpoint.GetTensor("model.layers.1.mlp.gate.weight").DType);
        Assert.Equal(SafetensorsDType.F32, checkpoint.GetTensor("model.layers.1.mlp.gate.e_score_correction_bias").DType);
        Assert.True(checkpoint.BytesByDType[SafetensorsDType.F8_E4M3] > 0);
        Assert.True(checkpoint.BytesByDType[SafetensorsDType.F32] > 0);
        Assert.True(checkpoint.BytesByDType[SafetensorsDType.BF16] > 0);

        // FP8 values read as float32 exactly as the e4m3fn table says
        var values = new float[down.ElementCount];
        checkpoint.ReadAsFloat32(down, values);
        var raw = checkpoint.GetBytes(down);
        for (int i = 0; i < values.Length; i++)
            Assert.Equal(Float8E4M3.FromBits(raw[i]).ToSingle(), values[i]);
        Assert.Contains(values, v => v != 0);
    }

    [Fact]
    public void ExpectShapeNamesTheTensorAndBothShapes()
    {
        string folder = CheckpointFixtures.HfTiny("llama");
        using var checkpoint = Checkpoint.Open(folder);
        var ex = Assert.Throws<CheckpointException>(() => checkpoint.ExpectShape("model.layers.0.self_attn.k_proj.weight", 128, 128));
        Assert.Equal($"{Path.GetFullPath(folder)}: tensor 'model.layers.0.self_attn.k_proj.weight' has shape [32, 128] but config.json implies [128, 128]", ex.Message);
        Assert.Equal("model.layers.0.self_attn.k_proj.weight", ex.TensorName);

        var missing = Assert.Throws<CheckpointException>(() => checkpoint.GetTensor("model.layers.9.mlp.gate_proj.weight"));
        Assert.Equal($"tensor 'model.layers.9.mlp.gate_proj.weight' is not in checkpoint {Path.GetFullPath(folder)}", missing.Message);
        Assert.Throws<CheckpointException>(() => checkpoint.ExpectShape("model.layers.9.mlp.gate_proj.weight", 256, 128));

        Assert.True(checkpoint.TryGetTensor("model.norm.weight", out var norm));
        Assert.Equal([128L], norm.Shape);
        Assert.False(checkpoint.TryGetTensor("nope", out _));
        Assert.Equal(Path.GetFullPath(folder), checkpoint.Folder);
        Assert.Null(checkpoint.IndexPath);
        Assert.Single(checkpoint.Files);
    }

    [Fact]
    public void TotalsCountEveryByteOfTheDataSection()
    {
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.HfTiny("qwen2"));
        var file = checkpoint.Files[0];
        Assert.Equal(file.Length - 8 - file.HeaderLength, checkpoint.TotalBytes);
        Assert.Equal(checkpoint.TotalBytes, checkpoint.BytesByDType[SafetensorsDType.BF16]);
        Assert.Equal(checkpoint.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => t.Name), checkpoint.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void ReadsAfterDisposeAreRefused()
    {
        var checkpoint = Checkpoint.Open(CheckpointFixtures.HfTiny("qwen2"));
        var norm = checkpoint.GetTensor("model.norm.weight");
        checkpoint.Dispose();
        Assert.Throws<ObjectDisposedException>(() => checkpoint.GetBytes(norm).Length);
    }

    [Fact]
    public void TensorsOfAnotherCheckpointAreRefused()
    {
        using var llama = Checkpoint.Open(CheckpointFixtures.HfTiny("llama"));
        using var qwen = Checkpoint.Open(CheckpointFixtures.HfTiny("qwen2"));
        var ex = Assert.Throws<ArgumentException>(() => llama.GetBytes(qwen.GetTensor("model.norm.weight")).Length);
        Assert.Contains("model.norm.weight", ex.Message);
    }

    // ---- folder-level faults ----

    [Fact]
    public void AFolderThatDoesNotExist()
    {
        using var temp = new TempFolder();
        string folder = temp.File("no-such-model");
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(folder));
        Assert.Equal($"model folder {folder} does not exist", ex.Message);
    }

    [Fact]
    public void AFileInsteadOfAFolder()
    {
        string file = Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors");
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(file));
        Assert.Contains(Path.GetFullPath(file), ex.Message);
        Assert.Contains("is a file", ex.Message);
    }

    [Fact]
    public void MissingConfigJson()
    {
        using var temp = new TempFolder();
        File.Copy(Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors"), temp.File("model.safetensors"));
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains(temp.Path, ex.Message);
        Assert.Contains("config.json", ex.Message);
    }

    [Fact]
    public void MissingWeightsListsWhatWasLookedFor()
    {
        using var temp = new TempFolder();
        File.Copy(Path.Combine(CheckpointFixtures.HfTiny("llama"), "config.json"), temp.File("config.json"));
        File.Copy(Path.Combine(CheckpointFixtures.HfTiny("llama"), "golden.safetensors"), temp.File("golden.safetensors"));
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains(temp.Path, ex.Message);
        Assert.Contains("model.safetensors.index.json", ex.Message);
        Assert.Contains("model.safetensors", ex.Message.Replace("model.safetensors.index.json", ""));
    }

    [Fact]
    public void AnUnsupportedConfigIsRefusedBeforeTheWeights()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("config.json"), File.ReadAllText(Path.Combine(CheckpointFixtures.HfTiny("llama"), "config.json")).Replace("\"llama\"", "\"mistral\""));
        var ex = Assert.Throws<UnsupportedModelException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains(temp.File("config.json"), ex.Message);
        Assert.Contains("mistral", ex.Message);
    }

    [Fact]
    public void ACorruptWeightsFileIsNamed()
    {
        using var temp = new TempFolder();
        File.Copy(Path.Combine(CheckpointFixtures.HfTiny("llama"), "config.json"), temp.File("config.json"));
        File.WriteAllBytes(temp.File("model.safetensors"), [0, 0, 0]);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains(temp.File("model.safetensors"), ex.Message);
    }

    // ---- sharded checkpoints ----

    /// <summary>
    /// Splits the llama fixture into two shards (tensors alternating) plus an index, in a temp folder.
    /// Returns the weight_map it wrote.
    /// </summary>
    internal static Dictionary<string, string> WriteShardedLlama(TempFolder temp, bool writeIndex = true)
    {
        string source = CheckpointFixtures.HfTiny("llama");
        File.Copy(Path.Combine(source, "config.json"), temp.File("config.json"));
        using var original = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var names = original.Tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var weightMap = new Dictionary<string, string>();
        var shards = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
        for (int s = 0; s < 2; s++)
        {
            var mine = names.Where((_, i) => i % 2 == s).ToList();
            SafetensorsWriter.Write(temp.File(shards[s]), mine.Select(n =>
            {
                var t = original.Tensors[n];
                return new TensorToWrite(n, t.DType.HeaderName(), t.Shape, original.GetBytes(t).ToArray());
            }), new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var n in mine)
                weightMap[n] = shards[s];
        }
        if (writeIndex)
            WriteIndex(temp, weightMap);
        return weightMap;
    }

    static void WriteIndex(TempFolder temp, Dictionary<string, string> weightMap) =>
        File.WriteAllText(temp.File("model.safetensors.index.json"), JsonSerializer.Serialize(new
        {
            metadata = new { total_size = 1099520 },
            weight_map = weightMap,
        }));

    [Fact]
    public void AShardedCheckpointReadsTheSameBytes()
    {
        using var temp = new TempFolder();
        WriteShardedLlama(temp);
        using var sharded = Checkpoint.Open(temp.Path);
        using var single = Checkpoint.Open(CheckpointFixtures.HfTiny("llama"));

        Assert.Equal(temp.File("model.safetensors.index.json"), sharded.IndexPath);
        Assert.Equal(2, sharded.Files.Count);
        Assert.Equal(single.Tensors.Select(t => t.Name), sharded.Tensors.Select(t => t.Name));
        foreach (var t in single.Tensors)
        {
            var s = sharded.GetTensor(t.Name);
            Assert.Equal(t.Shape, s.Shape);
            Assert.Equal(t.DType, s.DType);
            Assert.True(single.GetBytes(t).SequenceEqual(sharded.GetBytes(s)), t.Name);
        }
        Assert.Equal(single.TotalBytes, sharded.TotalBytes);
        Assert.Equal(single.ReadAsFloat32("model.norm.weight"), sharded.ReadAsFloat32("model.norm.weight"));
        Assert.Contains(sharded.Files, f => f.Tensors.ContainsKey("lm_head.weight") && f.Path.EndsWith("model-00001-of-00002.safetensors", StringComparison.Ordinal));
    }

    [Fact]
    public void TheIndexWinsOverASingleFileAndLeavesOutUnmappedTensors()
    {
        using var temp = new TempFolder();
        var weightMap = WriteShardedLlama(temp, writeIndex: false);
        weightMap.Remove("model.norm.weight"); // still in its shard, but not mapped
        WriteIndex(temp, weightMap);
        File.Copy(Path.Combine(CheckpointFixtures.HfTiny("qwen2"), "model.safetensors"), temp.File("model.safetensors"));

        using var checkpoint = Checkpoint.Open(temp.Path);
        Assert.NotNull(checkpoint.IndexPath);
        Assert.Equal(2, checkpoint.Files.Count);
        Assert.False(checkpoint.TryGetTensor("model.norm.weight", out _));
        Assert.Equal([32L, 128], checkpoint.GetTensor("model.layers.0.self_attn.k_proj.weight").Shape); // llama's, not qwen2's
    }

    [Fact]
    public void AnIndexNamingAMissingShard()
    {
        using var temp = new TempFolder();
        var weightMap = WriteShardedLlama(temp, writeIndex: false);
        weightMap["model.norm.weight"] = "model-00003-of-00003.safetensors";
        WriteIndex(temp, weightMap);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains("model-00003-of-00003.safetensors", ex.Message);
        Assert.Contains(temp.File("model.safetensors.index.json"), ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void AnIndexMappingATensorNotInItsShard()
    {
        using var temp = new TempFolder();
        var weightMap = WriteShardedLlama(temp, writeIndex: false);
        string wrongShard = weightMap["model.norm.weight"] == "model-00001-of-00002.safetensors"
            ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
        weightMap["model.norm.weight"] = wrongShard;
        WriteIndex(temp, weightMap);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains("'model.norm.weight'", ex.Message);
        Assert.Contains(wrongShard, ex.Message);
        Assert.Equal("model.norm.weight", ex.TensorName);
    }

    [Theory]
    [InlineData("../model-00001-of-00002.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/model.safetensors")]
    [InlineData("")]
    public void AnIndexNamingAShardOutsideTheFolder(string shard)
    {
        using var temp = new TempFolder();
        var weightMap = WriteShardedLlama(temp, writeIndex: false);
        weightMap["model.norm.weight"] = shard;
        WriteIndex(temp, weightMap);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains("'model.norm.weight'", ex.Message);
        Assert.Contains("not a file name", ex.Message);
    }

    [Theory]
    [InlineData("{\"weight_map\": ")]
    [InlineData("{\"metadata\": {}}")]
    [InlineData("{\"weight_map\": {\"a\": 3}}")]
    [InlineData("{\"weight_map\": {}}")]
    [InlineData("{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"x.safetensors\"}}")]
    public void AMalformedIndex(string json)
    {
        using var temp = new TempFolder();
        WriteShardedLlama(temp, writeIndex: false);
        File.WriteAllText(temp.File("model.safetensors.index.json"), json);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(temp.Path));
        Assert.Contains(temp.File("model.safetensors.index.json"), ex.Message);
    }
}
