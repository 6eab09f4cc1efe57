using System.Text.Json.Nodes;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>
/// <see cref="CheckpointConformance"/>: from the headers alone it visits exactly the tensors the loader reads,
/// refuses what loading refuses with the same message, and says what the runner will not read.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class CheckpointConformanceTests
{
    static CheckpointConformanceReport Check(string folder)
    {
        using var checkpoint = Checkpoint.Open(folder);
        return CheckpointConformance.Check(checkpoint);
    }

    /// <summary>The names <see cref="Checkpoint.GetTensor"/> is asked for while <paramref name="action"/> runs.</summary>
    static SortedSet<string> LookedUp(Action action)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        Checkpoint.LookupObserver.Value = name => names.Add(name);
        try
        {
            action();
        }
        finally
        {
            Checkpoint.LookupObserver.Value = null;
        }
        return names;
    }

    /// <summary>Check and ModelLoader.Load both refuse <paramref name="folder"/>, with one message; it holds every fragment.</summary>
    static CheckpointException AssertRefusedAlike(string folder, params string[] fragments)
    {
        var check = Assert.Throws<CheckpointException>(() => Check(folder));
        var load = Assert.Throws<CheckpointException>(() => ModelTestSupport.Load(folder).Dispose());
        Assert.Equal(load.Message, check.Message);
        Assert.Equal(load.TensorName, check.TensorName);
        foreach (var fragment in fragments)
            Assert.Contains(fragment, check.Message);
        return check;
    }

    static string Copy(TempFolder folder, string name, Action<JsonObject>? config = null, Func<TensorToWrite, TensorToWrite?>? tensors = null) =>
        CheckpointCopy.Write(CheckpointFixtures.Folder(name), folder.Path, tensors, config);

    static JsonObject Config(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(CheckpointFixtures.Folder(name), Checkpoint.ConfigFileName)))!.AsObject();

    static int Int(string name, string key) => Config(name)[key]!.GetValue<int>();

    public static TheoryData<string> DeepSeekFolders => ["deepseek_v3", "deepseek_v3_fp8", "deepseek_v2_lite", "dsv3-pydoc-tiny"];

    // What conforms

    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void EveryFixtureConformsAndEveryTensorIsRead(string name)
    {
        using var checkpoint = Checkpoint.Open(CheckpointFixtures.Folder(name));
        var report = CheckpointConformance.Check(checkpoint);
        Assert.Equal(checkpoint.Tensors.Count, report.TensorsRead);
        Assert.Empty(report.MtpTensors);
        Assert.Empty(report.UnreadTensors);
        Assert.Empty(report.LayersBeyondConfig);
    }

    /// <summary>
    /// The drift guard: the tensors the check visits are exactly those the loader looks up (both go through
    /// Checkpoint.GetTensor), loading succeeds, and the report's unread tensors are the rest of the checkpoint.
    /// </summary>
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void TheCheckVisitsExactlyTheTensorsTheLoaderReads(string name) => AssertVisitsMatchTheLoader(CheckpointFixtures.Folder(name));

    /// <summary>The same on copies whose config claims fewer layers than stored (MTP layers included) or a tied lm_head.</summary>
    [Theory]
    [InlineData("qwen2", 1, null)]
    [InlineData("deepseek_v3", 1, null)]
    [InlineData("deepseek_v3_fp8", 2, null)]
    [InlineData("deepseek_v2_lite", 2, null)]
    [InlineData("dsv3-pydoc-tiny", 2, null)]
    [InlineData("llama", 3, true)]
    [InlineData("deepseek_v3_fp8", 3, true)]
    public void TheCheckVisitsExactlyTheTensorsTheLoaderReadsOnEditedConfigs(string name, int layers, bool? tied)
    {
        using var folder = new TempFolder();
        Copy(folder, name, c =>
        {
            c["num_hidden_layers"] = layers;
            if (tied is bool t)
                c["tie_word_embeddings"] = t;
        });
        AssertVisitsMatchTheLoader(folder.Path);
    }

    static void AssertVisitsMatchTheLoader(string folder)
    {
        using var checkpoint = Checkpoint.Open(folder);
        CheckpointConformanceReport? report = null;
        var visited = LookedUp(() => report = CheckpointConformance.Check(checkpoint));
        var loaded = LookedUp(() => ModelTestSupport.Load(folder).Dispose());
        Assert.Equal(loaded, visited);
        Assert.Equal(report!.TensorsRead, visited.Count);
        var rest = checkpoint.Tensors.Select(t => t.Name).Except(report.MtpTensors).Except(report.UnreadTensors);
        Assert.Equal(visited, new SortedSet<string>(rest, StringComparer.Ordinal));
    }

    [Fact]
    public void FewerLayersThanStoredPassAndTheRestIsReported()
    {
        using var folder = new TempFolder();
        var report = Check(Copy(folder, "qwen2", c => c["num_hidden_layers"] = 1));
        Assert.Equal([1, 2], report.LayersBeyondConfig);
        Assert.Empty(report.MtpTensors);
        Assert.Equal(2 * 12, report.UnreadTensors.Count); // 12 tensors a Qwen2 layer
        Assert.All(report.UnreadTensors, n => Assert.Matches(@"^model\.layers\.[12]\.", n));
        using var model = ModelTestSupport.Load(folder.Path);
        Assert.Equal(1, model.Shape.Layers);
    }

    [Fact]
    public void DeepSeekMtpLayersAreToldApartFromOtherLayersBeyondTheConfig()
    {
        // num_nextn_predict_layers = 1: with num_hidden_layers = 1, layer 1 is where the MTP layer would be.
        using var folder = new TempFolder();
        var report = Check(Copy(folder, "deepseek_v3", c => c["num_hidden_layers"] = 1));
        Assert.NotEmpty(report.MtpTensors);
        Assert.All(report.MtpTensors, n => Assert.StartsWith("model.layers.1.", n));
        Assert.Equal([2], report.LayersBeyondConfig);
        Assert.All(report.UnreadTensors, n => Assert.StartsWith("model.layers.2.", n));
    }

    [Fact]
    public void ATiedConfigLeavesAStoredLmHeadUnread()
    {
        using var folder = new TempFolder();
        var report = Check(Copy(folder, "llama", c => c["tie_word_embeddings"] = true));
        Assert.Equal(["lm_head.weight"], report.UnreadTensors);
        Assert.Empty(report.LayersBeyondConfig);
    }

    [Fact]
    public void TheScaleOfAWeightThatIsNotFp8IsUnread()
    {
        // A BF16 q_a_proj with a stray weight_scale_inv: the loader reads the BF16 weight and never the scale.
        using var folder = new TempFolder();
        Copy(folder, "deepseek_v3_fp8", tensors: t => t.Name == "model.layers.0.self_attn.q_a_proj.weight"
            ? t with { DType = "BF16", Data = [.. t.Data, .. t.Data] }
            : t);
        var report = Check(folder.Path);
        Assert.Equal(["model.layers.0.self_attn.q_a_proj.weight_scale_inv"], report.UnreadTensors);
        AssertVisitsMatchTheLoader(folder.Path);
    }

    // What is refused, by the check and by loading alike

    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void OneLayerMoreThanStoredIsRefusedAtItsFirstTensor(string name)
    {
        int layers = Int(name, "num_hidden_layers");
        using var folder = new TempFolder();
        var e = AssertRefusedAlike(Copy(folder, name, c => c["num_hidden_layers"] = layers + 1),
            $"tensor 'model.layers.{layers}.input_layernorm.weight' is not in checkpoint");
        Assert.Equal($"model.layers.{layers}.input_layernorm.weight", e.TensorName);
    }

    /// <summary>
    /// A config that claims int.MaxValue layers fails at the first missing one, at once. ModelLoader.Load, until it
    /// runs the check first, allocates its per-layer arrays before reaching that tensor and runs out of memory.
    /// </summary>
    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void IntMaxValueLayersAreRefusedAtTheFirstMissingLayer(string name)
    {
        int layers = Int(name, "num_hidden_layers");
        using var folder = new TempFolder();
        Copy(folder, name, c => c["num_hidden_layers"] = int.MaxValue);
        var check = Assert.Throws<CheckpointException>(() => Check(folder.Path));
        Assert.Equal($"model.layers.{layers}.input_layernorm.weight", check.TensorName);
        var load = Assert.ThrowsAny<Exception>(() => ModelTestSupport.Load(folder.Path).Dispose());
        if (load is CheckpointException)
            Assert.Equal(check.Message, load.Message);
        else
            Assert.IsType<OutOfMemoryException>(load);
    }

    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void ADifferentIntermediateSizeIsRefusedWithBothShapes(string name)
    {
        int intermediate = Int(name, "intermediate_size"), hidden = Int(name, "hidden_size");
        using var folder = new TempFolder();
        AssertRefusedAlike(Copy(folder, name, c => c["intermediate_size"] = intermediate + 64),
            "tensor 'model.layers.0.mlp.gate_proj.weight' has shape ", $"[{intermediate}, {hidden}] but config.json implies [{intermediate + 64}, {hidden}]");
    }

    [Theory]
    [MemberData(nameof(CheckpointFixtures.AllModelFolders), MemberType = typeof(CheckpointFixtures))]
    public void ADifferentHiddenSizeIsRefusedWithBothShapes(string name)
    {
        int hidden = Int(name, "hidden_size"), vocab = Int(name, "vocab_size");
        using var folder = new TempFolder();
        AssertRefusedAlike(Copy(folder, name, c => c["hidden_size"] = 2 * hidden),
            "tensor 'model.embed_tokens.weight' has shape ", $"[{vocab}, {hidden}] but config.json implies [{vocab}, {2 * hidden}]");
    }

    [Theory]
    [MemberData(nameof(DeepSeekFolders))]
    public void MoreRoutedExpertsThanStoredAreRefusedWithBothShapes(string name)
    {
        int experts = Int(name, "n_routed_experts"), hidden = Int(name, "hidden_size");
        using var folder = new TempFolder();
        AssertRefusedAlike(Copy(folder, name, c => c["n_routed_experts"] = 2 * experts),
            "tensor 'model.layers.1.mlp.gate.weight' has shape ", $"[{experts}, {hidden}] but config.json implies [{2 * experts}, {hidden}]");
    }

    [Fact]
    public void AnUntiedConfigOverATiedCheckpointIsRefused()
    {
        using var tied = new TempFolder();
        Copy(tied, "qwen2", c => c["tie_word_embeddings"] = true, t => t.Name == "lm_head.weight" ? null : t);
        Assert.Empty(Check(tied.Path).UnreadTensors);
        ModelTestSupport.Load(tied.Path).Dispose();

        CheckpointCopy.EditConfig(tied.Path, c => c["tie_word_embeddings"] = false);
        AssertRefusedAlike(tied.Path, "tensor 'lm_head.weight' is not in checkpoint");
    }

    [Fact]
    public void Fp8WeightsWithoutQuantizationConfigAreRefused()
    {
        using var folder = new TempFolder();
        AssertRefusedAlike(Copy(folder, "deepseek_v3_fp8", c => c.Remove("quantization_config")),
            "tensor 'model.layers.0.self_attn.q_a_proj.weight' is F8_E4M3 but config.json has no quantization_config");
    }

    [Fact]
    public void ScalesOfAnotherBlockSizeAreRefusedWithBothShapes()
    {
        using var folder = new TempFolder();
        // q_a_proj [96, 192]: 64x64 blocks want [2, 3] scales; 128x128 ones were stored.
        AssertRefusedAlike(Copy(folder, "deepseek_v3_fp8", c => c["quantization_config"]!["weight_block_size"] = new JsonArray(64, 64)),
            "tensor 'model.layers.0.self_attn.q_a_proj.weight_scale_inv' has shape [1, 2] but config.json implies [2, 3]");
    }

    [Theory]
    [InlineData("qwen2", "model.layers.2.self_attn.k_proj.bias")]
    [InlineData("deepseek_v3", "model.layers.2.mlp.experts.7.up_proj.weight")]
    [InlineData("deepseek_v3_fp8", "model.layers.1.mlp.experts.3.down_proj.weight_scale_inv")]
    [InlineData("deepseek_v3", "model.layers.1.mlp.gate.e_score_correction_bias")]
    [InlineData("deepseek_v2_lite", "model.layers.1.self_attn.kv_b_proj.weight")]
    [InlineData("dsv3-pydoc-tiny", "model.norm.weight")]
    public void AMissingTensorIsRefusedByName(string name, string tensor)
    {
        using var folder = new TempFolder();
        var e = AssertRefusedAlike(Copy(folder, name, tensors: t => t.Name == tensor ? null : t), $"tensor '{tensor}' is not in checkpoint");
        Assert.Equal(tensor, e.TensorName);
    }

    /// <summary>Dtypes the loader cannot use, each in the loader's own words; I16/I32 have the size of the dtype they replace.</summary>
    [Theory]
    [InlineData("llama", "model.layers.1.self_attn.q_proj.weight", "I16", "has dtype I16; weights must be BF16, F16, F32 or F8_E4M3.")]
    [InlineData("qwen2", "model.layers.0.self_attn.v_proj.bias", "I16", "is I16; ReadAsFloat32 reads F32, BF16, F16, F8_E4M3 or F8_E5M2.")]
    [InlineData("deepseek_v3", "model.layers.1.mlp.experts.5.gate_proj.weight", "F16", "is F16 but 'model.layers.1.mlp.experts.0.gate_proj.weight' is BF16; a stack must share one dtype.")]
    [InlineData("deepseek_v3_fp8", "model.layers.2.mlp.experts.9.up_proj.weight_scale_inv", "I32", "is I32; ReadAsFloat32 reads")]
    [InlineData("deepseek_v3_fp8", "model.layers.0.self_attn.kv_b_proj.weight_scale_inv", "I32", "is I32; ReadAsFloat32 reads")]
    [InlineData("deepseek_v2_lite", "model.layers.0.self_attn.kv_b_proj.weight", "I16", "is I16; ReadAsFloat32 reads")]
    [InlineData("deepseek_v3", "model.layers.2.mlp.gate.e_score_correction_bias", "I32", "is I32; ReadAsFloat32 reads")]
    public void AWrongDtypeIsRefusedInTheLoadersWords(string name, string tensor, string dtype, string fragment)
    {
        using var folder = new TempFolder();
        var e = AssertRefusedAlike(Copy(folder, name, tensors: t => t.Name == tensor ? t with { DType = dtype } : t), $"'{tensor}'", fragment);
        Assert.Equal(tensor, e.TensorName);
    }

    [Fact]
    public void NothingAfterTheFirstContradictionIsVisited()
    {
        using var folder = new TempFolder();
        Copy(folder, "llama", c => c["intermediate_size"] = 512);
        using var checkpoint = Checkpoint.Open(folder.Path);
        var visited = LookedUp(() => Assert.Throws<CheckpointException>(() => CheckpointConformance.Check(checkpoint)));
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", visited);
        Assert.DoesNotContain("model.layers.0.mlp.up_proj.weight", visited);
        Assert.DoesNotContain("model.layers.1.input_layernorm.weight", visited);
    }
}
