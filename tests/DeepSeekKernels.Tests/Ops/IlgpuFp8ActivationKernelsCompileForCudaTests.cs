using System.Reflection;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The ILGPU W8A8 kernels (the activation quantiser, LinearW8A8's and GroupedLinearW8A8's products) compiled for sm_80 and
/// sm_90 on a machine without a GPU and assembled by ptxas where CUDA is installed (<see cref="PtxCompile"/>), for f32 and
/// bf16 activations: the CUDA backend of ILGPU runs them on a GPU, which none of the CPU tests reach.
/// </summary>
public class IlgpuFp8ActivationKernelsCompileForCudaTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Kernels()
    {
        var data = new TheoryData<string, string>();
        foreach (string kernel in (string[])["QuantizeKernel", "LinearKernel", "GroupedLinearKernel"])
            foreach (string type in (string[])["f32", "bf16"])
                data.Add(kernel, type);
        return data;
    }

    [Theory, MemberData(nameof(Kernels))]
    public void TheKernelCompilesToPtxAndAssembles(string kernel, string type)
    {
        var t = type == "f32" ? typeof(float) : typeof(BFloat16);
        var method = typeof(Fp8ActivationIlgpu).GetMethod(kernel, BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(t, ElementCodecs.CodecFor(t));
        PtxCompile.CompileAndAssemble(method, $"Fp8{kernel}-{type}", output.WriteLine, implicitlyGrouped: kernel == "LinearKernel");
    }
}
