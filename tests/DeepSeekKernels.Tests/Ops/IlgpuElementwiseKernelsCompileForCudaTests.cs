using System.Reflection;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The ILGPU small-op kernels (Add, Scale, SiluAndMul, CopyColumns: auto-grouped; Softmax: one group per row) compiled for
/// sm_80 and sm_90 on a machine without a GPU, and assembled by ptxas where CUDA is installed (<see cref="PtxCompile"/>):
/// each element-type specialisation the backend loads (f32, bf16).
/// </summary>
public class IlgpuElementwiseKernelsCompileForCudaTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Kernels()
    {
        var data = new TheoryData<string, string>();
        foreach (string kernel in (string[])["AddKernel", "ScaleKernel", "SiluAndMulKernel", "CopyColumnsKernel", "SoftmaxKernel"])
            foreach (string element in (string[])["f32", "bf16"])
                data.Add(kernel, element);
        return data;
    }

    [Theory, MemberData(nameof(Kernels))]
    public void TheKernelCompilesToPtxAndAssembles(string kernel, string element)
    {
        var type = element == "f32" ? typeof(float) : typeof(BFloat16);
        var method = typeof(ElementwiseIlgpu).GetMethod(kernel, BindingFlags.NonPublic | BindingFlags.Static)!;
        method = method.GetGenericArguments().Length == 1 ? method.MakeGenericMethod(type)
            : method.MakeGenericMethod(type, ElementCodecs.CodecFor(type));
        string ptx = PtxCompile.CompileAndAssemble(method, $"{kernel}-{element}", output.WriteLine, implicitlyGrouped: kernel != "SoftmaxKernel");
        if (element == "bf16" && kernel != "CopyColumnsKernel")
            Assert.Matches(@"ld\.global(\.nc)?\.u16|ld\.global(\.nc)?\.b16", ptx); // bf16 read as 16-bit raw bits
    }
}
