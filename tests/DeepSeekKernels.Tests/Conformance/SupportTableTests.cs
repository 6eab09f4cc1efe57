using System.Text;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.OpTests;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// The op x backend support table (<see cref="Ops.SupportMatrix"/>) against what the backends do. For every row of
/// <see cref="Ops.SupportSignatures"/> a probe makes one small valid call that builds exactly that signature (proved on a
/// recording backend); on each backend a strict Ops must run it, outputs written and no refusal, where Supports says yes,
/// and refuse it naming the signature, writing nothing, where Supports says no: the same rule every conformance class
/// applies to its cases. The table (reference and ILGPU on ILGPU's CPU accelerator, plus ILGPU on CUDA and the native
/// kernels where a GPU is found) is written to the test output.
/// </summary>
[Collection(nameof(DeviceCollection))]
public sealed class SupportTableTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryProbeBuildsExactlyItsSignature()
    {
        foreach (var signature in Ops.SupportSignatures)
        {
            using var probe = SupportProbe.For(signature, TestDevices.Cpu);
            var recorder = new StubBackend(_ => false);
            var e = Assert.Throws<OpNotSupportedException>(() => probe.Call(Ops.Over(TestDevices.Cpu, recorder)));
            Assert.Equal(signature, e.Signature);
            Assert.Equal([signature], recorder.Asked);
        }
    }

    [Fact]
    public void TheReferenceRunsEverySignature() => AgreesWithWhatItRuns(ConformanceBackends.Reference);

    [Fact]
    public void TheCpuBackendRunsEverySignature() => AgreesWithWhatItRuns(ConformanceBackends.Cpu);

    [Fact]
    public void IlgpuOnTheCpuAcceleratorRunsExactlyWhatItSupports() => AgreesWithWhatItRuns(ConformanceBackends.IlgpuCpu);

    [Fact]
    public void IlgpuOnCudaRunsExactlyWhatItSupports() => AgreesWithWhatItRuns(ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda()));

    [Fact]
    public void TheNativeKernelsRunExactlyWhatTheySupport() => AgreesWithWhatItRuns(ConformanceBackends.Native(TestDevices.RequireNative()));

    /// <summary>
    /// The table itself: one column per backend present (a GPU's columns where one is found; under DSK_REQUIRE_GPU=1 they
    /// must be), every cell equal to the backend's Supports and to what the probe saw it do, the reference's column all
    /// yes, every op of <see cref="Ops.OpNames"/> a row; written to the test output.
    /// </summary>
    [Fact]
    public void TheSupportTableAgreesWithWhatEachBackendRunsAndIsWrittenOut()
    {
        var columns = new List<(string Name, Ops Ops)> { ("reference", ConformanceBackends.Reference), ("cpu", ConformanceBackends.Cpu), ("ilgpu-cpu", ConformanceBackends.IlgpuCpu) };
        if (TestDevices.HasCuda || TestDevices.GpuRequired)
        {
            columns.Add(("ilgpu-cuda", ConformanceBackends.IlgpuCuda(TestDevices.RequireCuda())));
            if (TestDevices.GpuRequired || TestDevices.Cuda!.IsNativeAvailable(out _))
                columns.Add(("native", ConformanceBackends.Native(TestDevices.RequireNative())));
        }
        var matrix = Ops.SupportMatrix(columns.Select(c => c.Ops));
        Assert.Equal(Ops.SupportSignatures, matrix.Signatures);
        Assert.Equal(columns.Select(c => c.Ops.Backend), matrix.Backends);
        Assert.Equal(Ops.OpNames.Order(), matrix.Signatures.Select(s => s.Op).Distinct().Order());

        var observed = new bool[matrix.Signatures.Count, columns.Count];
        for (int c = 0; c < columns.Count; c++)
        {
            var ran = AgreesWithWhatItRuns(columns[c].Ops);
            for (int r = 0; r < matrix.Signatures.Count; r++)
            {
                observed[r, c] = ran[r];
                Assert.True(matrix[r, c] == ran[r], $"{matrix.Signatures[r]} on {columns[c].Name}: the table says {matrix[r, c]}, the call {(ran[r] ? "ran" : "was refused")}");
            }
        }
        Assert.All(Enumerable.Range(0, matrix.Signatures.Count), r => Assert.True(matrix[r, 0], $"the reference refuses {matrix.Signatures[r]}"));

        var text = new StringBuilder();
        int width = matrix.Signatures.Max(s => s.ToString().Length);
        text.Append("op signature".PadRight(width));
        foreach (var (name, _) in columns)
            text.Append("  ").Append(name.PadRight(10));
        text.AppendLine();
        for (int r = 0; r < matrix.Signatures.Count; r++)
        {
            text.Append(matrix.Signatures[r].ToString().PadRight(width));
            for (int c = 0; c < columns.Count; c++)
                text.Append("  ").Append((observed[r, c] ? "yes" : "-").PadRight(10));
            text.AppendLine();
        }
        text.Append("yes: runs and writes its outputs; -: a strict Ops refuses it (OpNotSupportedException), nothing written. ");
        text.Append(string.Join("; ", columns.Select((col, c) =>
            $"{col.Name} {Enumerable.Range(0, matrix.Signatures.Count).Count(r => observed[r, c])}/{matrix.Signatures.Count}")));
        output.WriteLine(text.ToString());
    }

    /// <summary>
    /// For every support signature: where <paramref name="ops"/> supports it, the probe runs (no refusal, no device error)
    /// and writes its outputs; where not, it is refused naming the signature and this backend, writing nothing. Returns,
    /// per signature, whether it ran.
    /// </summary>
    static bool[] AgreesWithWhatItRuns(Ops ops)
    {
        var runtime = ops.Runtime!;
        var ran = new bool[Ops.SupportSignatures.Count];
        for (int r = 0; r < ran.Length; r++)
        {
            var signature = Ops.SupportSignatures[r];
            using var probe = SupportProbe.For(signature, runtime);
            var before = probe.Outputs.Select(o => o.Read()).ToArray();
            if (ops.Supports(signature))
            {
                probe.Call(ops);
                runtime.Synchronize();
                for (int i = 0; i < before.Length; i++)
                    Assert.False(before[i].AsSpan().SequenceEqual(probe.Outputs[i].Read()), $"{signature} on {ops.Backend}: output {i} was not written");
                ran[r] = true;
            }
            else
            {
                var e = Assert.Throws<OpNotSupportedException>(() => probe.Call(ops));
                Assert.Equal((signature, ops.Backend), (e.Signature, e.Backend));
                runtime.Synchronize();
                for (int i = 0; i < before.Length; i++)
                    Assert.True(before[i].AsSpan().SequenceEqual(probe.Outputs[i].Read()), $"{signature}, refused by {ops.Backend}: output {i} was written");
            }
        }
        return ran;
    }
}

/// <summary>
/// One small valid call per support signature, on any runtime: inputs seeded, outputs poisoned (NaN, or -1 for int
/// outputs), shapes the signature names (head_dim 128 for attention, 512 + 64 for MLA; a column block where the rows
/// are strided).
/// </summary>
internal sealed class SupportProbe : IDisposable
{
    readonly List<IDisposable> _owned = [];
    readonly DeviceRuntime _runtime;

    SupportProbe(DeviceRuntime runtime) => _runtime = runtime;

    /// <summary>Makes the call on the given Ops.</summary>
    public Action<Ops> Call { get; private set; } = null!;

    /// <summary>The buffers the call writes.</summary>
    public List<Watched> Outputs { get; } = [];

    public void Dispose() => _owned.ForEach(o => o.Dispose());

    T Keep<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    DeviceBuffer<float> F(int length, int seed) => Keep(_runtime.Upload<float>(RandomValues(length, seed)));

    DeviceBuffer<BFloat16> B(int length, int seed) => Keep(_runtime.Upload<BFloat16>(RandomValues(length, seed).Select(BFloat16.FromSingle).ToArray()));

    DeviceBuffer<int> I(params int[] values) => Keep(_runtime.Upload<int>(values));

    /// <summary>A seeded activation input of the signature's activation type.</summary>
    DeviceTensor A(OpSignature s, int length, int seed) => s.X == ElementType.F32 ? F(length, seed) : B(length, seed);

    /// <summary>A poisoned activation output of the signature's activation type.</summary>
    DeviceTensor OutA(OpSignature s, int length) => OutTensor(s.X, length);

    DeviceBuffer<float> Out(int length)
    {
        var buffer = Keep(_runtime.Upload<float>(Nan(length)));
        Outputs.Add(buffer);
        return buffer;
    }

    DeviceBuffer<BFloat16> OutBf16(int length)
    {
        var buffer = Keep(_runtime.Upload<BFloat16>(Enumerable.Repeat(BFloat16.NaN, length).ToArray()));
        Outputs.Add(buffer);
        return buffer;
    }

    DeviceBuffer<int> OutInts(int length)
    {
        var buffer = Keep(_runtime.Upload<int>(Enumerable.Repeat(-1, length).ToArray()));
        Outputs.Add(buffer);
        return buffer;
    }

    TestWeight Weight(OpSignature s, int count, int rows, int cols) => Keep(new TestWeight(s.Weight switch
    {
        ElementType.F32 => "f32",
        ElementType.BF16 => "bf16",
        ElementType.Fp8E4M3 => "fp8",
        ElementType.Int4 => "int4",
        var other => throw new ArgumentOutOfRangeException(nameof(s), other, "no weight form"),
    }, count, rows, cols, seed: 5, blockRows: 16, blockCols: 16, runtime: _runtime));

    /// <summary>A tensor of <paramref name="type"/> (f32 or bf16) [rows, width], seeded.</summary>
    DeviceTensor Rows(ElementType type, int rows, int width, int seed) =>
        type == ElementType.F32 ? F(rows * width, seed).AsTensor(rows, width) : B(rows * width, seed).AsTensor(rows, width);

    /// <summary>A poisoned output tensor of <paramref name="type"/> (f32 or bf16) of <paramref name="shape"/>.</summary>
    DeviceTensor OutTensor(ElementType type, params long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        return type == ElementType.F32 ? Out(n).AsTensor(shape) : OutBf16(n).AsTensor(shape);
    }

    public static SupportProbe For(OpSignature s, DeviceRuntime runtime)
    {
        var p = new SupportProbe(runtime);
        try
        {
            p.Build(s);
            return p;
        }
        catch
        {
            p.Dispose();
            throw;
        }
    }

    void Build(OpSignature s)
    {
        const int rows = 2, cols = 32;
        switch (s.Op)
        {
            case "RmsNorm" or "AddRmsNorm":
                BuildRmsNorm(s, s.X, s.Weight!.Value, rows, cols);
                break;
            case "Linear":
            {
                var w = Weight(s, 1, 8, cols);
                var y = OutA(s, rows * 8);
                if (s.StridedRows)
                {
                    var x = A(s, rows * (cols + 3), 1).Reshape(rows, cols + 3).Columns(1, cols);
                    Call = ops => ops.Linear(x, w.Matrix, default, y);
                }
                else
                {
                    var x = A(s, rows * cols, 1);
                    Call = ops => ops.Linear(x, w.Matrix, default, y);
                }
                break;
            }
            case "LinearSiluMul":
            {
                var w = Weight(s, 1, 8, cols);
                var y = OutA(s, rows * 4);
                var x = s.StridedRows ? A(s, rows * (cols + 3), 1).Reshape(rows, cols + 3).Columns(1, cols) : A(s, rows * cols, 1);
                Call = ops => ops.LinearSiluMul(x, w.Matrix, y);
                break;
            }
            case "DequantizeFp8":
            {
                var w = Weight(s, 1, 4, 8);
                var y = Out(32);
                Call = ops => ops.DequantizeFp8(w.Matrix, y.View);
                break;
            }
            case "HeadwiseLinear":
            {
                var w = Weight(s, 2, 4, cols);
                var x = A(s, rows * 2 * cols, 2);
                var y = OutA(s, rows * 2 * 4);
                Call = ops => ops.HeadwiseLinear(x, w.Matrix, y);
                break;
            }
            case "Embedding":
            {
                var table = Weight(s, 1, 5, cols);
                var ids = I(4, 0, 2);
                var y = OutA(s, 3 * cols);
                Call = ops => ops.Embedding(ids.View, table.Matrix, y);
                break;
            }
            case "Rope":
            {
                var table = Keep(RopeTable.Create(_runtime, RopeScaling.Plain(10000), 8, 4));
                var positions = I(3, 1);
                DeviceTensor x; // in place: a seeded input watched as the output
                if (s.X == ElementType.F32)
                {
                    var f = F(2 * 8, 3);
                    Outputs.Add(Watch(f));
                    x = f;
                }
                else
                {
                    var b = B(2 * 8, 3);
                    Outputs.Add(Watch(b));
                    x = b;
                }
                Call = ops => ops.Rope(x, positions.View, table, 1, 8, 0, RopeLayout.Interleaved);
                break;
            }
            case "Attention":
            {
                int d = s.HeadDim;
                var q = A(s, d, 4);
                var k = A(s, 2 * d, 5);
                var v = A(s, 2 * d, 6);
                var y = OutA(s, d);
                Call = ops => ops.Attention(q, k, v, y, 1, 1, d, d, 2, 1, 1f / MathF.Sqrt(d));
                break;
            }
            case "MlaAttention":
            {
                int d = s.HeadDim, latent = d - 64;
                var q = A(s, d, 7);
                var cache = A(s, 2 * d, 8);
                var y = OutA(s, latent);
                Call = ops => ops.MlaAttention(q, cache, y, 1, latent, 64, 2, 1, 0.05f);
                break;
            }
            case "KvAppend":
            {
                var keys = Rows(s.X, 2, 8, 9);
                var values = Rows(s.X, 2, 8, 10);
                var keyPages = OutTensor(s.Pages!.Value, 2, 4, 8);
                var valuePages = OutTensor(s.Pages!.Value, 2, 4, 8);
                var slots = I(5, 0);
                Call = ops => ops.KvAppend(keys, values, slots.View, keyPages, valuePages);
                break;
            }
            case "PagedAttention" or "PagedMlaAttention":
            {
                int d = s.HeadDim, vd = s.Op == "PagedAttention" ? d : d - 64;
                var pages = Rows(s.Pages!.Value, 2 * 4, d, 11).Reshape(2, 4, d);
                var values = Rows(s.Pages!.Value, 2 * 4, d, 12).Reshape(2, 4, d);
                var q = A(s, d, 13).Reshape(1, 1, d);
                var y = OutA(s, vd).Reshape(1, 1, vd);
                var batch = new PagedBatch(I(1), I(3), I(0, 1));
                if (s.Op == "PagedAttention")
                    Call = ops => ops.PagedAttention(q, pages, values, batch, y, 1, 0.1f);
                else
                    Call = ops => ops.PagedMlaAttention(q, pages, batch, y, 0.05f);
                break;
            }
            case "CopyColumns":
            {
                var x = A(s, rows * cols, 14);
                var y = OutA(s, rows * 8);
                Call = ops => ops.CopyColumns(x, cols, 3, y, 8, 0, 8, rows);
                break;
            }
            case "SiluAndMul":
            {
                var x = A(s, rows * cols, 15);
                var y = OutA(s, rows * cols / 2);
                Call = ops => ops.SiluAndMul(x, y, cols / 2);
                break;
            }
            case "Softmax":
            {
                var x = A(s, rows * cols, 16);
                var y = OutA(s, rows * cols);
                Call = ops => ops.Softmax(x, y, cols);
                break;
            }
            case "Add":
            {
                var x = A(s, cols, 17);
                var other = A(s, cols, 18);
                var y = OutA(s, cols);
                Call = ops => ops.Add(x, other, y);
                break;
            }
            case "Scale":
            {
                var x = A(s, cols, 19);
                var y = OutA(s, cols);
                Call = ops => ops.Scale(x, 0.5f, y);
                break;
            }
            case "MoeRoute":
            {
                var logits = A(s, rows * 4, 20);
                var ids = OutInts(rows * 2);
                var weights = Out(rows * 2);
                var routing = new MoeRouting { Experts = 4, TopK = 2 };
                Call = ops => ops.MoeRoute(logits, default, ids.View, weights.View, routing);
                break;
            }
            case "MoePermute":
            {
                var x = A(s, rows * 4, 21);
                var ids = I(2, 0, 1, 2);
                var permuted = OutA(s, 4 * 4);
                var offsets = OutInts(4);
                var slots = OutInts(4);
                Call = ops => ops.MoePermute(x, ids.View, permuted, offsets.View, slots.View, 3, 2);
                break;
            }
            case "GroupedLinear":
            {
                var w = Weight(s, 2, 8, cols);
                var x = A(s, 3 * cols, 22);
                var offsets = I(0, 1, 3);
                var y = OutA(s, 3 * 8);
                Call = ops => ops.GroupedLinear(x, offsets.View, w.Matrix, y);
                break;
            }
            case "GroupedLinearSiluMul":
            {
                var w = Weight(s, 2, 8, cols); // fused [gate | up] of 4 + 4 rows per expert
                var x = A(s, 3 * cols, 22);
                var offsets = I(0, 1, 3);
                var y = OutA(s, 3 * 4);
                Call = ops => ops.GroupedLinearSiluMul(x, offsets.View, w.Matrix, y);
                break;
            }
            case "MoeCombine":
            {
                var expertOutput = A(s, 4 * 4, 23);
                var slots = I(2, 0, 3, 1);
                var weights = F(4, 24);
                var y = OutA(s, 2 * 4);
                Call = ops => ops.MoeCombine(expertOutput, slots.View, weights.View, y, 2, false);
                break;
            }
            case "QuantizeFp8Activations":
            {
                var x = Rows(s.X, rows, cols, 28);
                var q = Keep(_runtime.Upload<Float8E4M3>(Enumerable.Repeat(Float8E4M3.FromBits(0x7F), rows * cols).ToArray()));
                Outputs.Add(q);
                var scales = Out(rows);
                Call = ops => ops.QuantizeFp8Activations(x, q.View, scales.View);
                break;
            }
            case "LinearW8A8":
            {
                var w = Keep(new TestWeight("fp8", 1, 8, cols, seed: 5, runtime: _runtime)); // 128 x 128 blocks
                var qx = Keep(_runtime.Upload<Float8E4M3>(RandomValues(rows * cols, 29).Select(Float8E4M3.FromSingle).ToArray()));
                var xScales = F(rows, 30);
                var y = OutA(s, rows * 8);
                Call = ops => ops.LinearW8A8(qx.View, xScales.View, w.Matrix, default, y);
                break;
            }
            case "GroupedLinearW8A8":
            {
                var w = Keep(new TestWeight("fp8", 2, 8, cols, seed: 6, runtime: _runtime)); // two experts, 128 x 128 blocks
                var qx = Keep(_runtime.Upload<Float8E4M3>(RandomValues(3 * cols, 31).Select(Float8E4M3.FromSingle).ToArray()));
                var xScales = F(3 * ((cols + 127) / 128), 32);
                var offsets = I(0, 1, 3);
                var y = OutA(s, 3 * 8);
                Call = ops => ops.GroupedLinearW8A8(qx.View, xScales.View, offsets.View, w.Matrix, y);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(s), s, "no probe for this op: add one");
        }
    }

    void BuildRmsNorm(OpSignature s, ElementType x, ElementType w, int rows, int cols)
    {
        switch (x, w)
        {
            case (ElementType.F32, ElementType.F32): BuildRmsNorm<float, float>(s, rows, cols); break;
            case (ElementType.F32, ElementType.BF16): BuildRmsNorm<float, BFloat16>(s, rows, cols); break;
            case (ElementType.BF16, ElementType.F32): BuildRmsNorm<BFloat16, float>(s, rows, cols); break;
            case (ElementType.BF16, ElementType.BF16): BuildRmsNorm<BFloat16, BFloat16>(s, rows, cols); break;
            default: throw new ArgumentOutOfRangeException(nameof(s), s, "RMSNorm takes f32 or bf16");
        }
    }

    void BuildRmsNorm<T, TW>(OpSignature s, int rows, int cols) where T : unmanaged where TW : unmanaged
    {
        var x = Keep(_runtime.Upload<T>(TestData.As<T>(TestData.Activations(rows * cols, 25))));
        var w = Keep(_runtime.Upload<TW>(TestData.As<TW>(TestData.Weights(cols, 26))));
        var y = Keep(_runtime.Upload<T>(TestData.Poison<T>(rows * cols)));
        Outputs.Add(Watch(y));
        if (s.Op == "RmsNorm")
        {
            Call = ops => ops.RmsNorm(x.View, w.View, y.View, cols, 1e-6f);
            return;
        }
        var residual = Keep(_runtime.Upload<T>(TestData.As<T>(TestData.Activations(rows * cols, 27))));
        var r = Keep(_runtime.Upload<T>(TestData.Poison<T>(rows * cols)));
        Outputs.Add(Watch(r));
        Call = ops => ops.AddRmsNorm(x.View, residual.View, w.View, r.View, y.View, cols, 1e-6f);
    }

    static Watched Watch<T>(DeviceBuffer<T> buffer) where T : unmanaged => buffer switch
    {
        DeviceBuffer<float> f => f,
        DeviceBuffer<BFloat16> b => b,
        _ => throw new ArgumentOutOfRangeException(nameof(buffer), typeof(T).Name, "f32 or bf16"),
    };
}
