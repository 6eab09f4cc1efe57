using System.Reflection;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The ILGPU MoE kernels (routing, the four permutation launches, combine) compiled for sm_80 and sm_90 on a machine without
/// a GPU and assembled by ptxas where CUDA is installed (<see cref="PtxCompile"/>), every element-type specialisation the
/// backend loads. GroupedLinear and GroupedLinearSiluMul run LinearIlgpu's gemv and tiled kernels, which
/// IlgpuWeightKernelsCompileForCudaTests compiles in every specialisation (the grouped tile mapping is in their bodies).
/// The permutation's row copy must move rows in 16-byte loads.
/// </summary>
public class IlgpuMoeKernelsCompileForCudaTests(ITestOutputHelper output)
{
    static Type Of(string name) => name == "f32" ? typeof(float) : typeof(BFloat16);

    static Type Codec(string element) => ElementCodecs.CodecFor(Of(element));

    public static TheoryData<string, string> Kernels()
    {
        var data = new TheoryData<string, string>();
        foreach (string logits in (string[])["f32", "bf16"])
            data.Add("Route", logits);
        data.Add("Count", "");
        data.Add("Scan", "");
        data.Add("Scatter", "");
        foreach (string x in (string[])["f32", "bf16"])
            foreach (string y in (string[])["f32", "bf16"])
            {
                data.Add("Copy", $"{x}/{y}");
                data.Add("Combine", $"{x}/{y}");
            }
        return data;
    }

    [Theory, MemberData(nameof(Kernels))]
    public void TheKernelCompilesToPtxAndAssembles(string kernel, string types)
    {
        var t = types.Split('/');
        const BindingFlags flags = BindingFlags.NonPublic | BindingFlags.Static;
        MethodInfo method = kernel switch
        {
            "Route" => typeof(MoeRouteIlgpu).GetMethod("Kernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0])),
            "Count" => typeof(MoePermuteIlgpu).GetMethod("CountKernel", flags)!,
            "Scan" => typeof(MoePermuteIlgpu).GetMethod("ScanKernel", flags)!,
            "Scatter" => typeof(MoePermuteIlgpu).GetMethod("ScatterKernel", flags)!,
            "Copy" => typeof(MoePermuteIlgpu).GetMethod("CopyKernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0]), Of(t[1]), Codec(t[1])),
            _ => typeof(MoeCombineIlgpu).GetMethod("Kernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0]), Of(t[1]), Codec(t[1])),
        };
        string ptx = PtxCompile.CompileAndAssemble(method, $"Moe{kernel}-{types.Replace('/', '-')}", output.WriteLine);
        if (kernel == "Copy")
            Assert.Matches(@"ld\.global(\.nc)?\.v4\.(u32|b32)", ptx); // rows in 16-byte units where x and permuted share a dtype
    }
}
