using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// The MoE layer's promise (issue 13): <see cref="Ops.MoeLayer"/> is a fixed chain of launches whose sizes depend only on
/// the token count, so one call captured into a CUDA graph replays for new inputs: each backend that runs on the GPU (hand
/// CUDA, ILGPU) runs the layer once directly (which also sizes any scratch), captures a second call, then writes three new
/// inputs into the same buffer and replays; every replay's output equals, bit for bit, a direct call on that input (the
/// kernels are deterministic), and matches the reference within the bf16 tolerance. Without a GPU the same steps run
/// directly on ILGPU's CPU accelerator and the reference (no capture), which proves the case itself here.
/// </summary>
[Collection(nameof(DeviceCollection))]
public abstract class MoeLayerStepTest
{
    const int Tokens = 6, Hidden = 64, Intermediate = 32, Experts = 16, TopK = 4;

    protected static void Steps(DeviceRuntime runtime, Ops ops, string backend)
    {
        var routing = new MoeRouting
        {
            Experts = Experts, TopK = TopK, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 2,
            NormalizeTopK = true, RoutedScalingFactor = 2.5,
        };
        using var router = runtime.Upload<BFloat16>(RandomValues(Experts * Hidden, 1, 0.3f).Select(BFloat16.FromSingle).ToArray());
        using var bias = runtime.Upload<float>(RandomValues(Experts, 2, 0.1f));
        using var gateUp = runtime.Upload<BFloat16>(RandomValues(Experts * 2 * Intermediate * Hidden, 3, 0.3f).Select(BFloat16.FromSingle).ToArray());
        using var down = runtime.Upload<BFloat16>(RandomValues(Experts * Hidden * Intermediate, 4, 0.3f).Select(BFloat16.FromSingle).ToArray());
        var layer = new MoeLayer(WeightMatrix.Dense(router.View, Experts, Hidden), bias.View, routing,
            WeightMatrix.Dense(gateUp.View, 2 * Intermediate, Hidden, Experts), null, null, WeightMatrix.Dense(down.View, Hidden, Intermediate, Experts));
        using var scratch = MoeLayerScratch.Allocate(layer, Tokens, ElementType.BF16);
        using var x = runtime.Allocate<BFloat16>(Tokens * Hidden);
        using var y = runtime.Allocate<BFloat16>(Tokens * Hidden);
        using var direct = runtime.Allocate<BFloat16>(Tokens * Hidden);
        var shared = RandomValues(Tokens * Hidden, 5).Select(BFloat16.FromSingle).ToArray(); // the shared experts' output, accumulated onto
        BFloat16[] Input(int step) => RandomValues(Tokens * Hidden, 10 + step).Select(BFloat16.FromSingle).ToArray();

        void Call(DeviceBuffer<BFloat16> destination) => ops.MoeLayer(layer, x.View, scratch, destination.View, accumulate: true);
        x.CopyFromHost(Input(0));
        y.CopyFromHost(shared);
        Call(y); // warm-up: sizes the native permutation's scratch before any capture
        runtime.Synchronize();

        using var graph = runtime.IsCuda ? runtime.CaptureGraph(() => Call(y)) : null;
        for (int step = 1; step <= 3; step++)
        {
            var input = Input(step);
            x.CopyFromHost(input);
            y.CopyFromHost(shared);
            if (graph != null)
                graph.Replay();
            else
                Call(y);
            var replayed = y.ToArray();
            direct.CopyFromHost(shared);
            Call(direct);
            Assert.Equal(direct.ToArray().Select(v => v.Bits), replayed.Select(v => v.Bits));

            // the reference on host copies of the same buffers
            var cpu = TestDevices.Cpu;
            using var hRouter = cpu.Upload<BFloat16>(router.ToArray());
            using var hBias = cpu.Upload<float>(bias.ToArray());
            using var hGateUp = cpu.Upload<BFloat16>(gateUp.ToArray());
            using var hDown = cpu.Upload<BFloat16>(down.ToArray());
            var hLayer = new MoeLayer(WeightMatrix.Dense(hRouter.View, Experts, Hidden), hBias.View, routing,
                WeightMatrix.Dense(hGateUp.View, 2 * Intermediate, Hidden, Experts), null, null, WeightMatrix.Dense(hDown.View, Hidden, Intermediate, Experts));
            using var hScratch = MoeLayerScratch.Allocate(hLayer, Tokens, ElementType.BF16);
            using var hx = cpu.Upload<BFloat16>(input);
            using var hy = cpu.Upload<BFloat16>(shared);
            Ops.Create(cpu, Backend.Reference).MoeLayer(hLayer, hx.View, hScratch, hy.View, accumulate: true);
            var expected = hy.ToArray().Select(v => (double)(float)v).ToArray();
            var actual = replayed.Select(v => (float)v).ToArray();
            Close(expected, expected.Select(v => Math.Abs(v) + 1).ToArray(), actual, $"{backend} step {step}", relative: 2e-2, absolute: 1e-3);
            Assert.True(actual.Zip(shared).Any(p => p.First != (float)p.Second), $"{backend} step {step}: nothing was added to the shared output");
        }
    }
}

/// <summary>The GPU backends, one captured MoE layer replayed for new inputs.</summary>
[NeedsCudaGpu]
public sealed class MoeLayerGraphTests : MoeLayerStepTest
{
    [DeviceTheory]
    [InlineData("native"), InlineData("ilgpu")]
    public void ACapturedMoeLayerReplaysForNewInputs(string backend)
    {
        var runtime = backend == "native" ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        Steps(runtime, Ops.Create(runtime, backend == "native" ? Backend.Native : Backend.Ilgpu), backend);
    }
}

/// <summary>The same steps without a graph on the CPU: ILGPU's CPU accelerator and the reference.</summary>
public sealed class MoeLayerStepCpuTests : MoeLayerStepTest
{
    [Theory]
    [InlineData("ilgpu-cpu"), InlineData("reference")]
    public void MoeLayerStepsRunForNewInputs(string backend) =>
        Steps(TestDevices.Cpu, Ops.Create(TestDevices.Cpu, backend == "reference" ? Backend.Reference : Backend.Ilgpu), backend);
}
