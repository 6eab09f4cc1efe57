using System.Runtime.CompilerServices;
using Xunit.Sdk;
using Xunit.v3;

namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// Marks a test class (a CUDA backend's subclass of a per-backend test) or a test method as needing a CUDA GPU.
/// Its <see cref="DeviceTheoryAttribute"/> theories are then one skipped test where no GPU is found, not one per
/// data row. The tests themselves still call <see cref="TestDevices.RequireCuda"/> or
/// <see cref="TestDevices.RequireNative"/>, which decide at run time.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false)]
public sealed class NeedsCudaGpuAttribute : Attribute;

/// <summary>
/// A theory that may run on a CUDA GPU: a plain <see cref="TheoryAttribute"/> (one test per data row), except
/// where its class or method is marked <see cref="NeedsCudaGpuAttribute"/> and no CUDA GPU is found. There it
/// is one skipped test, "Method (N cases; need a CUDA GPU)", or one failed test under DSK_REQUIRE_GPU=1.
/// </summary>
[XunitTestCaseDiscoverer(typeof(DeviceTheoryDiscoverer))]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class DeviceTheoryAttribute(
    [CallerFilePath] string? sourceFilePath = null,
    [CallerLineNumber] int sourceLineNumber = -1) : TheoryAttribute(sourceFilePath, sourceLineNumber);

/// <summary>
/// Discovers a <see cref="DeviceTheoryAttribute"/> theory: xunit's own discovery where it can run, else one
/// test case for the whole theory. The class is the concrete test class (the subclass that inherits the theory),
/// so a marker on a CUDA subclass does not touch the CPU subclasses that share the theory.
/// </summary>
public sealed class DeviceTheoryDiscoverer : TheoryDiscoverer
{
    public override async ValueTask<IReadOnlyCollection<IXunitTestCase>> Discover(
        ITestFrameworkDiscoveryOptions discoveryOptions, IXunitTestMethod testMethod, IFactAttribute factAttribute)
    {
        if (!NeedsCudaGpu(testMethod) || TestDevices.HasCuda || factAttribute.Skip is not null)
            return await base.Discover(discoveryOptions, testMethod, factAttribute);

        int cases = await CountCases(testMethod);
        var details = TestIntrospectionHelper.GetTestCaseDetails(discoveryOptions, testMethod, factAttribute);
        string displayName = $"{details.TestCaseDisplayName} ({cases} case{(cases == 1 ? "" : "s")}; need a CUDA GPU)";
        IXunitTestCase testCase = TestDevices.GpuRequired
            ? new ExecutionErrorTestCase(details.ResolvedTestMethod, displayName, details.UniqueID,
                details.SourceFilePath, details.SourceLineNumber, TestDevices.NoCudaReason + " " + TestDevices.GpuRequiredNote)
            : new XunitTestCase(details.ResolvedTestMethod, displayName, details.UniqueID, details.Explicit,
                skipReason: TestDevices.NoCudaReason, traits: Traits(testMethod),
                sourceFilePath: details.SourceFilePath, sourceLineNumber: details.SourceLineNumber);
        return [testCase];
    }

    /// <summary>The marker on the concrete test class or on the method.</summary>
    public static bool NeedsCudaGpu(IXunitTestMethod testMethod) =>
        testMethod.TestClass.Class.IsDefined(typeof(NeedsCudaGpuAttribute), inherit: true)
        || testMethod.Method.IsDefined(typeof(NeedsCudaGpuAttribute), inherit: true);

    static Dictionary<string, HashSet<string>> Traits(IXunitTestMethod testMethod) =>
        testMethod.Traits.ToDictionary(t => t.Key, t => t.Value.ToHashSet(StringComparer.OrdinalIgnoreCase), StringComparer.OrdinalIgnoreCase);

    /// <summary>The number of data rows the theory would have run (for the display name only).</summary>
    static async ValueTask<int> CountCases(IXunitTestMethod testMethod)
    {
        await using var disposalTracker = new DisposalTracker();
        int count = 0;
        foreach (var dataAttribute in testMethod.DataAttributes)
            count += (await dataAttribute.GetData(testMethod.Method, disposalTracker))?.Count ?? 0;
        return count;
    }
}
