using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The host-span form of Rope (its cos/sin table built for the call from the RoPE parameters): on the reference, the CPU
/// backend and ILGPU's CPU accelerator, it gives bit for bit what the device-resident op gives on the same backend with a
/// table of the model's whole context (DeepSeek's YaRN with its attention factor, the rotary part inside the head, positions
/// out of order; Llama 3's frequencies half-split over whole heads), and leaves the non-rotary elements as they were. Refused
/// calls (a negative position, a length that does not divide, positions overlapping x) write nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostSpanRopeTests
{
    // DeepSeek-V3's YaRN (factor 40 over 4,096 original positions, mscale = mscale_all_dim = 1).
    static readonly RopeScaling Yarn = new()
    {
        Kind = RopeKind.Yarn, Theta = 10000, Factor = 40, OriginalMaxPositions = 4096, MaxPositions = 163840,
        BetaFast = 32, BetaSlow = 1, Mscale = 1, MscaleAllDim = 1,
    };
    static readonly RopeScaling Llama3 = new()
    {
        Kind = RopeKind.Llama3, Theta = 500000, Factor = 8, OriginalMaxPositions = 8192, MaxPositions = 131072,
        LowFreqFactor = 1, HighFreqFactor = 4,
    };


    public static TheoryData<string> Backends => new() { "reference", "cpu", "ilgpu" };

    static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => random.NextSingle() * 2 - 1)];
    }

    /// <summary>The span form and the device form (with a table of <paramref name="tablePositions"/>) on the same input.</summary>
    static (T[] Span, T[] Device) Both<T>(Ops ops, T[] x, int[] positions, RopeScaling scaling, int rotaryDim, int heads,
        int headStride, int ropeOffset, RopeLayout layout, int tablePositions) where T : unmanaged
    {
        var span = (T[])x.Clone();
        ops.Rope<T>(span, positions, scaling, rotaryDim, heads, headStride, ropeOffset, layout);
        var runtime = ops.Runtime ?? TestDevices.Cpu;
        using var table = RopeTable.Create(runtime, scaling, rotaryDim, tablePositions);
        using var dx = runtime.Upload<T>(x);
        using var dp = runtime.Upload<int>(positions);
        ops.Rope(DeviceTensor.FromView(dx.View), dp.View, table, heads, headStride, ropeOffset, layout);
        runtime.Synchronize();
        return (span, dx.View.ToArray());
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void YarnInterleavedInsideTheHeadGivesWhatTheDeviceFormGives(string backend) => RunYarn(TestDevices.CpuOps(backend));

    internal static void RunYarn(Ops ops)
    {
        // DeepSeek's q heads: [128 nope | 64 rope] shrunk to [24 | 16]; 3 tokens x 4 heads, positions out of order.
        const int heads = 4, stride = 40, offset = 24, rotary = 16;
        int[] positions = [4100, 7, 163000];
        var x = Random(positions.Length * heads * stride, 1).Select(BFloat16.FromSingle).ToArray();
        var (span, device) = Both(ops, x, positions, Yarn, rotary, heads, stride, offset, RopeLayout.Interleaved, 163840);
        Assert.Equal(device, span);
        for (int t = 0; t < positions.Length; t++)
            for (int h = 0; h < heads; h++)
            {
                int head = (t * heads + h) * stride;
                Assert.Equal(x[head..(head + offset)], span[head..(head + offset)]); // the nope part is untouched
                Assert.NotEqual(x[(head + offset)..(head + stride)], span[(head + offset)..(head + stride)]);
            }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Llama3HalfSplitOverWholeHeadsGivesWhatTheDeviceFormGives(string backend) => RunLlama3(TestDevices.CpuOps(backend));

    internal static void RunLlama3(Ops ops)
    {
        const int heads = 2, dim = 32;
        int[] positions = [0, 1, 9000, 12];
        var x = Random(positions.Length * heads * dim, 2);
        var (span, device) = Both(ops, x, positions, Llama3, dim, heads, dim, 0, RopeLayout.HalfSplit, 131072);
        Assert.Equal(device, span);
        Assert.Equal(x[..(heads * dim)], span[..(heads * dim)]); // position 0 is the identity
        Assert.NotEqual(x[(heads * dim)..], span[(heads * dim)..]);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void BadCallsWriteNothing(string backend)
    {
        var ops = TestDevices.CpuOps(backend);
        var x = Random(2 * 2 * 8, 3);
        var before = (float[])x.Clone();

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ops.Rope<float>(x, [3, -2], RopeScaling.Plain(10000), 8, 2, 8, 0, RopeLayout.HalfSplit));
        Assert.Equal("positions", e.ParamName);
        Assert.Contains("positions[1] = -2 is negative", e.Message);

        var wrong = Assert.Throws<ArgumentException>(() => ops.Rope<float>(x, [0, 1, 2], RopeScaling.Plain(10000), 8, 2, 8, 0, RopeLayout.HalfSplit));
        Assert.Contains("Rope", wrong.Message); // 32 elements are not 3 tokens x 2 heads x 8

        var overlap = Assert.Throws<ArgumentException>(() =>
        {
            Span<float> xs = x;
            ops.Rope<float>(xs, MemoryMarshal.Cast<float, int>(xs[..2]), RopeScaling.Plain(10000), 8, 2, 8, 0, RopeLayout.HalfSplit);
        });
        Assert.Contains("overlaps positions", overlap.Message);

        Assert.Throws<ArgumentNullException>(() => ops.Rope<float>(x, [0, 1], null!, 8, 2, 8, 0, RopeLayout.HalfSplit));
        Assert.Throws<ArgumentOutOfRangeException>(() => ops.Rope<float>(x, [0, 1], RopeScaling.Plain(10000), 8, 2, 8, 4, RopeLayout.HalfSplit));
        Assert.Equal(before, x);
    }
}

/// <summary>
/// <see cref="HostSpanRopeTests"/>' comparisons on a GPU: the host-span Rope stages into the GPU runtime and must give bit for
/// bit what the device-resident op gives there, on the native and ILGPU-CUDA backends. Skips without a CUDA GPU (fails under
/// DSK_REQUIRE_GPU=1).
/// </summary>
[Collection(nameof(DeviceCollection))]
[NeedsCudaGpu]
public sealed class HostSpanRopeGpuTests
{
    public static TheoryData<string> Backends => new() { "native", "ilgpu" };


    [DeviceTheory]
    [MemberData(nameof(Backends))]
    public void YarnOnSpansGivesWhatTheDeviceFormGives(string backend) => HostSpanRopeTests.RunYarn(TestDevices.GpuOps(backend));

    [DeviceTheory]
    [MemberData(nameof(Backends))]
    public void Llama3OnSpansGivesWhatTheDeviceFormGives(string backend) => HostSpanRopeTests.RunLlama3(TestDevices.GpuOps(backend));
}
