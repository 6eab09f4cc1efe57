using System.Reflection;
using System.Runtime.CompilerServices;
using DeepSeekKernels.Tests.Bindings;
using DeepSeekKernels.Tests.RmsNorm;
using Xunit.Runner.Common;
using Xunit.Sdk;
using Xunit.v3;

namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// Without a CUDA GPU, a GPU theory is one skipped test, not one per data row (before this, 229 skips and about
/// 690 lines of "No CUDA GPU found" buried the summary); with one, every row still runs as its own test.
/// </summary>
public class DeviceTheoryTests
{
    static readonly MethodInfo[] CudaEntryPoints = [((Func<object>)TestDevices.RequireCuda).Method, ((Func<object>)TestDevices.RequireNative).Method];

    /// <summary>
    /// Every theory that asks for a CUDA GPU (its own body calls TestDevices.RequireCuda or RequireNative, or it is
    /// inherited by a backend subclass whose own methods do) is a [DeviceTheory] with [NeedsCudaGpu] on its class
    /// or method; and [NeedsCudaGpu] marks nothing else, where it would do nothing.
    /// </summary>
    [Fact]
    public void EveryTheoryThatNeedsACudaGpuIsADeviceTheoryMarkedSo()
    {
        var needsGpu = new List<string>();
        var wrong = new List<string>();
        foreach (var type in typeof(DeviceTheoryTests).Assembly.GetTypes().Where(t => t is { IsClass: true, IsAbstract: false }))
        {
            const BindingFlags declared = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
            bool backendNeedsGpu = type.GetMethods(declared).Any(CallsForACudaGpu);
            bool classMarked = type.IsDefined(typeof(NeedsCudaGpuAttribute));
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance))
            {
                var fact = method.GetCustomAttribute<FactAttribute>();
                bool methodMarked = method.IsDefined(typeof(NeedsCudaGpuAttribute));
                string name = $"{type.Name}.{method.Name}";
                if (fact is TheoryAttribute && (CallsForACudaGpu(method) || (backendNeedsGpu && method.DeclaringType != type)))
                {
                    needsGpu.Add(name);
                    if (fact is not DeviceTheoryAttribute || !(classMarked || methodMarked))
                        wrong.Add($"{name}: needs a CUDA GPU; make it [DeviceTheory] and mark it or its class [NeedsCudaGpu]");
                }
                else if (methodMarked || (classMarked && fact is TheoryAttribute and not DeviceTheoryAttribute))
                    wrong.Add($"{name}: [NeedsCudaGpu] applies only to [DeviceTheory] theories");
            }
        }

        // The scan sees both patterns: a theory inherited by a CUDA subclass, and one that asks for the GPU itself.
        Assert.Contains("RmsNormNativeTests.RmsNormMatchesReference", needsGpu);
        Assert.Contains("CublasAndNvmlTests.GemmNTMatchesAFloat64LoopOnTheRuntimeStream", needsGpu);
        Assert.DoesNotContain("RmsNormIlgpuCpuTests.RmsNormMatchesReference", needsGpu);
        Assert.True(wrong.Count == 0, string.Join(Environment.NewLine, wrong));
    }

    /// <summary>
    /// What discovery makes of a theory: without a GPU, one skipped test (one failed under DSK_REQUIRE_GPU=1) whose
    /// name says how many cases it stands for; with a GPU, or in a class that needs none, one test per data row.
    /// </summary>
    [Theory]
    [InlineData(typeof(RmsNormNativeTests), nameof(RmsNormBackendTests.RmsNormMatchesReference), true)]
    [InlineData(typeof(RmsNormIlgpuCudaTests), nameof(RmsNormBackendTests.InPlaceGivesTheSameResults), true)]
    [InlineData(typeof(RmsNormIlgpuCpuTests), nameof(RmsNormBackendTests.RmsNormMatchesReference), false)]
    [InlineData(typeof(CublasAndNvmlTests), nameof(CublasAndNvmlTests.GemmNTMatchesAFloat64LoopOnTheRuntimeStream), true)]
    public async Task WithoutAGpuAGpuTheoryIsOneTestNamingItsCases(Type testClass, string methodName, bool needsGpu)
    {
        var testMethod = TestMethod(testClass, methodName);
        int cases = 0;
        foreach (var data in testMethod.DataAttributes)
            cases += (await data.GetData(testMethod.Method, new DisposalTracker())).Count;
        Assert.True(cases >= 2, $"{methodName} has {cases} cases");

        var options = TestFrameworkOptions.ForDiscovery(new TestAssemblyConfiguration { PreEnumerateTheories = true });
        var testCases = await new DeviceTheoryDiscoverer().Discover(options, testMethod, testMethod.FactAttributes.Single());

        Assert.Equal(needsGpu, DeviceTheoryDiscoverer.NeedsCudaGpu(testMethod));
        if (!needsGpu || TestDevices.HasCuda)
        {
            Assert.Equal(cases, testCases.Count);
            Assert.All(testCases, t => Assert.Null(t.SkipReason));
            Assert.All(testCases, t => Assert.IsType<XunitTestCase>(t, exactMatch: true));
            return;
        }
        var testCase = Assert.Single(testCases);
        Assert.Equal($"{testClass.FullName}.{methodName} ({cases} cases; need a CUDA GPU)", testCase.TestCaseDisplayName);
        Assert.Same(testClass, testCase.TestMethod.TestClass.Class);
        if (TestDevices.GpuRequired)
        {
            var failing = Assert.IsType<ExecutionErrorTestCase>(testCase);
            Assert.StartsWith(TestDevices.NoCudaReason, failing.ErrorMessage);
        }
        else
        {
            Assert.StartsWith("No CUDA GPU found", testCase.SkipReason);
        }
    }

    static XunitTestMethod TestMethod(Type testClass, string methodName)
    {
        var assembly = new XunitTestAssembly(testClass.Assembly, null, null, null, null, null, null);
        var collection = new XunitTestCollection(assembly, null, false, "discovery check");
        return new XunitTestMethod(new XunitTestClass(testClass, collection), testClass.GetMethod(methodName)!, []);
    }

    /// <summary>
    /// Whether the method's IL (or its async state machine's) calls TestDevices.RequireCuda or RequireNative. It looks
    /// at every byte that could be a `call` and resolves the token after it; an operand byte that happens to equal
    /// the opcode resolves to another method or to none.
    /// </summary>
    static bool CallsForACudaGpu(MethodInfo method)
    {
        if (method.GetCustomAttribute<AsyncStateMachineAttribute>()?.StateMachineType.GetMethod("MoveNext", BindingFlags.Instance | BindingFlags.NonPublic) is { } moveNext
            && CallsForACudaGpu(moveNext))
            return true;
        byte[]? il = method.GetMethodBody()?.GetILAsByteArray();
        if (il is null)
            return false;
        const byte call = 0x28;
        for (int i = 0; i + 4 < il.Length; i++)
        {
            if (il[i] != call)
                continue;
            try
            {
                if (CudaEntryPoints.Contains(method.Module.ResolveMethod(BitConverter.ToInt32(il, i + 1))))
                    return true;
            }
            catch (ArgumentException) { } // not a method token
        }
        return false;
    }
}
