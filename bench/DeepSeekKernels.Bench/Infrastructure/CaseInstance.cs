using BenchmarkDotNet.Running;

namespace DeepSeekKernels.Bench.Infrastructure;

/// <summary>For report columns: a fresh instance of a case's benchmark class with the case's parameters set.</summary>
public static class CaseInstance
{
    /// <summary>The instance as <typeparamref name="T"/>, or null where the class does not implement it.</summary>
    public static T? Of<T>(BenchmarkCase benchmarkCase) where T : class
    {
        if (Activator.CreateInstance(benchmarkCase.Descriptor.Type) is not T instance)
            return null;
        foreach (var parameter in benchmarkCase.Parameters.Items)
            benchmarkCase.Descriptor.Type.GetField(parameter.Name)?.SetValue(instance, parameter.Value);
        return instance;
    }
}
