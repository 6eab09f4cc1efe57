using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The host-span Linear over a <see cref="HostWeightMatrix"/>: for every weight scheme (dense f32 and bf16, FP8 with 128x128 and
/// ragged 16x48 blocks, INT4 with groups of 32 and 128) and both activation types, on the reference (no runtime: it stages
/// into a shared CPU one), the CPU backend and ILGPU's CPU accelerator, it gives bit for bit what the device-resident
/// Linear gives on the same backend for the same values, bias or none. Bad arguments are refused before anything is
/// staged, with the weight factories' own messages, and the destination is left as it was.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostLinearTests
{
    public static TheoryData<string, string, bool> Cases()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (string backend in new[] { "reference", "cpu", "ilgpu" })
            foreach (string scheme in new[] { "f32", "bf16", "fp8", "fp8-ragged", "int4-32", "int4-128" })
                foreach (bool bf16 in new[] { false, true })
                    data.Add(backend, scheme, bf16);
        return data;
    }


    /// <summary>A random weight of one scheme: its host arrays, as a HostWeightMatrix and as a WeightMatrix on a runtime.</summary>
    internal sealed class Weight(string scheme, int rows, int cols, int seed)
    {
        readonly Random _random = new(seed);
        public readonly int Rows = rows, Cols = cols;
        public float[] F32 = [];
        public BFloat16[] Bf16 = [];
        public Float8E4M3[] Fp8 = [];
        public float[] Fp8Scales = [];
        public Int4x2[] Packed = [];
        public BFloat16[] Scales = [], Zeros = [];
        public int BlockRows, BlockCols, Group;

        public Weight Fill()
        {
            var values = new float[Rows * Cols];
            for (int i = 0; i < values.Length; i++)
                values[i] = (_random.NextSingle() - 0.5f) * 0.2f;
            switch (scheme)
            {
                case "f32":
                    F32 = values;
                    break;
                case "bf16":
                    Bf16 = [.. values.Select(BFloat16.FromSingle)];
                    break;
                case "fp8" or "fp8-ragged":
                    (BlockRows, BlockCols) = scheme == "fp8" ? (128, 128) : (16, 48);
                    (Fp8, Fp8Scales) = Fp8BlockQuantizer.Quantize(values, Rows, Cols, BlockRows, BlockCols);
                    break;
                default:
                    Group = scheme == "int4-32" ? 32 : 128;
                    (Packed, Scales, Zeros) = Int4GroupQuantizer.Quantize(values, Rows, Cols, Group);
                    break;
            }
            return this;
        }

        public HostWeightMatrix Host() => scheme switch
        {
            "f32" => HostWeightMatrix.Dense(F32, Rows, Cols),
            "bf16" => HostWeightMatrix.Dense(Bf16, Rows, Cols),
            "fp8" or "fp8-ragged" => HostWeightMatrix.Fp8(Fp8, Fp8Scales, Rows, Cols, BlockRows, BlockCols),
            _ => HostWeightMatrix.Int4(Packed, Scales, Zeros, Rows, Cols, Group),
        };

        public WeightMatrix Device(DeviceRuntime runtime, List<IDisposable> owned)
        {
            DeviceView<T> Up<T>(T[] a) where T : unmanaged
            {
                var b = runtime.Upload<T>(a);
                owned.Add(b);
                return b.View;
            }
            return scheme switch
            {
                "f32" => WeightMatrix.Dense(Up(F32), Rows, Cols),
                "bf16" => WeightMatrix.Dense(Up(Bf16), Rows, Cols),
                "fp8" or "fp8-ragged" => WeightMatrix.Fp8(Up(Fp8), Up(Fp8Scales), Rows, Cols, BlockRows, BlockCols),
                _ => WeightMatrix.Int4(Up(Packed), Up(Scales), Up(Zeros), Rows, Cols, Group),
            };
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheSpanFormGivesWhatTheDeviceFormGives(string backend, string scheme, bool bf16)
    {
        if (bf16)
            Run<BFloat16>(backend, scheme, BFloat16.FromSingle);
        else
            Run<float>(backend, scheme, v => v);
    }

    static void Run<T>(string backend, string scheme, Func<float, T> convert) where T : unmanaged => Run(TestDevices.CpuOps(backend), scheme, convert);

    /// <summary>The span form against the device form on <paramref name="ops"/> (its runtime, or the CPU one for the reference).</summary>
    internal static void Run<T>(Ops ops, string scheme, Func<float, T> convert) where T : unmanaged
    {
        int cols = scheme.StartsWith("int4") ? 256 : 200, outs = 37;
        var w = new Weight(scheme, outs, cols, seed: 5).Fill();
        var random = new Random(9);
        foreach (int rows in new[] { 1, 3, 17 })
        {
            var x = Enumerable.Range(0, rows * cols).Select(_ => convert(random.NextSingle() * 2 - 1)).ToArray();
            var bias = Enumerable.Range(0, outs).Select(_ => random.NextSingle() - 0.5f).ToArray();
            foreach (bool withBias in new[] { false, true })
            {
                var host = new T[rows * outs + 3]; // longer than needed: the tail is left alone
                var sentinel = convert(7.25f);
                Array.Fill(host, sentinel);
                ops.Linear<T>(x, w.Host(), withBias ? bias : [], host);

                var runtime = ops.Runtime ?? TestDevices.Cpu;
                var owned = new List<IDisposable>();
                try
                {
                    var dx = runtime.Upload<T>(x);
                    owned.Add(dx);
                    var db = withBias ? runtime.Upload<float>(bias) : null;
                    if (db != null)
                        owned.Add(db);
                    var dy = runtime.Allocate<T>(rows * outs);
                    owned.Add(dy);
                    ops.Linear(DeviceTensor.Of(dx.View, rows, cols), w.Device(runtime, owned), db?.View ?? default, DeviceTensor.Of(dy.View, rows, outs));
                    var expected = dy.ToArray();
                    Assert.Equal(expected, host[..(rows * outs)]);
                    Assert.All(host[(rows * outs)..], v => Assert.Equal(sentinel, v));
                }
                finally
                {
                    foreach (var o in owned)
                        o.Dispose();
                }
            }
        }
    }

    [Fact]
    public void BadArgumentsAreRefusedAndTheDestinationIsLeftAlone()
    {
        var ops = Ops.CreateCpu(TestDevices.Cpu, 2);
        var w = new Weight("fp8", 8, 64, seed: 1).Fill();
        var x = new float[2 * 64];
        var y = new float[2 * 8];
        Array.Fill(y, 3f);

        Assert.Contains("a positive multiple of weight.Cols = 64", Assert.Throws<ArgumentException>(() => ops.Linear<float>(x.AsSpan(1), w.Host(), [], y)).Message);
        Assert.Contains("rows * weight.Rows = 2 * 8 = 16", Assert.Throws<ArgumentException>(() => ops.Linear<float>(x, w.Host(), [], y.AsSpan(1))).Message);
        Assert.Contains("bias", Assert.Throws<ArgumentException>(() => ops.Linear<float>(x, w.Host(), new float[7], y)).Message);
        var overlapping = new float[2 * 64 + 16];
        Assert.Contains("overlaps x", Assert.Throws<ArgumentException>(() =>
            ops.Linear<float>(overlapping.AsSpan(0, 128), w.Host(), [], overlapping.AsSpan(120, 16))).Message);
        Assert.Throws<NotSupportedException>(() => ops.Linear<double>(new double[64], w.Host(), [], new double[8]));
        Assert.Contains("default HostWeightMatrix", Assert.Throws<ArgumentException>(() => ops.Linear<float>(x, default, [], y)).Message);
        Assert.All(y, v => Assert.Equal(3f, v));

        // the factories: WeightMatrix's checks and messages, naming HostWeightMatrix
        var scales = Assert.Throws<ArgumentException>(() => HostWeightMatrix.Fp8(w.Fp8, w.Fp8Scales.AsSpan(1), 8, 64));
        Assert.Contains("HostWeightMatrix.Fp8", scales.Message);
        Assert.Contains("count * ceil(rows / blockRows) * ceil(cols / blockCols) = 1 * 1 * 1 = 1", scales.Message);
        var groups = Assert.Throws<ArgumentException>(() => HostWeightMatrix.Int4(new Int4x2[8 * 48], new BFloat16[8], new BFloat16[8], 8, 96, 64));
        Assert.Contains("not a multiple of groupSize", groups.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => HostWeightMatrix.Dense(ReadOnlySpan<float>.Empty, 0, 4));
    }
}

/// <summary>
/// The host-span Linear on a GPU: the operands uploaded to the device, the native kernels or ILGPU's CUDA kernels run, the
/// output downloaded; bit for bit the device-resident Linear on the same backend (bf16 activations; dense bf16, FP8 and
/// INT4 weights). Runs in scripts/gpu-check.sh.
/// </summary>
[NeedsCudaGpu]
[Collection(nameof(DeviceCollection))]
public sealed class HostSpanGpuTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string backend in new[] { "native", "ilgpu" })
            foreach (string scheme in new[] { "bf16", "fp8", "int4-128" })
                data.Add(backend, scheme);
        return data;
    }

    [DeviceTheory]
    [MemberData(nameof(Cases))]
    public void LinearOnSpansGivesWhatTheDeviceFormGives(string backend, string scheme)
    {
        HostLinearTests.Run<BFloat16>(TestDevices.GpuOps(backend), scheme, BFloat16.FromSingle);
    }
}
