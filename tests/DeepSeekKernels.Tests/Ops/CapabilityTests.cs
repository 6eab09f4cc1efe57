using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// Capabilities per backend: each op call builds an <see cref="OpSignature"/> (op, element types, weight scheme, shape
/// facts) and the backend's Supports decides. Strict Ops refuse an unsupported signature (naming it and the way to
/// opt in); with the fallback it runs on the reference and is counted, per signature, with the bytes staged. The
/// strict/fallback cases use a stub backend that supports only f32 Linear over dense f32 weights, so they do not
/// depend on what ILGPU happens to lack.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class CapabilityTests
{
    const int Rows = 3, In = 24, Out = 40;

    static readonly OpSignature F32Linear = new("Linear", ElementType.F32) { Scheme = WeightScheme.Dense, Weight = ElementType.F32 };
    static readonly OpSignature Bf16Linear = F32Linear with { Weight = ElementType.BF16 };

    static StubBackend F32LinearOnly() => new(op => op == F32Linear);

    [Fact]
    public void SignaturesReadAsTheCallsTheyDescribe()
    {
        Assert.Equal("Linear(x=f32, w=bf16 dense)", Bf16Linear.ToString());
        Assert.Equal("Linear(x=f32, w=fp8 block, strided)",
            new OpSignature("Linear", ElementType.F32) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3, StridedRows = true }.ToString());
        Assert.Equal("GroupedLinear(x=f32, w=int4 group)",
            new OpSignature("GroupedLinear", ElementType.F32) { Scheme = WeightScheme.Int4Group, Weight = ElementType.Int4 }.ToString());
        Assert.Equal("RmsNorm(x=bf16, w=f32)", new OpSignature("RmsNorm", ElementType.BF16) { Weight = ElementType.F32 }.ToString());
        Assert.Equal("PagedAttention(x=f32, head_dim=128, pages=bf16)",
            new OpSignature("PagedAttention", ElementType.F32) { HeadDim = 128, Pages = ElementType.BF16 }.ToString());
        Assert.Equal("Softmax(x=f32)", new OpSignature("Softmax", ElementType.F32).ToString());
    }

    [Fact]
    public void StrictOpsRunWhatTheBackendSupportsAndRefuseTheRestNamingTheSignature()
    {
        var stub = F32LinearOnly();
        var ops = DeepSeekKernels.Ops.Over(CpuRuntime, stub);
        Assert.False(ops.ReferenceFallback);
        using var f32 = new TestWeight("f32", 1, Out, In, seed: 1);
        using var bf16 = new TestWeight("bf16", 1, Out, In, seed: 2);
        using var x = Upload(RandomValues(Rows * In, 3));
        using var y = Poisoned(Rows * Out);

        ops.Linear(x.View, f32.Matrix, default, y.View);
        Assert.Equal(1, stub.LinearCalls);
        Assert.Equal(F32Linear, stub.Asked[^1]);

        var e = Assert.Throws<OpNotSupportedException>(() => ops.Linear(x.View, bf16.Matrix, default, y.View));
        Assert.IsAssignableFrom<NotSupportedException>(e);
        Assert.Equal(Bf16Linear, e.Signature);
        Assert.Equal(Backend.Ilgpu, e.Backend);
        Assert.StartsWith("Linear(x=f32, w=bf16 dense) is not supported by the Ilgpu backend (the stub's Supports says no)", e.Message);
        Assert.Contains("Ops.WithReferenceFallback()", e.Message);
        Assert.Contains("--allow-fallback", e.Message);
        Assert.Equal(1, stub.LinearCalls);
        Assert.Empty(ops.FallbackReport);

        // refused before anything ran: a fresh poisoned output stays poisoned
        using var untouched = Poisoned(Rows * Out);
        Assert.Throws<OpNotSupportedException>(() => ops.Linear(x.View, bf16.Matrix, default, untouched.View));
        AllNaN(untouched.ToArray(), "destination");
    }

    [Fact]
    public void TheFallbackRunsUnsupportedSignaturesOnTheReferenceAndCountsCallsAndStagedBytes()
    {
        var stub = F32LinearOnly();
        var strict = DeepSeekKernels.Ops.Over(CpuRuntime, stub);
        var ops = strict.WithReferenceFallback();
        Assert.True(ops.ReferenceFallback);
        Assert.Equal(Backend.Ilgpu, ops.Backend);
        using var f32 = new TestWeight("f32", 1, Out, In, seed: 1);
        using var bf16 = new TestWeight("bf16", 1, Out, In, seed: 2);
        using var fp8 = new TestWeight("fp8", 1, Out, In, seed: 4, blockRows: 16, blockCols: 16);
        using var x = Upload(RandomValues(Rows * In, 3));
        using var y = Poisoned(Rows * Out);
        using var expected = Poisoned(Rows * Out);

        ops.Linear(x.View, bf16.Matrix, default, y.View);
        ReferenceOps.Linear(x.View, bf16.Matrix, default, expected.View);
        Exact(expected.ToArray(), y.ToArray(), "bf16 Linear on the reference");
        ops.Linear(x.View, bf16.Matrix, default, y.View);
        ops.Linear(x.View, f32.Matrix, default, y.View); // supported: runs on the stub, not reported
        Assert.Equal(1, stub.LinearCalls);

        // on ILGPU's CPU accelerator the reference works on the device buffers in place: nothing is staged
        Assert.Equal([new FallbackRecord(Bf16Linear, 2, 0)], ops.FallbackReport);

        ops.Linear(x.View, fp8.Matrix, default, y.View);
        var fp8Linear = F32Linear with { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3 };
        Assert.Equal([new FallbackRecord(Bf16Linear, 2, 0), new FallbackRecord(fp8Linear, 1, 0)], ops.FallbackReport); // sorted by signature
        Assert.Empty(strict.FallbackReport); // the strict Ops it came from is unchanged
        Assert.Throws<OpNotSupportedException>(() => strict.Linear(x.View, bf16.Matrix, default, y.View));

        var flagged = DeepSeekKernels.Ops.Over(CpuRuntime, F32LinearOnly(), referenceFallback: true);
        flagged.Linear(x.View, bf16.Matrix, default, y.View);
        Assert.Equal([new FallbackRecord(Bf16Linear, 1, 0)], flagged.FallbackReport);
    }

    [Fact]
    public void OpsTellTheBackendTheShapeFactsOfTheCall()
    {
        var stub = F32LinearOnly();
        var ops = DeepSeekKernels.Ops.Over(CpuRuntime, stub, referenceFallback: true);
        using var w = new TestWeight("f32", 1, Out, In, seed: 1);
        using var wide = Upload(RandomValues(Rows * 2 * In, 5));
        using var y = Poisoned(Rows * Out);
        // x = the first In columns of a [Rows, 2 * In] matrix: rows strided by 2 * In
        var x = DeviceTensor.Of(wide.View, Rows, 2 * In).Columns(0, In);
        ops.Linear(x, w.Matrix, default, y.View);
        var strided = F32Linear with { StridedRows = true };
        Assert.Equal(strided, stub.Asked[^1]);
        Assert.Equal([new FallbackRecord(strided, 1, 0)], ops.FallbackReport);
        Assert.Equal(0, stub.LinearCalls);

        using var q = Upload(RandomValues(2 * 4 * 16, 6));
        using var o = Poisoned(2 * 4 * 16);
        ops.Attention(q.View, q.View, q.View, o.View, 4, 2, 16, 16, 2, 0, 0.25f);
        Assert.Equal(new OpSignature("Attention", ElementType.F32) { HeadDim = 16 }, stub.Asked[^1]);
    }

    [Fact]
    public void TheReferenceSupportsEverythingAndNeverFallsBack()
    {
        var reference = ReferenceOps;
        Assert.All(DeepSeekKernels.Ops.SupportSignatures, s => Assert.True(reference.Supports(s), s.ToString()));
        Assert.Equal(26, DeepSeekKernels.Ops.OpNames.Count);
        Assert.Same(reference, reference.WithReferenceFallback());
        Assert.False(reference.WithReferenceFallback().ReferenceFallback);
        Assert.Empty(reference.WithReferenceFallback().FallbackReport);
        Assert.False(DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Reference, referenceFallback: true).ReferenceFallback);
    }

    [Fact]
    public void SupportsRefusesANameThatIsNotAnOp()
    {
        var e = Assert.Throws<ArgumentException>(() => ReferenceOps.Supports(new OpSignature("Linaer", ElementType.F32)));
        Assert.Contains("'Linaer' is not an op", e.Message);
        Assert.Throws<ArgumentException>(() => ReferenceOps.Supports(default(OpSignature)));
    }

    [Fact]
    public void IlgpuSupportsExactlyItsKernels()
    {
        var ilgpu = DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Ilgpu);
        foreach (var x in (ElementType[])[ElementType.F32, ElementType.BF16])
            foreach (var w in (ElementType[])[ElementType.F32, ElementType.BF16])
            {
                Assert.True(ilgpu.Supports(new OpSignature("RmsNorm", x) { Weight = w }));
                Assert.True(ilgpu.Supports(new OpSignature("AddRmsNorm", x) { Weight = w }));
            }
        foreach (var op in (string[])["CopyColumns", "SiluAndMul", "Softmax", "Add", "Scale"])
        {
            Assert.True(ilgpu.Supports(new OpSignature(op, ElementType.F32)), op);
            Assert.True(ilgpu.Supports(new OpSignature(op, ElementType.BF16)), op);
            Assert.False(ilgpu.Supports(new OpSignature(op, ElementType.F16)), op);
        }
        foreach (var x in (ElementType[])[ElementType.F32, ElementType.BF16])
            foreach (var (scheme, w) in ((WeightScheme, ElementType)[])[(WeightScheme.Dense, ElementType.F32), (WeightScheme.Dense, ElementType.BF16),
                         (WeightScheme.Fp8Block, ElementType.Fp8E4M3), (WeightScheme.Int4Group, ElementType.Int4)])
            {
                var linear = new OpSignature("Linear", x) { Scheme = scheme, Weight = w };
                Assert.True(ilgpu.Supports(linear), linear.ToString());
                Assert.True(ilgpu.Supports(linear with { StridedRows = true }), linear.ToString());
                Assert.True(ilgpu.Supports(linear with { Op = "HeadwiseLinear" }), linear.ToString());
                Assert.Equal(scheme != WeightScheme.Fp8Block, ilgpu.Supports(linear with { Op = "Embedding" }));
            }
        Assert.True(ilgpu.Supports(new OpSignature("DequantizeFp8", ElementType.F32) { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3 }));
        // the attention ops of issue 12: Rope, KvAppend and the paged attention ops, f32 or bf16 activations and pages
        foreach (var x in (ElementType[])[ElementType.F32, ElementType.BF16])
        {
            Assert.True(ilgpu.Supports(new OpSignature("Rope", x)), x.ToString());
            foreach (var pages in (ElementType[])[ElementType.F32, ElementType.BF16])
            {
                Assert.True(ilgpu.Supports(new OpSignature("KvAppend", x) { Pages = pages, StridedRows = true }), $"{x} {pages}");
                Assert.True(ilgpu.Supports(new OpSignature("PagedAttention", x) { HeadDim = 128, Pages = pages }), $"{x} {pages}");
                Assert.True(ilgpu.Supports(new OpSignature("PagedMlaAttention", x) { HeadDim = 576, Pages = pages }), $"{x} {pages}");
            }
        }
        Assert.False(ilgpu.Supports(new OpSignature("Rope", ElementType.F16), out string? reason));
        Assert.Contains("f32 or bf16 x", reason);
        Assert.False(ilgpu.Supports(new OpSignature("Attention", ElementType.F32) { HeadDim = 128 }, out reason));
        Assert.Equal("no Attention kernel yet", reason);
        Assert.False(ilgpu.Supports(new OpSignature("RmsNorm", ElementType.F16) { Weight = ElementType.F32 }, out reason));
        Assert.Contains("f32 or bf16 activations", reason);
    }

    /// <summary>The support table: a row per signature, a column per backend, every op covered, from Supports alone.</summary>
    [Fact]
    public void TheSupportMatrixCoversEveryOpAndAgreesWithSupports()
    {
        var ilgpu = DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Ilgpu);
        var matrix = DeepSeekKernels.Ops.SupportMatrix([ReferenceOps, ilgpu]);
        Assert.Equal([Backend.Reference, Backend.Ilgpu], matrix.Backends);
        Assert.Equal(["reference", "ilgpu-cpu"], matrix.Labels);
        Assert.Equal(DeepSeekKernels.Ops.SupportSignatures, matrix.Signatures);
        // the same backend twice (ILGPU on the CPU and on CUDA, say) is told apart by label, and by-kind lookups refuse
        var twice = DeepSeekKernels.Ops.SupportMatrix([ilgpu, DeepSeekKernels.Ops.Create(CpuRuntime, Backend.Ilgpu)]);
        Assert.Throws<ArgumentException>(() => twice.Supports(matrix.Signatures[0], Backend.Ilgpu));
        Assert.Equal(matrix.Signatures.Count, matrix.Signatures.Select(s => s.ToString()).Distinct().Count());
        Assert.Equal(DeepSeekKernels.Ops.OpNames.Order(), matrix.Signatures.Select(s => s.Op).Distinct().Order());
        Assert.All(DeepSeekKernels.Ops.OpNames, op => Assert.Contains(matrix.Signatures, s => s.Op == op && s.X == ElementType.F32));
        foreach (var op in (string[])["Linear", "HeadwiseLinear", "GroupedLinear"])
            Assert.Equal([WeightScheme.Dense, WeightScheme.Fp8Block, WeightScheme.Int4Group],
                matrix.Signatures.Where(s => s.Op == op && s.Scheme != null).Select(s => s.Scheme!.Value).Distinct().Order());
        Assert.Contains(new OpSignature("Linear", ElementType.F32) { Scheme = WeightScheme.Dense, Weight = ElementType.BF16 }, matrix.Signatures);
        Assert.Contains(new OpSignature("RmsNorm", ElementType.BF16) { Weight = ElementType.BF16 }, matrix.Signatures);
        for (int r = 0; r < matrix.Signatures.Count; r++)
        {
            Assert.True(matrix[r, 0], matrix.Signatures[r].ToString());
            Assert.Equal(ilgpu.Supports(matrix.Signatures[r]), matrix[r, 1]);
        }
        Assert.True(matrix.Supports(new OpSignature("Softmax", ElementType.F32), Backend.Ilgpu));
        Assert.True(matrix.Supports(Bf16Linear, Backend.Ilgpu));
        Assert.True(matrix.Supports(new OpSignature("Rope", ElementType.F32), Backend.Ilgpu));
        Assert.False(matrix.Supports(new OpSignature("Attention", ElementType.F32) { HeadDim = 128 }, Backend.Ilgpu));
        // the RMSNorm pairs, the small ops (f32, bf16); Linear (4 schemes, strided), LinearSiluMul (4), DequantizeFp8, HeadwiseLinear (4),
        // Embedding (3), and bf16 Linear, LinearSiluMul, HeadwiseLinear and Embedding; FP8 activations (quantiser, LinearW8A8,
        // GroupedLinearW8A8; f32, bf16 each); Rope (f32, bf16), KvAppend (3), PagedAttention (3) and PagedMlaAttention (3); the MoE
        // ops: MoeRoute, MoePermute, MoeCombine (f32, bf16 each), GroupedLinear and GroupedLinearSiluMul (4 schemes and bf16 each)
        Assert.Equal(8 + 10 + 5 + 4 + 1 + 4 + 3 + 4 + 3 * 2 + 2 + 3 + 3 + 3 + 6 + 10, Enumerable.Range(0, matrix.Signatures.Count).Count(r => matrix[r, 1]));
    }

    /// <summary>
    /// What a backend says and what it does agree: for a handful of real calls, a strict Ops runs the call when Supports
    /// says yes (no NotImplementedException, no refusal), and refuses it naming exactly the signature it asked about otherwise.
    /// </summary>
    [Theory, InlineData(Backend.Reference), InlineData(Backend.Ilgpu)]
    public void SupportsAgreesWithWhatEachBackendRuns(Backend backend) => SupportsAgreesWithWhatItRuns(backend);

    /// <summary>As <see cref="SupportsAgreesWithWhatEachBackendRuns"/>, for the hand-CUDA kernels (needs a GPU and libdeepseek_kernels.so).</summary>
    [Fact]
    public void SupportsAgreesWithWhatTheNativeBackendRuns() => SupportsAgreesWithWhatItRuns(Backend.Native);

    static void SupportsAgreesWithWhatItRuns(Backend backend)
    {
        var runtime = backend == Backend.Native ? TestDevices.RequireNative() : CpuRuntime;
        var ops = DeepSeekKernels.Ops.Create(runtime, backend);
        DeviceBuffer<float> F(int length, int seed) => runtime.Upload<float>(RandomValues(length, seed));
        DeviceBuffer<BFloat16> B(int length, int seed) => runtime.Upload<BFloat16>(RandomValues(length, seed).Select(BFloat16.FromSingle).ToArray());
        using var x = F(Rows * In, 1);
        using var x2 = F(Rows * In, 2);
        using var wIn = F(In, 3);
        using var y = F(Rows * Out, 4);
        using var r = F(Rows * In, 5);
        using var bx = B(Rows * In, 6);
        using var bres = B(Rows * In, 7);
        using var bw = B(In, 8);
        using var by = B(Rows * In, 9);
        using var br = B(Rows * In, 10);
        using var f32 = new TestWeight("f32", 1, Out, In, seed: 11, runtime: runtime);
        using var fp8 = new TestWeight("fp8", 1, Out, In, seed: 12, blockRows: 16, blockCols: 16, runtime: runtime);
        using var table = new TestWeight("bf16", 1, 50, In, seed: 13, runtime: runtime);
        using var ids = runtime.Upload<int>(new[] { 3, 0, 49 });
        using var positions = runtime.Upload<int>(new[] { 0, 1, 2 });
        using var rope = RopeTable.Create(runtime, RopeScaling.Plain(10000), 8, 16);

        var calls = new (OpSignature Signature, Action Call)[]
        {
            (new("RmsNorm", ElementType.F32) { Weight = ElementType.F32 }, () => ops.RmsNorm(x.View, wIn.View, r.View, In, 1e-6f)),
            (new("RmsNorm", ElementType.BF16) { Weight = ElementType.BF16 }, () => ops.RmsNorm(bx.View, bw.View, by.View, In, 1e-6f)),
            (new("AddRmsNorm", ElementType.BF16) { Weight = ElementType.F32 }, () => ops.AddRmsNorm(bx.View, bres.View, wIn.View, br.View, by.View, In, 1e-6f)),
            (F32Linear, () => ops.Linear(x.View, f32.Matrix, default, y.View)),
            (F32Linear with { Scheme = WeightScheme.Fp8Block, Weight = ElementType.Fp8E4M3 }, () => ops.Linear(x.View, fp8.Matrix, default, y.View)),
            (new("Embedding", ElementType.F32) { Scheme = WeightScheme.Dense, Weight = ElementType.BF16 }, () => ops.Embedding(ids.View, table.Matrix, r.View)),
            (new("Rope", ElementType.F32), () => ops.Rope(x.View, positions.View, rope, 3, 8, 0, RopeLayout.HalfSplit)),
            (new("CopyColumns", ElementType.F32), () => ops.CopyColumns(x.View, In, 0, r.View, In, 0, 8, Rows)),
            (new("SiluAndMul", ElementType.F32), () => ops.SiluAndMul(x.View, r.View, In / 2)),
            (new("Softmax", ElementType.F32), () => ops.Softmax(x.View, r.View, In)),
            (new("Add", ElementType.F32), () => ops.Add(x.View, x2.View, r.View)),
            (new("Scale", ElementType.F32), () => ops.Scale(x.View, 0.5f, r.View)),
        };
        foreach (var (signature, call) in calls)
        {
            if (ops.Supports(signature))
            {
                call();
                runtime.Synchronize();
            }
            else
            {
                var e = Assert.Throws<OpNotSupportedException>(call);
                Assert.Equal(signature, e.Signature);
                Assert.Equal(backend, e.Backend);
            }
        }
    }

    [Fact]
    public void ExcludedOpsCountAsUnsupported()
    {
        // the stub runs f32 Linear; excluding Linear makes strict Ops refuse it and fallback Ops send it to the reference
        var strict = DeepSeekKernels.Ops.Over(CpuRuntime, F32LinearOnly()).Excluding("Linear");
        Assert.Equal(["Linear"], strict.ExcludedOps);
        Assert.False(strict.Supports(F32Linear, out string? reason));
        Assert.Equal("excluded by DSK_EXCLUDE_OPS / Ops.Excluding", reason);
        using var w = new TestWeight("f32", 1, Out, In, seed: 1);
        using var x = Upload(RandomValues(Rows * In, 2));
        using var y = Poisoned(Rows * Out);
        var e = Assert.Throws<OpNotSupportedException>(() => strict.Linear(x.View, w.Matrix, default, y.View));
        Assert.Equal(F32Linear, e.Signature);
        AllNaN(y.ToArray(), "the output of a refused call");

        var fallback = strict.WithReferenceFallback();
        Assert.Equal(["Linear"], fallback.ExcludedOps);
        fallback.Linear(x.View, w.Matrix, default, y.View);
        Assert.Equal(F32Linear, Assert.Single(fallback.FallbackReport).Signature);
        Assert.False(float.IsNaN(y.ToArray()[0]));

        Assert.Throws<ArgumentException>(() => strict.Excluding("Lineal"));
        var reference = ReferenceOps;
        Assert.Same(reference, reference.Excluding("Linear")); // the reference has nowhere else to send a call
        Assert.Empty(reference.ExcludedOps);
    }
}
