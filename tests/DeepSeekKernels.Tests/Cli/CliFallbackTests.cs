namespace DeepSeekKernels.Tests.Cli;

/// <summary>
/// `--backend ilgpu|native` is strict: an op the backend lacks is a one-line error naming the op signature and
/// --allow-fallback; with --allow-fallback it runs on the reference and dsk lists, once, on stderr, what fell back.
/// `dsk check` prints the support table. (No GPU here: ILGPU runs on its CPU accelerator.) ILGPU runs every op the models
/// call, so the refusals are made with DSK_EXCLUDE_OPS (ops the backend must not run), not with today's gaps.
/// </summary>
public class CliFallbackTests
{
    const string ReportHeader = "--allow-fallback: ";

    static DskProcess.Result Run(string? exclude, string? stdin, params string[] args) =>
        DskProcess.Run(stdin is null ? null : System.Text.Encoding.UTF8.GetBytes(stdin),
            new Dictionary<string, string?> { ["DSK_EXCLUDE_OPS"] = exclude }, args);

    [Fact]
    public void IlgpuWithoutAllowFallbackRefusesTheFirstOpItLacks()
    {
        var r = Run("MoeRoute", null, "generate", "--backend", "ilgpu", "--device", "cpu", "-n", "2");
        // refused in the prefill, before the prompt is echoed: nothing on stdout
        DskProcess.AssertRefused(r, "dsk generate", "is not supported by --backend ilgpu");
        string error = r.ErrorLines.Single(l => l.Contains(": error: ", StringComparison.Ordinal));
        Assert.Matches(@"error: MoeRoute\(x=f32\) is not supported by --backend ilgpu \(excluded by DSK_EXCLUDE_OPS / Ops\.Excluding\); add --allow-fallback", error);

        var unknown = Run("MoeRoute,Nonsense", null, "generate", "--backend", "ilgpu", "--device", "cpu", "-n", "2");
        DskProcess.AssertRefused(unknown, "dsk generate", "DSK_EXCLUDE_OPS: 'Nonsense' is not an op");
    }

    [Fact]
    public void IlgpuWithAllowFallbackRunsAndListsWhatFellBackOnce()
    {
        var reference = DskProcess.Run(null, "generate", "--prompt-ids", "5,6,7", "--print-ids", "-n", "3");
        Assert.True(reference.ExitCode == 0, reference.Error);
        var r = Run("MoeRoute,MoePermute", null, "generate", "--backend", "ilgpu", "--device", "cpu", "--allow-fallback", "--prompt-ids", "5,6,7", "--print-ids", "-n", "3");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(reference.Out, r.Out); // the same greedy ids
        Assert.Single(r.ErrorLines, l => l.Contains(ReportHeader, StringComparison.Ordinal));
        Assert.Contains("dsk generate: --allow-fallback: ", r.Error);
        // on ILGPU's CPU accelerator the reference works in place: nothing is staged
        Assert.Matches(@"\n  \w+\(x=f32[^)]*\): [\d,]+ calls, 0 bytes staged between device and host", r.Error);
        Assert.DoesNotContain("RmsNorm(", r.Error); // ILGPU has these
        Assert.DoesNotContain("  Linear(", r.Error);
        Assert.DoesNotContain("  Embedding(", r.Error);
        Assert.DoesNotContain(ReportHeader, reference.Error); // the reference never falls back
    }

    /// <summary>
    /// Every fixture through <c>dsk generate --backend ilgpu --device cpu</c>, strict (no fallback at all): the greedy ids of
    /// the reference (run in this process: a second dsk process per fixture cost CI more than the comparison needs), and no
    /// fallback report.
    /// </summary>
    [Theory]
    [InlineData("llama"), InlineData("qwen2"), InlineData("deepseek_v2_lite"), InlineData("deepseek_v3"), InlineData("deepseek_v3_fp8")]
    public void EveryFixtureRunsStrictOnIlgpu(string name)
    {
        string folder = Checkpoints.CheckpointFixtures.HfTiny(name);
        int[] prompt = [5, 6, 7, 8, 9];
        int[] expected;
        using (var runtime = DeepSeekKernels.Runtime.DeviceRuntime.Create(DeepSeekKernels.Runtime.DevicePreference.Cpu)) // its own: not in DeviceCollection
        using (var model = DeepSeekKernels.Models.ModelLoader.Load(folder, Ops.Create(runtime, Backend.Reference), contextLength: prompt.Length + 4))
            expected = Models.ModelTestSupport.Greedy(model, prompt, 4);
        var r = DskProcess.Run(null, "generate", "-m", folder, "--backend", "ilgpu", "--device", "cpu", "--prompt-ids", "5,6,7,8,9", "--print-ids", "-n", "4");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Equal(string.Join(",", expected) + "\n", r.Out);
        Assert.DoesNotContain(ReportHeader, r.Error);
    }

    [Fact]
    public void ChatTakesAllowFallbackToo()
    {
        var r = Run("MoeCombine", "hello\n", "chat", "--backend", "ilgpu", "--allow-fallback", "-n", "2");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("dsk chat: --allow-fallback: ", r.Error);
        var strict = Run("MoeCombine", "hello\n", "chat", "--backend", "ilgpu", "-n", "2");
        DskProcess.AssertRefused(strict, "dsk chat", "add --allow-fallback", stdoutEmpty: false);
    }

    [Fact]
    public void CheckPrintsTheSupportTable()
    {
        var r = DskProcess.Run(null, "check", "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Matches(@"op signature\s*│\s*reference\s*│\s*ilgpu", r.Out);
        Assert.Matches(@"│ Linear\(x=f32, w=bf16 dense\)\s*│\s*yes\s*│\s*yes\s*│", r.Out);
        Assert.Matches(@"│ Rope\(x=f32\)\s*│\s*yes\s*│\s*yes\s*│", r.Out);
        Assert.Matches(@"│ PagedAttention\(x=f32, head_dim=128, pages=bf16\)\s*│\s*yes\s*│\s*yes\s*│", r.Out);
        Assert.Matches(@"│ Attention\(x=f32, head_dim=128\)\s*│\s*yes\s*│\s*-\s*│", r.Out);
        Assert.Matches(@"│ RmsNorm\(x=bf16, w=f32\)\s*│\s*yes\s*│\s*yes\s*│", r.Out);
        foreach (var signature in Ops.SupportSignatures)
            Assert.Contains($"│ {signature} ", r.Out);
    }
}
