using System.Text.RegularExpressions;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// The suite covers every op on every backend: an abstract <c>XConformance</c> per op of <see cref="Ops.OpNames"/> (RMSNorm
/// and AddRmsNorm: RmsNormBackendTests) with its four sealed subclasses, the two GPU ones marked
/// <see cref="NeedsCudaGpuAttribute"/>. And scripts/gpu-check.sh runs the GPU classes by name (with DSK_REQUIRE_GPU=1, then under memcheck), and a name that
/// matches no class runs nothing without a word: so every GPU conformance class must be listed there, and every listed
/// conformance class must exist.
/// </summary>
public sealed partial class ConformanceCoverageTests
{
    [GeneratedRegex(@"-class (DeepSeekKernels\.Tests\.Conformance\.\w+)")]
    private static partial Regex ConformanceClass();

    [Fact]
    public void EveryOpHasAConformanceClassOnEveryBackend()
    {
        var assembly = typeof(ConformanceTest).Assembly;
        Type Find(string name) => assembly.GetType(name) ?? throw new Xunit.Sdk.XunitException($"{name} is missing");
        foreach (string op in Ops.OpNames)
        {
            if (op is "RmsNorm" or "AddRmsNorm")
            {
                var rmsNorm = typeof(RmsNorm.RmsNormBackendTests);
                Assert.Equal(5, assembly.GetTypes().Count(t => t.IsSealed && t.IsSubclassOf(rmsNorm)));
                continue;
            }
            var abstractClass = Find($"{typeof(ConformanceTest).Namespace}.{op}Conformance");
            Assert.True(abstractClass.IsAbstract && abstractClass.IsSubclassOf(typeof(ConformanceTest)), abstractClass.Name);
            foreach (var (backend, gpu) in new[] { ("Reference", false), ("Cpu", false), ("IlgpuCpu", false), ("IlgpuCuda", true), ("Native", true) })
            {
                var subclass = Find($"{abstractClass.Namespace}.{op}{backend}Conformance");
                Assert.True(subclass.IsSealed && subclass.BaseType == abstractClass, subclass.Name);
                Assert.Equal(gpu, subclass.IsDefined(typeof(NeedsCudaGpuAttribute), false));
            }
        }
    }

    [Fact]
    public void GpuCheckRunsEveryGpuConformanceClassAndNoOther()
    {
        string script = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "scripts", "gpu-check.sh"));
        var listed = ConformanceClass().Matches(script).Select(m => m.Groups[1].Value).ToHashSet();
        var types = typeof(ConformanceTest).Assembly.GetTypes().Where(t => t.Namespace == typeof(ConformanceTest).Namespace).ToArray();
        var gpuClasses = types.Where(t => t.IsSealed && t.IsSubclassOf(typeof(ConformanceTest)) && t.IsDefined(typeof(NeedsCudaGpuAttribute), false))
            .Select(t => t.FullName!).ToArray();

        // every op but the two RMSNorms (RmsNormBackendTests), and the MoE layer's chain (MoeLayerConformance): two GPU backends each
        Assert.Equal(2 * (Ops.OpNames.Count - 2 + 1), gpuClasses.Length);
        Assert.All(gpuClasses, name => Assert.Contains(name, listed));
        Assert.All(listed, name => Assert.Contains(name, types.Select(t => t.FullName)));
        Assert.Contains(typeof(SupportTableTests).FullName!, listed);
    }
}
