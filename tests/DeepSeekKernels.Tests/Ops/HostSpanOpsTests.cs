using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The host-span forms of SiluAndMul, Softmax (also in place), MoeRoute (DeepSeek-V3's routing, with and without the
/// correction bias) and Attention (causal GQA, a prefill chunk after earlier keys): on the reference (staged into a shared CPU
/// runtime), the CPU backend and ILGPU's CPU accelerator, each gives bit for bit what the device-resident op gives on the
/// same backend (ILGPU refuses contiguous attention in both forms alike), and leaves the destination's elements past the
/// output as they were. Refused calls (overlaps, lengths, a null routing) write nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostSpanOpsTests
{
    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (string backend in new[] { "reference", "cpu", "ilgpu" })
            foreach (bool bf16 in new[] { false, true })
                data.Add(backend, bf16);
        return data;
    }


    static T[] Random<T>(int length, int seed, Func<float, T> convert, float scale = 2f)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => convert((random.NextSingle() - 0.5f) * scale))];
    }

    /// <summary>The device-resident op on copies of the inputs in <paramref name="runtime"/>, its output as an array.</summary>
    static T[] OnDevice<T>(DeviceRuntime runtime, T[][] inputs, int outputLength, Action<DeviceTensor[], DeviceTensor> run) where T : unmanaged
    {
        var buffers = inputs.Select(a => runtime.Upload<T>(a)).ToArray();
        using var y = runtime.Allocate<T>(outputLength);
        try
        {
            run([.. buffers.Select(b => DeviceTensor.FromView(b.View))], DeviceTensor.FromView(y.View));
            return y.ToArray();
        }
        finally
        {
            foreach (var b in buffers)
                b.Dispose();
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void SiluAndMulSoftmaxAndAttentionGiveWhatTheDeviceFormsGive(string backend, bool bf16)
    {
        if (bf16)
            Check<BFloat16>(backend, BFloat16.FromSingle);
        else
            Check<float>(backend, v => v);
    }

    static void Check<T>(string backend, Func<float, T> convert) where T : unmanaged
    {
        var ops = TestDevices.CpuOps(backend);
        var runtime = ops.Runtime ?? TestDevices.Cpu;
        var sentinel = convert(9.5f);

        // SiLU-and-mul: 5 rows of gate | up, 24 wide
        var gateUp = Random(5 * 48, 1, convert);
        var silu = new T[5 * 24 + 2];
        Array.Fill(silu, sentinel);
        ops.SiluAndMul<T>(gateUp, silu, 24);
        Assert.Equal(OnDevice(runtime, [gateUp], 5 * 24, (i, y) => ops.SiluAndMul(i[0], y, 24)), silu[..(5 * 24)]);
        Assert.Equal([sentinel, sentinel], silu[(5 * 24)..]);

        // softmax: 6 rows of 33, out of place and in place
        var logits = Random(6 * 33, 2, convert, 8f);
        var expected = OnDevice(runtime, [logits], logits.Length, (i, y) => ops.Softmax(i[0], y, 33));
        var soft = new T[logits.Length];
        ops.Softmax<T>(logits, soft, 33);
        Assert.Equal(expected, soft);
        var inPlace = (T[])logits.Clone();
        ops.Softmax<T>(inPlace, inPlace, 33);
        Assert.Equal(expected, inPlace);

        // attention: 3 queries at positions 5..7 over 8 keys, 4 q heads on 2 kv heads of 16, v heads of 8
        const int tokens = 3, qHeads = 4, kvHeads = 2, headDim = 16, vHeadDim = 8, kvLength = 8, queryStart = 5;
        var q = Random(tokens * qHeads * headDim, 3, convert);
        var k = Random(kvLength * kvHeads * headDim, 4, convert);
        var v = Random(kvLength * kvHeads * vHeadDim, 5, convert);
        var attention = new T[tokens * qHeads * vHeadDim + 1];
        Array.Fill(attention, sentinel);
        if (backend == "ilgpu")
        {
            // ILGPU has no contiguous-attention kernel (the models use paged attention): the span form refuses as the device
            // form does, and writes nothing.
            Assert.Throws<OpNotSupportedException>(() =>
                ops.Attention<T>(q, k, v, attention, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, 0.25f));
            Assert.All(attention, value => Assert.Equal(sentinel, value));
            return;
        }
        ops.Attention<T>(q, k, v, attention, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, 0.25f);
        Assert.Equal(OnDevice(runtime, [q, k, v], tokens * qHeads * vHeadDim,
            (i, y) => ops.Attention(i[0], i[1], i[2], y, qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, 0.25f)), attention[..^1]);
        Assert.Equal(sentinel, attention[^1]);
    }

    static readonly MoeRouting V3Routing = new()
    {
        Experts = 16, TopK = 4, Scoring = MoeScoring.Sigmoid, Method = MoeTopKMethod.NoAuxTc, Groups = 4, TopKGroups = 2,
        NormalizeTopK = true, RoutedScalingFactor = 2.5,
    };

    [Theory, MemberData(nameof(Cases))]
    public void MoeRouteGivesWhatTheDeviceFormGives(string backend, bool bf16)
    {
        var ops = TestDevices.CpuOps(backend);
        var runtime = ops.Runtime ?? TestDevices.Cpu;
        const int tokens = 7;
        var logits32 = Random(tokens * 16, 6, v => v, 6f);
        var bias = Random(16, 7, v => v, 0.2f);
        foreach (bool withBias in new[] { false, true })
        {
            var ids = new int[tokens * 4 + 1];
            var weights = new float[tokens * 4 + 1];
            Array.Fill(ids, -7);
            Array.Fill(weights, -7f);
            using var dIds = runtime.Allocate<int>(tokens * 4);
            using var dWeights = runtime.Allocate<float>(tokens * 4);
            using var dBias = runtime.Upload<float>(bias);
            if (bf16)
            {
                var logits = logits32.Select(BFloat16.FromSingle).ToArray();
                ops.MoeRoute<BFloat16>(logits, withBias ? bias : [], ids, weights, V3Routing);
                using var dLogits = runtime.Upload<BFloat16>(logits);
                ops.MoeRoute(DeviceTensor.FromView(dLogits.View), withBias ? dBias.View : default, dIds.View, dWeights.View, V3Routing);
            }
            else
            {
                ops.MoeRoute<float>(logits32, withBias ? bias : [], ids, weights, V3Routing);
                using var dLogits = runtime.Upload<float>(logits32);
                ops.MoeRoute(DeviceTensor.FromView(dLogits.View), withBias ? dBias.View : default, dIds.View, dWeights.View, V3Routing);
            }
            Assert.Equal(dIds.ToArray(), ids[..^1]);
            Assert.Equal(dWeights.ToArray(), weights[..^1]);
            Assert.Equal(-7, ids[^1]);
            Assert.Equal(-7f, weights[^1]);
        }
    }

    [Fact]
    public void RefusedCallsWriteNothing()
    {
        var ops = Ops.CreateCpu(TestDevices.Cpu, 2);
        var buffer = new float[100];
        Array.Fill(buffer, 4f);

        // SiLU-and-mul into its own input
        Assert.Contains("destination overlaps x", Assert.Throws<ArgumentException>(() =>
            ops.SiluAndMul<float>(buffer.AsSpan(0, 48), buffer.AsSpan(40, 24), 24)).Message);
        // softmax: partly in place
        Assert.Contains("other than exactly", Assert.Throws<ArgumentException>(() =>
            ops.Softmax<float>(buffer.AsSpan(0, 33), buffer.AsSpan(1, 33), 33)).Message);
        // a destination too short: the device form's own message, and the host destination untouched
        var shortY = new float[10];
        Array.Fill(shortY, 4f);
        Assert.Contains("destination", Assert.Throws<ArgumentException>(() => ops.SiluAndMul<float>(buffer.AsSpan(0, 48), shortY, 24)).Message);
        Assert.All(shortY, v => Assert.Equal(4f, v));
        // routing: null, outputs overlapping each other
        Assert.Throws<ArgumentNullException>(() => ops.MoeRoute<float>(buffer.AsSpan(0, 16), [], new int[4], new float[4], null!));
        var both = new int[8];
        Assert.Contains("expertIds overlaps expertWeights", Assert.Throws<ArgumentException>(() =>
            ops.MoeRoute<float>(buffer.AsSpan(0, 16), [], both.AsSpan(0, 4),
                System.Runtime.InteropServices.MemoryMarshal.Cast<int, float>(both.AsSpan(2, 4)), V3Routing)).Message);
        Assert.All(buffer, v => Assert.Equal(4f, v));
    }
}
