namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Where the checkpoint fixtures are: tests/fixtures/hf-tiny (five tiny Hugging Face checkpoints with golden
/// logits) and the embedded dsv3-pydoc-tiny model, found by walking up from the test assembly to the
/// repository root (so they are found from bin/ and from a device bundle alike).
/// </summary>
public static class CheckpointFixtures
{
    /// <summary>The hf-tiny folder names.</summary>
    public static readonly string[] Names = ["deepseek_v3", "deepseek_v3_fp8", "deepseek_v2_lite", "llama", "qwen2"];


    /// <summary>The repository root (the folder holding tests/fixtures/hf-tiny).</summary>
    public static string RepositoryRoot => Support.RepositoryRoot.Path;

    /// <summary>tests/fixtures/hf-tiny/<paramref name="name"/>.</summary>
    public static string HfTiny(string name) => Path.Combine(RepositoryRoot, "tests", "fixtures", "hf-tiny", name);

    /// <summary>The trained model the CLI embeds.</summary>
    public static string PydocTiny => Path.Combine(RepositoryRoot, "src", "DeepSeekKernels.Cli", "models", "dsv3-pydoc-tiny");

    /// <summary>Every model folder (hf-tiny and dsv3-pydoc-tiny), as theory data.</summary>
    public static TheoryData<string> AllModelFolders()
    {
        var data = new TheoryData<string>();
        foreach (var name in Names)
            data.Add(name);
        data.Add("dsv3-pydoc-tiny");
        return data;
    }

    /// <summary>The folder for a name from <see cref="AllModelFolders"/>.</summary>
    public static string Folder(string name) => name == "dsv3-pydoc-tiny" ? PydocTiny : HfTiny(name);
}
