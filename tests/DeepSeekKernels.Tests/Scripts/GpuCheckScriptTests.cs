using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Runtime.Versioning;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Scripts;

/// <summary>
/// scripts/gpu-check.sh runs only on a GPU machine, in a window of device time too short to debug it there: so its plumbing is
/// tested here, with every tool it calls (dotnet, cmake, ctest, nvcc, nvidia-smi, compute-sanitizer, python3, the check
/// programs) replaced by a stub that logs its command line and environment and does what the case asks (succeed, fail, hang,
/// sleep, report memcheck errors). What must hold: OUT holds only the summary and one archive of the logs (the device tool
/// returns at most 8 files); every step is in the table with its result; a failure or a hang fails its step and not the
/// others; steps that no longer fit before the deadline are not started and are named for the next call; the GPU steps run
/// with DSK_REQUIRE_GPU=1 and the benchmarks with the headline cases and the short job.
/// </summary>
[SupportedOSPlatform("linux")] // bash, coreutils' timeout, tar: as on the GPU machine and in CI
public sealed class GpuCheckScriptTests : IDisposable
{
    static readonly string[] Steps =
    [
        "native-build", "native-ctest", "tests", "sanitizer", "dsk-generate", "dsk-check", "bench-linear", "bench-attention",
        "bench-moe", "dsk-bench", "bench-peers", "native-racecheck", "native-bench", "bench-rmsnorm",
    ];

    // One stub for every tool: its name says which it plays.
    const string Stub = """
        #!/usr/bin/env bash
        name=$(basename "$0")
        echo "$name $* | REQUIRE_GPU=${DSK_REQUIRE_GPU:-} HEADLINE=${DSK_BENCH_HEADLINE:-} QUICK=${DSK_BENCH_QUICK:-}" >>"$STUB_LOG"
        call="$name $*"
        if [ -n "${STUB_HANG:-}" ] && [[ "$call" == *"$STUB_HANG"* ]]; then sleep 600; fi
        if [ -n "${STUB_FAIL:-}" ] && [[ "$call" == *"$STUB_FAIL"* ]]; then
          echo "stub: failing as asked"
          echo "    DeepSeekKernels.Tests.Conformance.LinearNativeConformance.LinearMatchesFloat64(m: 3, form: \"int4\") [FAIL]"
          echo "    DeepSeekKernels.Tests.Runtime.DeviceGraphTests.AGraphReplays [FAIL]"
          exit 1
        fi
        # STUB_SLEEP: once per step (timeout gives each step its own process group), not in the script's own queries.
        pgrp=$(cut -d' ' -f5 /proc/$$/stat)
        case "$call" in
          nvidia-smi*|nvcc*|*--version*|*--list-sdks*|"python3 -c"*) ;;
          *) if [ ! -e "$STUB_LOG.slept.$pgrp" ]; then touch "$STUB_LOG.slept.$pgrp"; sleep "${STUB_SLEEP:-0}"; fi ;;
        esac
        case "$name" in
          dotnet) [[ "$call" == *--list-sdks* ]] && echo "10.0.100 [/stub/sdk]" ;;
          nvidia-smi)
            case "$call" in
              *name,driver_version*) echo "NVIDIA H200, 580.159.04" ;;
              *compute_cap*) echo "9.0" ;;
              *) echo "stub nvidia-smi" ;;
            esac ;;
          nvcc) echo "Cuda compilation tools, release 13.0, V13.0.88" ;;
          cmake)
            if [[ "$call" == *--build* ]]; then
              mkdir -p build/native
              for c in dsk_rms_norm_check dsk_linear_check dsk_mma_check dsk_attention_check dsk_attention_mma_check dsk_mla_check \
                       dsk_moe_check dsk_grouped_linear_check dsk_elementwise_check; do
                cp "$0" "build/native/$c"
              done
            fi ;;
          compute-sanitizer) echo "========= ERROR SUMMARY: ${STUB_MEMCHECK_ERRORS:-0} errors" ;;
        esac
        if [[ "$call" == *"DeepSeekKernels.Tests --"* ]]; then
          echo "   DeepSeekKernels.Tests  Total: 7, Errors: 0, Failed: 0, Skipped: 0, Not Run: 0, Time: 0.1s"
        fi
        if [[ "$call" == *--artifacts* ]]; then
          dir=${call##*--artifacts }
          mkdir -p "$dir/results"
          printf '| Method | Mean |\n|--- |---:|\n| Stub | 1.0 us |\n' >"$dir/results/Stub-report-github.md"
        fi
        exit 0
        """;

    readonly string _root = Directory.CreateTempSubdirectory("dsk-gpu-check-").FullName;
    readonly string _stubs, _out, _log;

    public GpuCheckScriptTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "scripts"));
        File.Copy(Path.Combine(RepositoryRoot.Path, "scripts", "gpu-check.sh"), Path.Combine(_root, "scripts", "gpu-check.sh"));
        _stubs = Directory.CreateDirectory(Path.Combine(_root, "stubs")).FullName;
        foreach (string tool in new[] { "dotnet", "cmake", "ctest", "nvcc", "nvidia-smi", "compute-sanitizer", "python3" })
        {
            string path = Path.Combine(_stubs, tool);
            File.WriteAllText(path, Stub.Replace("\r\n", "\n") + "\n");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        _out = Path.Combine(_root, "out");
        _log = Path.Combine(_root, "calls.log");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    sealed record Run(int ExitCode, string Output, string Summary, string[] OutFiles, string[] Logs, string[] Calls, TimeSpan Elapsed)
    {
        /// <summary>The step's row of the summary's table: its result and time.</summary>
        public string Row(string step) =>
            Summary.Split('\n').SingleOrDefault(l => l.Length > 18 && l[..18].TrimEnd() == step)?[18..].Trim()
            ?? throw new Xunit.Sdk.XunitException($"no row for {step} in:\n{Summary}");
    }

    Run RunScript(params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(_root, "scripts", "gpu-check.sh"), _out])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _root,
        };
        start.Environment["PATH"] = _stubs + ":" + Environment.GetEnvironmentVariable("PATH");
        start.Environment["STUB_LOG"] = _log;
        foreach (string name in new[] { "DSK_STEPS", "DSK_DEADLINE", "DSK_STEP_TIMEOUT", "DSK_USE_BUNDLE", "DSK_WORK_DIR", "DSK_CUDA_ARCH", "OUT" })
            start.Environment.Remove(name);
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "gpu-check.sh did not end");
        string output = stdout + stderr.Result;

        string[] outFiles = Directory.Exists(_out) ? Directory.GetFileSystemEntries(_out).Select(p => Path.GetFileName(p)!).ToArray() : [];
        string summary = File.Exists(Path.Combine(_out, "summary.txt")) ? File.ReadAllText(Path.Combine(_out, "summary.txt")) : "";
        var logs = new List<string>();
        string archive = Path.Combine(_out, "gpu-check-logs.tar.gz");
        if (File.Exists(archive))
        {
            using var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
                if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
                    logs.Add(entry.Name.TrimStart('.', '/'));
        }
        string[] calls = File.Exists(_log) ? File.ReadAllLines(_log) : [];
        return new Run(process.ExitCode, output, summary, outFiles, [.. logs], calls, clock.Elapsed);
    }

    [Fact]
    public void EveryStepRunsAndOutHoldsOnlyTheSummaryAndOneArchive()
    {
        var run = RunScript();

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal(["gpu-check-logs.tar.gz", "summary.txt"], run.OutFiles.Order());
        Assert.All(Steps, step => Assert.StartsWith("ok", run.Row(step)));
        Assert.All(Steps, step => Assert.Contains($"{step}.log", run.Logs));
        Assert.Contains("environment.txt", run.Logs);
        Assert.Contains("bench-linear/results/Stub-report-github.md", run.Logs);
        Assert.StartsWith("== gpu-check on NVIDIA H200, 580.159.04, sm_90a, CUDA 13", run.Summary);
        Assert.Contains("tests: DeepSeekKernels.Tests  Total: 7", run.Summary);
        Assert.Contains("memcheck: ========= ERROR SUMMARY: 0 errors", run.Summary);
        Assert.Contains("| Stub | 1.0 us |", run.Summary);          // the benchmark tables follow the step table
        Assert.DoesNotContain("next call", run.Summary);

        // Built for this GPU's arch only; the GPU steps see DSK_REQUIRE_GPU=1, the benchmarks the headline cases and short job.
        Assert.Contains(run.Calls, c => c.StartsWith("cmake -S . -B build/native") && c.Contains("-DCMAKE_CUDA_ARCHITECTURES=90a"));
        string tests = Assert.Single(run.Calls, c => c.StartsWith("dotnet run") && c.Contains("-xml"));
        Assert.Contains("REQUIRE_GPU=1", tests);
        Assert.Contains("-class DeepSeekKernels.Tests.Conformance.LinearNativeConformance", tests);
        Assert.Contains("-class DeepSeekKernels.Tests.Runtime.CudaErrorTests", tests);
        string memcheck = Assert.Single(run.Calls, c => c.StartsWith("compute-sanitizer --tool memcheck"));
        Assert.DoesNotContain("CudaErrorTests", memcheck);
        Assert.DoesNotContain("GpuBackendModelTests", memcheck); // whole models: in the tests step only
        Assert.DoesNotContain("PlannedScratchTests", memcheck);
        Assert.DoesNotContain("Fp8ActivationModelTests", memcheck);
        Assert.Contains("GpuBackendModelTests", tests);
        Assert.Contains("PlannedScratchTests", tests);
        Assert.Contains("Fp8ActivationModelTests", tests);
        Assert.Equal(tests.Split(" -class ").Length - 5, memcheck.Split(" -class ").Length - 1); // everything else
        Assert.Contains(run.Calls, c => c.StartsWith("ctest") && c.Contains("REQUIRE_GPU=1"));
        var benches = run.Calls.Where(c => c.Contains("bench/DeepSeekKernels.Bench")).ToArray();
        Assert.Equal(4, benches.Length);
        Assert.All(benches, c => Assert.EndsWith("REQUIRE_GPU=1 HEADLINE=1 QUICK=1", c));
        Assert.Equal(9, run.Calls.Count(c => c.StartsWith("compute-sanitizer --tool racecheck")));
        // End to end: a random-weight checkpoint of each bench model, then dsk bench on the native backend over it.
        Assert.Equal(2, run.Calls.Count(c => c.Contains("DeepSeekKernels.Cli -- random-checkpoint bench/models/")));
        Assert.Equal(4, run.Calls.Count(c => c.Contains("DeepSeekKernels.Cli -- bench -m ") && c.Contains("--backend native")));
        Assert.Single(run.Calls, c => c.Contains("dsk-random-r1-distill-llama-8b --backend native --quant int4"));
        Assert.Single(run.Calls, c => c.Contains("dsk-random-dsv3-bench --backend native --quant fp8"));
    }

    [Fact]
    public void AFailingStepFailsTheRunAndTheOtherStepsStillRun()
    {
        var run = RunScript(("STUB_FAIL", " -xml ")); // only the tests step writes an xunit XML report

        Assert.True(run.ExitCode == 1, run.Summary);
        Assert.Equal("FAILED (exit 1)", run.Row("tests").Split("  ")[0].Trim());
        Assert.All(Steps.Where(s => s != "tests"), step => Assert.StartsWith("ok", run.Row(step)));
        Assert.Contains("next call: DSK_STEPS=\"native-build tests\" bash scripts/gpu-check.sh", run.Summary);
        Assert.Contains("stub: failing as asked", run.Output); // the tail of a failed step's log is printed
        // The failing tests and their classes, ready for a second call that reruns only them.
        Assert.Contains("failed: DeepSeekKernels.Tests.Runtime.DeviceGraphTests.AGraphReplays [FAIL]", run.Summary);
        Assert.Contains("failing classes: DSK_TEST_CLASSES=\"DeepSeekKernels.Tests.Conformance.LinearNativeConformance " +
            "DeepSeekKernels.Tests.Runtime.DeviceGraphTests\"", run.Summary);
    }

    [Fact]
    public void DskTestClassesNarrowsTheTestsAndMemcheckSteps()
    {
        var run = RunScript(("DSK_STEPS", "tests sanitizer"),
            ("DSK_TEST_CLASSES", "DeepSeekKernels.Tests.Runtime.DeviceGraphTests DeepSeekKernels.Tests.Runtime.CudaErrorTests"));

        Assert.True(run.ExitCode == 0, run.Output);
        string tests = Assert.Single(run.Calls, c => c.StartsWith("dotnet run") && c.Contains("-xml"));
        Assert.Equal(2, tests.Split(" -class ").Length - 1);
        Assert.Contains("-class DeepSeekKernels.Tests.Runtime.DeviceGraphTests -class DeepSeekKernels.Tests.Runtime.CudaErrorTests", tests);
        string memcheck = Assert.Single(run.Calls, c => c.StartsWith("compute-sanitizer --tool memcheck"));
        Assert.Equal(1, memcheck.Split(" -class ").Length - 1); // CudaErrorTests stays out of memcheck
        Assert.Contains("-class DeepSeekKernels.Tests.Runtime.DeviceGraphTests", memcheck);

        var errorsOnly = RunScript(("DSK_STEPS", "tests sanitizer"), ("DSK_TEST_CLASSES", "DeepSeekKernels.Tests.Runtime.CudaErrorTests"));
        Assert.True(errorsOnly.ExitCode == 0, errorsOnly.Output);
        Assert.StartsWith("skipped (DSK_TEST_CLASSES", errorsOnly.Row("sanitizer"));
    }

    [Fact]
    public void MemcheckMustReportZeroErrors()
    {
        var run = RunScript(("STUB_MEMCHECK_ERRORS", "3"));

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("FAILED (memcheck did not report 0 errors)", run.Row("sanitizer"));
        Assert.Contains("next call: DSK_STEPS=\"native-build sanitizer\"", run.Summary);
    }

    [Fact]
    public void AHangingStepIsStoppedAtItsCapAndTheRunGoesOn()
    {
        var run = RunScript(("STUB_HANG", "--filter *.LinearBenchmarks.*"), ("DSK_STEP_TIMEOUT", "2"));

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("FAILED (stopped at its 2 s)", run.Row("bench-linear"));
        Assert.StartsWith("ok", run.Row("bench-attention"));
        Assert.StartsWith("ok", run.Row("bench-rmsnorm"));
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(60), $"took {run.Elapsed}");
    }

    [Fact]
    public void StepsThatNoLongerFitBeforeTheDeadlineAreNotStartedAndNamedForTheNextCall()
    {
        // Each step takes a second, needs at most 3 s (DSK_STEP_TIMEOUT), and 15 s of
        // the deadline are kept for packing: 8 s of steps.
        var run = RunScript(("STUB_SLEEP", "1"), ("DSK_STEP_TIMEOUT", "3"), ("DSK_DEADLINE", "23"));

        Assert.True(run.ExitCode == 3, run.Summary + run.Output); // nothing failed, but not everything ran
        Assert.Equal(["gpu-check-logs.tar.gz", "summary.txt"], run.OutFiles.Order());
        string[] ran = Steps.Where(s => run.Row(s).StartsWith("ok")).ToArray();
        string[] left = Steps.Where(s => run.Row(s).StartsWith("not run: out of time")).ToArray();
        Assert.Equal(Steps.Length, ran.Length + left.Length);
        Assert.InRange(ran.Length, 2, 7);
        Assert.Equal(Steps[..ran.Length], ran); // in order: nothing after the first step left out ran
        Assert.Contains($"next call: DSK_STEPS=\"native-build {string.Join(' ', left)}\"", run.Summary);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(23), $"took {run.Elapsed}, past its deadline");
    }

    [Fact]
    public void DskStepsRunsOnlyTheNamedStepsAndRefusesUnknownOnes()
    {
        var run = RunScript(("DSK_STEPS", "tests dsk-check"));

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.StartsWith("ok", run.Row("tests"));
        Assert.StartsWith("ok", run.Row("dsk-check"));
        Assert.All(Steps.Where(s => s is not "tests" and not "dsk-check"), step => Assert.StartsWith("skipped (DSK_STEPS)", run.Row(step)));

        var bad = RunScript(("DSK_STEPS", "tests bench-everything"));
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("unknown step 'bench-everything'", bad.Output);
    }
}
