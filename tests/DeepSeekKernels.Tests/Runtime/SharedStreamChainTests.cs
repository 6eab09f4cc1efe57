using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using ILGPU;
using ILGPU.Runtime;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// The shared-context design, proven: an ILGPU kernel, then a hand-CUDA kernel, then an ILGPU kernel, all on
/// one buffer and one stream with no synchronisation or copy between them.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class SharedStreamChainTests
{
    static void Scale(Index1D i, ArrayView<BFloat16> data, float factor) =>
        data[i] = BFloat16.FromBits(BFloat16.RoundToBits(Interop.FloatAsInt(Interop.IntAsFloat((uint)data[i].Bits << 16) * factor)));

    [Fact]
    public void IlgpuThenNativeThenIlgpuOnOneBuffer()
    {
        var runtime = TestDevices.RequireNative();
        var native = Ops.Create(runtime, Backend.Native);
        const int rows = 64, cols = 7168;
        var x = TestData.As<BFloat16>(TestData.Activations(rows * cols, 1));
        var w = TestData.As<BFloat16>(TestData.Weights(cols, 2));

        // host: scale by 3, RMSNorm in place, scale by 0.5
        var expected = x.Select(v => BFloat16.FromSingle(v.ToSingle() * 3f)).ToArray();
        Ops.Reference.RmsNorm<BFloat16, BFloat16>(expected, w, expected, cols, 1e-6f);
        expected = expected.Select(v => BFloat16.FromSingle(v.ToSingle() * 0.5f)).ToArray();

        var scale = runtime.Accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<BFloat16>, float>(Scale);
        using var buffer = runtime.Upload<BFloat16>(x);
        using var weight = runtime.Upload<BFloat16>(w);
        runtime.Bind();
        scale(runtime.Stream, (int)buffer.Length, buffer.View.IlgpuView, 3f);
        native.RmsNorm(buffer.View, weight.View, buffer.View, cols, 1e-6f);
        scale(runtime.Stream, (int)buffer.Length, buffer.View.IlgpuView, 0.5f);
        Compare.Close<BFloat16>(expected, buffer.ToArray(), "chain");
    }
}
