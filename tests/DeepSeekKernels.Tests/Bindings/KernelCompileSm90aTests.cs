using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Bindings;

/// <summary>
/// The hand-CUDA kernels compiled with a CUDA 12 toolkit for sm_90a, on a machine without a GPU. CI's compiler (Debian 12's
/// CUDA 11.8) knows neither sm_90a (Hopper's wgmma, dsk_linear_fp8_w8a8's wgmma family) nor PTX ISA 8.4 (the FP8 mma.sync
/// path), and the GPU machine builds with CUDA 13 for sm_90a: without this, that code would be compiled for the first time in
/// a GPU session's few minutes. The toolkit comes from <c>scripts/cuda12-toolkit.sh</c> (Debian 13's CUDA 12.4, compile only;
/// .ci/run fetches it into build/cuda12; <c>DSK_CUDA12_HOME</c> names another); without it these tests skip and say so.
/// What must hold: every kernels/*.cu and every check program compiles (the library's own flags: -Wall -Wextra, ptxas spill
/// warnings) with no error and no compiler warning; the wgmma kernels do not spill; their machine code uses the warpgroup
/// MMA (W8A8: QGMMA ... E4M3; the Linear tensor-core kernel's Hopper variants: HGMMA ... BF16), not a fallback; and the FP8
/// mma.sync path for sm_90 shows what it is lowered to there.
/// Sources whose code differs on sm_90a (<see cref="IsArchSpecific"/>: they or a project header they include test
/// DSK_SM90A_BUILT, DSK_FP8_MMA, DSK_WGMMA_DEVICE_CODE or __CUDA_ARCH_FEAT_SM90_ALL) are compiled to machine code; the
/// others only to PTX (CUDA 12's front end and NVVM, with the same warnings), since CI's CUDA 11.8 build already runs ptxas on
/// exactly their code for sm_90: their ptxas pass here cost two thirds of this class's time (linear_simt.cu alone 50 of 81 s)
/// and checked nothing new.
/// </summary>
public class KernelCompileSm90aTests(ITestOutputHelper output)
{
    static readonly Lazy<Compiled?> Build = new(CompileAll);

    sealed record Compiled(string Home, string ObjectDir, IReadOnlyDictionary<string, (int ExitCode, string Log)> Results);

    static string? Home()
    {
        string? home = Environment.GetEnvironmentVariable("DSK_CUDA12_HOME");
        if (string.IsNullOrEmpty(home))
            home = Path.Combine(RepositoryRoot.Path, "build", "cuda12");
        return File.Exists(Path.Combine(home, "bin", "nvcc")) ? home : null;
    }

    static Compiled RequireBuild()
    {
        var build = Build.Value;
        Assert.SkipWhen(build == null,
            "No CUDA 12 toolkit at build/cuda12 (or DSK_CUDA12_HOME): scripts/cuda12-toolkit.sh fetches one (.ci/run does, where Debian's archive is reachable)");
        return build!;
    }

    static Compiled? CompileAll()
    {
        string? home = Home();
        if (home == null)
            return null;
        string root = RepositoryRoot.Path;
        string objects = Path.Combine(root, "build", "sm90a-objects"); // one set per run, replaced by the next
        if (Directory.Exists(objects))
            Directory.Delete(objects, recursive: true);
        Directory.CreateDirectory(objects);
        var sources = Directory.GetFiles(Path.Combine(root, "kernels"), "*.cu")
            .Concat(Directory.GetFiles(Path.Combine(root, "kernels", "tests"), "*.cu"))
            .OrderBy(f => f, StringComparer.Ordinal).ToArray();
        var results = new ConcurrentDictionary<string, (int, string)>();
        Parallel.ForEach(sources, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) }, source =>
        {
            string name = Path.GetRelativePath(Path.Combine(root, "kernels"), source);
            bool machineCode = IsArchSpecific(source);
            var start = new ProcessStartInfo(Path.Combine(home, "bin", "nvcc"),
            [
                "-std=c++17", "-O3", "-arch=sm_90a", machineCode ? "-c" : "-ptx", "-Xcompiler=-Wall,-Wextra", "-Xptxas=--warn-on-spills",
                "-DDSK_FP8_MMA=1", "-DDSK_SM90A_BUILT=1",
                "-I", Path.Combine(root, "kernels", "include"), "-I", Path.Combine(root, "kernels"), "-I", Path.Combine(root, "kernels", "tests"),
                source, "-o", Path.Combine(objects, name.Replace('/', '_') + (machineCode ? ".o" : ".ptx")),
            ])
            { RedirectStandardError = true, RedirectStandardOutput = true };
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string log = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            results[name] = (process.ExitCode, (log + stderr.Result).Trim());
        });
        return new Compiled(home, objects, results);
    }

    static readonly Regex ArchTest = new(@"^\s*#\s*(if|ifdef|ifndef|elif)\b.*\b(DSK_SM90A_BUILT|DSK_FP8_MMA|DSK_WGMMA_DEVICE_CODE|__CUDA_ARCH_FEAT_SM90_ALL)\b",
        RegexOptions.Multiline);
    static readonly Regex ProjectInclude = new(@"^\s*#\s*include\s*""([^""]+)""", RegexOptions.Multiline);

    /// <summary>
    /// Whether <paramref name="source"/>'s code differs on sm_90a: it, or a project header it includes (directly or not;
    /// looked up beside it, then in kernels/, kernels/include and kernels/tests), tests one of the sm_90a / FP8-MMA macros.
    /// </summary>
    internal static bool IsArchSpecific(string source)
    {
        string kernels = Path.Combine(RepositoryRoot.Path, "kernels");
        string[] searched = [kernels, Path.Combine(kernels, "include"), Path.Combine(kernels, "tests")];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Path.GetFullPath(source)]);
        while (pending.Count > 0)
        {
            string file = pending.Pop();
            if (!seen.Add(file))
                continue;
            string text = File.ReadAllText(file);
            if (ArchTest.IsMatch(text))
                return true;
            foreach (Match include in ProjectInclude.Matches(text))
            {
                string? found = new[] { Path.GetDirectoryName(file)! }.Concat(searched)
                    .Select(d => Path.GetFullPath(Path.Combine(d, include.Groups[1].Value))).FirstOrDefault(File.Exists);
                if (found != null)
                    pending.Push(found);
            }
        }
        return false;
    }

    static string Sass(Compiled build, string objectName)
    {
        var start = new ProcessStartInfo(Path.Combine(build.Home, "bin", "cuobjdump"), ["-sass", Path.Combine(build.ObjectDir, objectName)])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string sass = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"cuobjdump failed on {objectName}: {stderr.Result}");
        return sass;
    }

    /// <summary>The SASS of each kernel (function name -> its instructions' opcodes) in <paramref name="sass"/>.</summary>
    static Dictionary<string, List<string>> Functions(string sass)
    {
        var functions = new Dictionary<string, List<string>>();
        List<string>? current = null;
        foreach (string line in sass.Split('\n'))
        {
            var header = Regex.Match(line, @"Function : (\S+)");
            if (header.Success)
                functions[header.Groups[1].Value] = current = [];
            else if (current != null && Regex.Match(line, @"^\s+/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.x]+)") is { Success: true } op)
                current.Add(op.Groups[2].Value);
        }
        return functions;
    }

    [Fact]
    public void EveryKernelAndCheckProgramCompilesForSm90aWithoutWarnings()
    {
        var build = RequireBuild();
        var failures = new List<string>();
        foreach (var (name, (exitCode, log)) in build.Results.OrderBy(r => r.Key, StringComparer.Ordinal))
        {
            // ptxas's spill notes are reported, not failed (when every source ran ptxas here, CUDA 12.4's spilled 8-32 bytes in a
            // few kv_append, moe_permute and rms_norm instances that CUDA 11.8 keeps in registers; those now stop at PTX); every
            // other warning, and any error, fails.
            var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var spills = lines.Where(l => l.Contains("Registers are spilled")).ToArray();
            var other = lines.Where(l => !l.Contains("Registers are spilled") && !l.StartsWith("Remark: The warnings can be suppressed")
                && Regex.IsMatch(l, "warning|error", RegexOptions.IgnoreCase)).ToArray();
            output.WriteLine($"{name}: exit {exitCode}, {spills.Length} spill note(s)");
            foreach (string spill in spills)
                output.WriteLine("  " + spill.Trim());
            if (exitCode != 0 || other.Length > 0)
                failures.Add($"{name} (exit {exitCode}):\n{log}");
        }
        Assert.True(build.Results.Count >= 30, $"only {build.Results.Count} sources compiled");
        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
    }

    /// <summary>
    /// The split between machine code and PTX finds the sources it must: every tensor-core family (their mma.sync and
    /// wgmma files) and the device check, through the headers that hold the guarded code; not the SIMT kernels.
    /// </summary>
    [Fact]
    public void TheSourcesWithSm90aCodeAreTheOnesCompiledToMachineCode()
    {
        string kernels = Path.Combine(RepositoryRoot.Path, "kernels");
        var specific = Directory.GetFiles(kernels, "*.cu").Where(IsArchSpecific).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["linear_fp8_w8a8.cu", "linear_fp8_w8a8_wgmma.cu", "linear_mma.cu", "paged_attention_mma.cu", "paged_attention_wgmma.cu",
            "paged_mla_mma.cu", "paged_mla_wgmma.cu", "status.cu"], specific);
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(kernels, "tests"), "*.cu"), IsArchSpecific);
    }

    [Fact]
    public void TheW8A8WgmmaKernelRunsOnFp8WarpgroupTensorCores()
    {
        var build = RequireBuild();
        var (exitCode, log) = build.Results["linear_fp8_w8a8_wgmma.cu"];
        Assert.True(exitCode == 0, log);
        Assert.DoesNotContain("Registers are spilled", log);
        var kernels = Functions(Sass(build, "linear_fp8_w8a8_wgmma.cu.o")).Where(f => f.Key.Contains("linear_fp8_w8a8_wgmma_kernel")).ToList();
        Assert.Equal(2, kernels.Count); // f32 and bf16 outputs
        foreach (var (name, ops) in kernels)
        {
            int qgmma = ops.Count(o => o.StartsWith("QGMMA.64x128x32.F32.E4M3.E4M3"));
            output.WriteLine($"{name}: {ops.Count} instructions, {qgmma} QGMMA.64x128x32.F32.E4M3.E4M3, "
                + $"{ops.Count(o => o.StartsWith("WARPGROUP.ARRIVE"))} WARPGROUP.ARRIVE, {ops.Count(o => o.StartsWith("FENCE.VIEW.ASYNC.S"))} FENCE.VIEW.ASYNC.S");
            Assert.True(qgmma >= 4, $"{name}: {qgmma} FP8 warpgroup MMAs (want the 4 k32 steps of a k tile)");
            Assert.DoesNotContain(ops, o => o.StartsWith("HMMA") || o.StartsWith("HGMMA"));
            Assert.Contains(ops, o => o.StartsWith("FENCE.VIEW.ASYNC.S")); // cp.async writes fenced into the async proxy
        }
    }

    [Fact]
    public void TheLinearTensorCoreKernelHasAWarpgroupVariantForEveryWeightScheme()
    {
        // dsk_linear's tensor-core kernel (and dsk_grouped_linear's) is instantiated per weight scheme (bf16, FP8, INT4)
        // twice: mma.sync and, for Hopper, wgmma. The wgmma variants must multiply on HGMMA (bf16, 4 k16 steps per k tile)
        // and hold no mma.sync; the mma.sync variants no HGMMA; none may spill.
        var build = RequireBuild();
        var (exitCode, log) = build.Results["linear_mma.cu"];
        Assert.True(exitCode == 0, log);
        Assert.DoesNotContain("Registers are spilled", log);
        var kernels = Functions(Sass(build, "linear_mma.cu.o")).Where(f => f.Key.Contains("linear_mma_kernel")).ToList();
        var wgmma = kernels.Where(k => Regex.IsMatch(k.Key, @"linear_mma_kernelILi\dELb1E")).ToList();
        var mmaSync = kernels.Where(k => Regex.IsMatch(k.Key, @"linear_mma_kernelILi\dELb0E")).ToList();
        Assert.Equal(3, wgmma.Count);
        Assert.Equal(3, mmaSync.Count);
        foreach (var (name, ops) in wgmma)
        {
            int hgmma = ops.Count(o => o.StartsWith("HGMMA.64x128x16.F32.BF16"));
            output.WriteLine($"{name}: {hgmma} HGMMA.64x128x16.F32.BF16");
            Assert.True(hgmma >= 4, $"{name}: {hgmma} warpgroup MMAs");
            Assert.DoesNotContain(ops, o => o.StartsWith("HMMA"));
            Assert.Contains(ops, o => o.StartsWith("FENCE.VIEW.ASYNC.S"));
        }
        foreach (var (name, ops) in mmaSync)
        {
            Assert.Contains(ops, o => o.StartsWith("HMMA.16816.F32.BF16"));
            Assert.DoesNotContain(ops, o => o.Contains("GMMA"));
        }
    }

    [Fact]
    public void TheMlaKernelHasAWarpgroupVariantReadingVTransposedFromTheKeyTile()
    {
        // dsk_paged_mla_attention's tensor-core family: the Hopper variant (paged_mla_wgmma.cu) computes S = Q K^T on
        // HGMMA 64x64x16 and O += P V on HGMMA 64x128x16 with B transposed by the instruction (V read MN-major from the
        // key tile: .tnspB in SASS), fences its generic shared-memory writes into the async proxy, and does not spill; the
        // mma.sync variants (paged_mla_mma.cu) hold no warpgroup MMA.
        var build = RequireBuild();
        var (exitCode, log) = build.Results["paged_mla_wgmma.cu"];
        Assert.True(exitCode == 0, log);
        Assert.DoesNotContain("Registers are spilled", log);
        string sass = Sass(build, "paged_mla_wgmma.cu.o");
        var kernel = Assert.Single(Functions(sass), f => f.Key.Contains("mla_wgmma_kernel"));
        int qk = kernel.Value.Count(o => o.StartsWith("HGMMA.64x64x16.F32.BF16"));
        int pv = kernel.Value.Count(o => o.StartsWith("HGMMA.64x128x16.F32.BF16"));
        int transposed = Regex.Matches(sass, @"HGMMA\.64x128x16\.F32\.BF16 [^;]*\.tnspB").Count;
        output.WriteLine($"{kernel.Key}: {qk} HGMMA.64x64x16 (S), {pv} HGMMA.64x128x16 (P V), {transposed} of them .tnspB");
        Assert.True(qk >= 4, $"{qk} S warpgroup MMAs (want at least one 64-column sub-tile's 4 k16 steps)");
        Assert.Equal(8, pv); // 4 k16 steps of 64 keys x 2 column halves, unrolled
        Assert.Equal(pv, transposed);
        Assert.DoesNotContain(kernel.Value, o => o.StartsWith("HMMA"));
        Assert.Contains(kernel.Value, o => o.StartsWith("FENCE.VIEW.ASYNC.S"));
        var mmaSync = Functions(Sass(build, "paged_mla_mma.cu.o")).Where(f => f.Key.Contains("mla_mma_kernel")).ToList();
        Assert.Equal(2, mmaSync.Count); // one and two key-tile stages
        foreach (var (_, ops) in mmaSync)
        {
            Assert.Contains(ops, o => o.StartsWith("HMMA.16816.F32.BF16"));
            Assert.DoesNotContain(ops, o => o.Contains("GMMA"));
        }
    }

    [Fact]
    public void TheGqaPrefillKernelHasAWarpgroupVariantWithSoftmaxWeightsInRegisters()
    {
        // dsk_paged_attention's GQA tensor-core family: the Hopper variant (paged_attention_wgmma.cu, head_dim 64 and 128)
        // computes S = Q K^T on HGMMA 64x128x16 from shared memory and O += P V on HGMMA 64xDx16 with A (the softmax
        // weights) from registers and B (V) transposed by the instruction; no mma.sync, no spills.
        var build = RequireBuild();
        var (exitCode, log) = build.Results["paged_attention_wgmma.cu"];
        Assert.True(exitCode == 0, log);
        Assert.DoesNotContain("Registers are spilled", log);
        string sass = Sass(build, "paged_attention_wgmma.cu.o");
        var sections = sass.Split("Function : ").Skip(1).Where(s => s.Split('\n')[0].Contains("paged_wgmma_fwd")).ToList();
        Assert.Equal(2, sections.Count);
        foreach (string section in sections)
        {
            string name = section.Split('\n')[0].Trim();
            int d = name.Contains("ILi64E") ? 64 : 128;
            int qk = Regex.Matches(section, @"HGMMA\.64x128x16\.F32\.BF16 R\d+, gdesc\[").Count;
            int pv = Regex.Matches(section, $@"HGMMA\.64x{d}x16\.F32\.BF16 R\d+, R\d+, gdesc\[\w+\]\.tnspB").Count;
            output.WriteLine($"{name}: {qk} HGMMA.64x128x16 (S, shared-memory A), {pv} HGMMA.64x{d}x16 register-A .tnspB (P V)");
            Assert.Equal(d / 16, qk);  // the k16 steps of Q K^T over head_dim, unrolled
            Assert.Equal(8, pv);       // 128 keys per tile = 8 k16 steps
            Assert.DoesNotContain("HMMA.16816", section);
            Assert.Contains("FENCE.VIEW.ASYNC.S", section);
        }
    }

    [Fact]
    public void TheFp8MmaSyncPathIsLoweredToF16TensorCoresOnHopper()
    {
        // Why the wgmma family exists: sm_90 has no FP8 mma.sync instruction; ptxas unpacks e4m3 to f16 and uses HMMA, so
        // the mma.sync family runs at the 16-bit rate on Hopper. If a toolkit ever maps it to an FP8 instruction, this fails
        // and the choice between the two families deserves a new measurement.
        var build = RequireBuild();
        var kernels = Functions(Sass(build, "linear_fp8_w8a8.cu.o")).Where(f => f.Key.Contains("linear_fp8_w8a8_kernel")).ToList();
        Assert.Equal(2, kernels.Count);
        foreach (var (name, ops) in kernels)
        {
            output.WriteLine($"{name}: {ops.Count(o => o.StartsWith("HMMA"))} HMMA, {ops.Count(o => o.StartsWith("F2FP.F16.E4M3.UNPACK"))} F2FP.F16.E4M3.UNPACK");
            Assert.Contains(ops, o => o.StartsWith("F2FP.F16.E4M3.UNPACK"));
            Assert.Contains(ops, o => o.StartsWith("HMMA.16816.F32"));
            Assert.DoesNotContain(ops, o => o.StartsWith("QMMA") || o.Contains("GMMA"));
        }
    }
}
