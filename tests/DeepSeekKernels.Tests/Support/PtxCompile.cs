using System.Reflection;

namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// An ILGPU kernel compiled for a GPU on a machine without one: ILGPU's PTX backend (sm_80 and sm_90, PTX ISA 7.8, what
/// CUDA 11.8 reads) generates the kernel, and where CUDA's ptxas is on the PATH it assembles the PTX (no error, spills
/// reported). This catches constructs ILGPU's CPU accelerator accepts and its CUDA backend does not; it is not a run on a
/// GPU (the IlgpuCuda conformance classes are).
/// </summary>
public static class PtxCompile
{
    /// <summary>
    /// Compiles the explicitly grouped kernel <paramref name="method"/> (generic arguments bound) for sm_80 and sm_90 and
    /// assembles it with ptxas where installed; returns the sm_90 PTX. <paramref name="name"/> names it in messages and files.
    /// <paramref name="implicitlyGrouped"/>: an auto-grouped kernel (its first parameter the Index1D) instead.
    /// </summary>
    public static string CompileAndAssemble(MethodInfo method, string name, Action<string> log, bool implicitlyGrouped = false)
    {
        using var context = ILGPU.Context.Create(builder =>
            ILGPU.AlgorithmContext.EnableAlgorithms(ILGPU.Runtime.Cuda.CudaContextExtensions.Cuda(builder)).Optimize(ILGPU.OptimizationLevel.O2));
        string ptx = "";
        foreach (var (arch, archName) in new[] { (ILGPU.Runtime.Cuda.CudaArchitecture.SM_80, "sm_80"), (ILGPU.Runtime.Cuda.CudaArchitecture.SM_90, "sm_90") })
        {
            using var backend = new ILGPU.Backends.PTX.PTXBackend(context, arch, ILGPU.Runtime.Cuda.CudaInstructionSet.ISA_78, null!);
            var entry = implicitlyGrouped ? ILGPU.Backends.EntryPoints.EntryPointDescription.FromImplicitlyGroupedKernel(method)
                : ILGPU.Backends.EntryPoints.EntryPointDescription.FromExplicitlyGroupedKernel(method);
            var compiled = (ILGPU.Backends.PTX.PTXCompiledKernel)backend.Compile(entry, default);
            ptx = compiled.PTXAssembly;
            Assert.Contains(".entry", ptx);
            if (Environment.GetEnvironmentVariable("DSK_DUMP_PTX") is { } dump)
                File.WriteAllText(Path.Combine(dump, $"{name}-{archName}.ptx"), ptx);
            string? ptxas = Ptxas();
            if (ptxas == null)
                continue;
            string file = Path.Combine(Path.GetTempPath(), $"dsk-{name}-{archName}-{Environment.ProcessId}.ptx");
            File.WriteAllText(file, ptx);
            try
            {
                var start = new System.Diagnostics.ProcessStartInfo(ptxas, ["-arch=" + archName, "-v", "--warn-on-spills", file, "-o", "/dev/null"])
                {
                    RedirectStandardError = true, RedirectStandardOutput = true,
                };
                using var process = System.Diagnostics.Process.Start(start)!;
                string output = process.StandardError.ReadToEnd() + process.StandardOutput.ReadToEnd();
                process.WaitForExit();
                log($"{archName}: {output.Trim()}");
                Assert.True(process.ExitCode == 0, $"ptxas {archName} failed on {name}:\n{output}");
            }
            finally
            {
                File.Delete(file);
            }
        }
        return ptx;
    }

    static string? Ptxas()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            string candidate = Path.Combine(dir, "ptxas");
            if (dir.Length > 0 && File.Exists(candidate))
                return candidate;
        }
        return null;
    }
}
