using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Conformance;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// The engine's promise for decode (issue 10, 12): a step's attention reads its metadata (slot mapping, lengths, query
/// offsets, block table) where it lies on the device, so a decode step (KvAppend + PagedAttention, and the MLA form) captured
/// once into a CUDA graph replays at the next position when only the metadata buffers' contents change. Each backend that
/// runs on the GPU (hand CUDA, ILGPU) captures one step after a warm-up run (which sizes its split-K scratch) and replays it
/// for several positions; every replay's output matches float64 over the keys appended so far, and the cache holds every
/// appended row. The GPU cases need a CUDA GPU (skipped without one, a failure under DSK_REQUIRE_GPU=1); the same steps run
/// without a graph on ILGPU's CPU accelerator and the reference, which proves the case itself here.
/// </summary>
[Collection(nameof(DeviceCollection))]
public abstract class PagedDecodeStepTest
{
    const int PageSize = 16, Pages = 6, QHeads = 8, KvHeads = 2, HeadDim = 64, Width = KvHeads * HeadDim, Start = 29, Steps = 5;
    static readonly int[] Table = [4, 1, 5, 0]; // the sequence's pages, out of order; pages 2 and 3 stay NaN

    /// <summary>
    /// A decode step at positions Start .. Start + Steps - 1 of one sequence over a bf16 pool, its new key (and value) and
    /// metadata written into the same device buffers before each step: on a CUDA runtime the step after the first is
    /// captured once and replayed, elsewhere it runs directly. <paramref name="backend"/> names the case in messages.
    /// </summary>
    protected static void DecodeSteps(DeviceRuntime runtime, Ops ops, string backend, bool mla)
    {
        bool capture = runtime.IsCuda;
        int keyWidth = mla ? 72 : Width, latent = 64; // MLA: rows of 64 latent + 8 rope, one kv head, values the latent part
        int qWidth = mla ? keyWidth : HeadDim, outWidth = mla ? latent : HeadDim;
        float scale = 1f / MathF.Sqrt(qWidth);

        // the pool: positions 0 .. Start - 1 already cached (bf16), every other slot NaN
        var history = RandomValues((Start + Steps) * keyWidth, 3);
        var valuesHistory = RandomValues((Start + Steps) * Width, 4);
        var keyPool = Enumerable.Repeat(BFloat16.NaN, Pages * PageSize * keyWidth).ToArray();
        var valuePool = Enumerable.Repeat(BFloat16.NaN, Pages * PageSize * Width).ToArray();
        int SlotOf(int p) => Table[p / PageSize] * PageSize + p % PageSize;
        for (int p = 0; p < Start; p++)
        {
            for (int e = 0; e < keyWidth; e++)
                keyPool[SlotOf(p) * keyWidth + e] = BFloat16.FromSingle(history[p * keyWidth + e]);
            for (int e = 0; e < Width; e++)
                valuePool[SlotOf(p) * Width + e] = BFloat16.FromSingle(valuesHistory[p * Width + e]);
        }
        using var keyPages = runtime.Upload<BFloat16>(keyPool);
        using var valuePages = runtime.Upload<BFloat16>(valuePool);
        using var table = runtime.Upload<int>(Table);
        using var slot = runtime.Upload<int>([SlotOf(Start)]);
        using var length = runtime.Upload<int>([Start + 1]);
        using var starts = runtime.Upload<int>([0, 1]);
        using var key = runtime.Allocate<BFloat16>(keyWidth);
        using var value = runtime.Allocate<BFloat16>(Width);
        int heads = mla ? QHeads : QHeads;
        var q = RandomValues(heads * qWidth, 5).Select(BFloat16.FromSingle).ToArray();
        using var dq = runtime.Upload<BFloat16>(q);
        using var y = runtime.Allocate<float>(heads * outWidth);
        var batch = new PagedBatch(table.View, length.View, starts.View);
        var kp = keyPages.AsTensor(Pages, PageSize, keyWidth);
        var vp = valuePages.AsTensor(Pages, PageSize, Width);

        void Step()
        {
            if (mla)
            {
                ops.KvAppend(key.AsTensor(1, keyWidth), default, slot.View, kp, default);
                ops.PagedMlaAttention(dq.AsTensor(1, heads, qWidth), kp, batch, y.AsTensor(1, heads, outWidth), scale);
            }
            else
            {
                ops.KvAppend(key.AsTensor(1, keyWidth), value.AsTensor(1, Width), slot.View, kp, vp);
                ops.PagedAttention(dq.AsTensor(1, heads, qWidth), kp, vp, batch, y.AsTensor(1, heads, outWidth), KvHeads, scale);
            }
        }

        void Load(int position)
        {
            key.CopyFromHost(history.AsSpan(position * keyWidth, keyWidth).ToArray().Select(BFloat16.FromSingle).ToArray());
            value.CopyFromHost(valuesHistory.AsSpan(position * Width, Width).ToArray().Select(BFloat16.FromSingle).ToArray());
            slot.CopyFromHost([SlotOf(position)]);
            length.CopyFromHost([position + 1]);
            y.CopyFromHost(Nan(heads * outWidth));
        }

        Load(Start);
        Step(); // compiles the kernels and sizes the split-K scratch before the capture
        runtime.Synchronize();
        Check(Start);
        using var graph = capture ? runtime.CaptureGraph(Step) : null;
        for (int position = Start + 1; position < Start + Steps; position++)
        {
            Load(position);
            if (graph != null)
                graph.Replay();
            else
                Step();
            runtime.Synchronize();
            Check(position);
        }

        void Check(int position)
        {
            var rk = history.Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray();
            var rv = valuesHistory.Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray();
            var expected = new double[heads * outWidth];
            var magnitude = new double[heads * outWidth];
            int group = mla ? heads : QHeads / KvHeads;
            for (int h = 0; h < heads; h++)
            {
                int kvh = mla ? 0 : h / group;
                var qh = q.AsSpan(h * qWidth, qWidth).ToArray().Select(b => b.ToSingle()).ToArray();
                Func<int, int, float> k = mla ? (j, e) => rk[j * keyWidth + e] : (j, e) => rk[j * keyWidth + kvh * HeadDim + e];
                Func<int, int, float> v = mla ? (j, e) => rk[j * keyWidth + e] : (j, e) => rv[j * Width + kvh * HeadDim + e];
                Float64Oracles.Attend(qh, position + 1, k, v, outWidth, scale, expected.AsSpan(h * outWidth, outWidth),
                    magnitude.AsSpan(h * outWidth, outWidth));
            }
            Close(expected, magnitude, y.ToArray(), $"{backend} {(mla ? "MLA" : "GQA")} decode at position {position}",
                ConformanceTolerance.Bf16, ConformanceTolerance.Absolute);
            var pool = keyPages.ToArray();
            for (int p = 0; p <= position; p++)
                for (int e = 0; e < keyWidth; e++)
                    Assert.Equal(BFloat16.FromSingle(history[p * keyWidth + e]).Bits, pool[SlotOf(p) * keyWidth + e].Bits);
        }
    }
}

/// <summary>The captured step on both GPU backends (hand CUDA, ILGPU over CUDA), GQA and MLA.</summary>
[NeedsCudaGpu]
public sealed class PagedDecodeGraphTests : PagedDecodeStepTest
{
    [DeviceTheory]
    [InlineData("native", false)]
    [InlineData("native", true)]
    [InlineData("ilgpu", false)]
    [InlineData("ilgpu", true)]
    public void ACapturedDecodeStepReplaysAtTheNextPositions(string backend, bool mla)
    {
        var runtime = backend == "native" ? TestDevices.RequireNative() : TestDevices.RequireCuda();
        DecodeSteps(runtime, Ops.Create(runtime, backend == "native" ? Backend.Native : Backend.Ilgpu), backend, mla);
    }
}

/// <summary>The same steps run directly on ILGPU's CPU accelerator and the reference: the case itself, proven without a GPU.</summary>
public sealed class PagedDecodeStepCpuTests : PagedDecodeStepTest
{
    [Theory]
    [InlineData("ilgpu-cpu", false)]
    [InlineData("ilgpu-cpu", true)]
    [InlineData("reference", false)]
    [InlineData("reference", true)]
    public void DecodeStepsRunAtTheNextPositionsWithOnlyTheMetadataChanged(string backend, bool mla) =>
        DecodeSteps(TestDevices.Cpu, Ops.Create(TestDevices.Cpu, backend == "reference" ? Backend.Reference : Backend.Ilgpu), backend, mla);
}
