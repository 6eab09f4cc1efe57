using System.Reflection;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The ILGPU attention kernels (RoPE, KV append, paged attention's warp kernel, its vector kernel for GQA, the split
/// combine) compiled for sm_80 and sm_90 on a machine without a GPU, and assembled by ptxas where CUDA is installed
/// (<see cref="PtxCompile"/>): every element-type specialisation the backend loads, and each lane shape of the two
/// attention kernels. The vector kernel must read K/V in 16-byte loads.
/// </summary>
public class IlgpuAttentionKernelsCompileForCudaTests(ITestOutputHelper output)
{
    static Type Of(string name) => name switch
    {
        "f32" => typeof(float),
        "bf16" => typeof(BFloat16),
        _ => typeof(IlgpuBackend).Assembly.GetType("DeepSeekKernels.Ilgpu." + name, throwOnError: true)!,
    };

    static Type Codec(string element) => ElementCodecs.CodecFor(Of(element));

    public static TheoryData<string, string> Kernels()
    {
        var data = new TheoryData<string, string>();
        foreach (string x in (string[])["f32", "bf16"])
            data.Add("Rope", x);
        foreach (string rows in (string[])["f32", "bf16"])
            foreach (string pages in (string[])["f32", "bf16"])
                data.Add("KvAppend", $"{rows}/{pages}");
        // q / pages / output / lanes of the warp kernel (MLA and rows the vector kernel does not take)
        foreach (string c in (string[])["bf16/bf16/bf16/FourPerLane", "f32/f32/f32/SixteenPerLane", "f32/bf16/bf16/SixteenPerLane", "bf16/f32/f32/FourPerLane"])
            data.Add("Warp", c);
        // q / pages / output / chunks per lane of the GQA vector kernel
        foreach (string c in (string[])["bf16/bf16/bf16/TwoChunks", "bf16/bf16/f32/OneChunk", "f32/f32/f32/FourChunks", "f32/bf16/bf16/EightChunks"])
            data.Add("Vector", c);
        foreach (string y in (string[])["f32", "bf16"])
            data.Add("Combine", y);
        return data;
    }

    [Theory, MemberData(nameof(Kernels))]
    public void TheKernelCompilesToPtxAndAssembles(string kernel, string types)
    {
        var t = types.Split('/');
        const BindingFlags flags = BindingFlags.NonPublic | BindingFlags.Static;
        MethodInfo method = kernel switch
        {
            "Rope" => typeof(RopeIlgpu).GetMethod("Kernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0])),
            "KvAppend" => typeof(KvAppendIlgpu).GetMethod("Kernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0]), Of(t[1]), Codec(t[1])),
            "Warp" => typeof(PagedAttentionIlgpu).GetMethod("Kernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0]), Of(t[1]), Codec(t[1]),
                Of(t[2]), Codec(t[2]), Of(t[3])),
            "Vector" => typeof(PagedAttentionIlgpu).GetMethod("VectorKernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0]),
                VectorCodecs.ActivationFor(Of(t[1]))!, Of(t[2]), Codec(t[2]), Of(t[3])),
            _ => typeof(PagedAttentionIlgpu).GetMethod("CombineKernel", flags)!.MakeGenericMethod(Of(t[0]), Codec(t[0])),
        };
        string ptx = PtxCompile.CompileAndAssemble(method, $"{kernel}-{types.Replace('/', '-')}", output.WriteLine);
        if (kernel == "Vector")
            Assert.Matches(@"ld\.global(\.nc)?\.v4\.(u32|b32)", ptx); // K and V rows in 16-byte loads
    }
}
