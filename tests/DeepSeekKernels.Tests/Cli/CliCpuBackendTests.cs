using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>`dsk` on the CPU backend (issue 14): the default without a GPU, --threads, and what it refuses.</summary>
public class CliCpuBackendTests
{
    [Fact]
    public void WithoutAGpuTheDefaultBackendIsCpuWithOneThreadPerCoreAndMappedWeights()
    {
        var r = DskProcess.Run(null, "generate", "-m", CheckpointFixtures.HfTiny("llama"), "--prompt-ids", "5,6,7", "--print-ids", "-n", "3");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains($"backend cpu ({Ops.DefaultCpuThreads} thread", r.Error);
        Assert.Contains("read in place from the mapped file", r.Error);
        Assert.Contains("f32 activations", r.Error);
    }

    [Fact]
    public void ThreadsChoosesThePoolAndTheIdsDoNotDependOnIt()
    {
        string model = CheckpointFixtures.HfTiny("qwen2");
        var one = DskProcess.Run(null, "generate", "-m", model, "--backend", "cpu", "--threads", "1", "--prompt-ids", "5,6,7", "--print-ids", "-n", "6");
        var three = DskProcess.Run(null, "generate", "-m", model, "--backend", "cpu", "--threads", "3", "--prompt-ids", "5,6,7", "--print-ids", "-n", "6");
        var reference = DskProcess.Run(null, "generate", "-m", model, "--backend", "reference", "--prompt-ids", "5,6,7", "--print-ids", "-n", "6");
        Assert.True(one.ExitCode == 0 && three.ExitCode == 0 && reference.ExitCode == 0, one.Error + three.Error + reference.Error);
        Assert.Contains("backend cpu (1 thread)", one.Error);
        Assert.Contains("backend cpu (3 threads)", three.Error);
        Assert.Equal(reference.Out, one.Out);
        Assert.Equal(reference.Out, three.Out);
    }

    [Theory]
    [InlineData("--threads 0", "--threads 0: give 1 to 1024 threads.")]
    [InlineData("--threads 2000", "--threads 2000: give 1 to 1024 threads.")]
    [InlineData("--backend reference --threads 2", "--threads applies to the cpu backend; the backend here is reference.")]
    [InlineData("--backend cpu --device cuda", "--backend cpu runs on the CPU; drop --device cuda or use --backend ilgpu or native.")]
    [InlineData("--backend cpu --cuda-graphs", "--cuda-graphs needs a CUDA GPU; this run is on")]
    public void BadEngineChoicesAreRefusedNamingTheFlag(string flags, string message)
    {
        var r = DskProcess.Run(null, ["generate", "-m", CheckpointFixtures.HfTiny("llama"), "--prompt-ids", "5", "-n", "1", .. flags.Split(' ')]);
        Assert.Equal(1, r.ExitCode); // a usage error: the message, no trace
        Assert.Contains(message, r.Error);
        Assert.DoesNotContain("   at ", r.Error);
        Assert.Equal("", r.Out);
    }
}
