using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.OpTests;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Conformance;

/// <summary>
/// The conformance suite (llama.cpp's <c>test-backend-ops</c>, ILGPU's per-accelerator test classes): for every op of
/// <see cref="Ops.OpNames"/> one abstract class <c>XConformance</c>, written once against a float64 oracle taken from the
/// op's "effectively computes" doc, and five sealed subclasses that run it on the reference (on ILGPU's CPU
/// accelerator's buffers), on the CPU backend, on ILGPU's CPU accelerator (strict: no fallback), on ILGPU over a CUDA GPU and on the native
/// kernels (both <see cref="NeedsCudaGpuAttribute"/>: one skipped test per theory where no GPU is found, a failure under
/// DSK_REQUIRE_GPU=1). RmsNorm and AddRmsNorm have theirs in <c>RmsNorm/RmsNormBackendTests.cs</c> (the same four
/// backends: RmsNormReferenceOnDeviceTests, RmsNormIlgpuCpuTests, RmsNormIlgpuCudaTests, RmsNormNativeTests).
/// <para>
/// Every case builds the <see cref="OpSignature"/> its call makes, and <see cref="Supported"/> first proves that it is
/// exactly the one the op builds (the call, sent to Ops over a backend that refuses everything, is refused naming it).
/// Where this backend does not support the signature, the case asserts the strict refusal
/// (<see cref="OpNotSupportedException"/> naming the signature and the backend, nothing written) and stops there: that
/// is not a numeric check. Otherwise it runs the call on outputs poisoned with NaN (inside larger NaN buffers, so a
/// write outside the output shows) and compares every element with the oracle within <see cref="ConformanceTolerance"/>.
/// </para>
/// </summary>
[Collection(nameof(DeviceCollection))]
public abstract class ConformanceTest
{
    /// <summary>NaN elements after each output: they must stay NaN.</summary>
    protected const int Guard = 7;

    /// <summary>What int outputs (expert ids, offsets, slots) start as: no op writes it.</summary>
    protected const int IntPoison = -123_456_789;

    /// <summary>The ops under test (strict); skips the test where the backend cannot run.</summary>
    protected abstract Ops Ops { get; }

    /// <summary>The runtime the ops run on: every buffer of a case lives there.</summary>
    protected DeviceRuntime Runtime => Ops.Runtime!;

    /// <summary>
    /// Whether this class reruns the ILGPU kernels on a CPU accelerator simulating a GPU's 32-lane warps
    /// (<see cref="ConformanceBackends.IlgpuWarp32"/>), where every shuffle waits on 32 OS threads.
    /// </summary>
    protected virtual bool SimulatesGpuWarps => false;

    /// <summary>
    /// Skips (reported as skipped, with the reason) a case of thousands of keys or tokens under <see cref="SimulatesGpuWarps"/>:
    /// 20 to 90 s each at 32 simulated lanes; the same case runs at the suite's 2 lanes and natively on a GPU, and the short
    /// cases of the class run at 32 lanes.
    /// </summary>
    protected void SkipLongCaseAtGpuWarps(string what) =>
        Assert.SkipWhen(SimulatesGpuWarps, $"{what}: 20-90 s a case on 32 simulated lanes; it runs in the 2-lane ILGPU-CPU class and natively on a GPU");

    /// <summary>
    /// Proves that <paramref name="signature"/> is the one <paramref name="call"/> builds, then returns whether this
    /// backend supports it. The call first goes to Ops over a backend that records what it is asked and refuses
    /// everything: it must be refused naming exactly <paramref name="signature"/>, having asked about nothing else and
    /// written nothing. Then, where this backend does not support the signature, the call must throw
    /// <see cref="OpNotSupportedException"/> naming the signature, this backend and its reason, and leave every
    /// <paramref name="outputs"/> buffer as it was (a poisoned output still NaN): strict mode holds, and the case ends.
    /// </summary>
    protected bool Supported(OpSignature signature, Action<Ops> call, params Watched[] outputs)
    {
        Assert.False(Ops.ReferenceFallback, "conformance runs strict Ops");
        var before = outputs.Select(o => o.Read()).ToArray();
        var recorder = new StubBackend(_ => false);
        var asked = Assert.Throws<OpNotSupportedException>(() => call(Ops.Over(Runtime, recorder)));
        Assert.Equal(signature, asked.Signature);
        Assert.Equal([signature], recorder.Asked);
        Unchanged(outputs, before, "a call the recording backend refused");

        if (Ops.Supports(signature, out string? reason))
        {
            Assert.Null(reason);
            return true;
        }
        var e = Assert.Throws<OpNotSupportedException>(() => call(Ops));
        Assert.Equal(signature, e.Signature);
        Assert.Equal(Ops.Backend, e.Backend);
        Assert.Equal(reason, e.Reason);
        Assert.StartsWith($"{signature} is not supported by the {Ops.Backend} backend", e.Message);
        Runtime.Synchronize(); // nothing was enqueued, nor any device error recorded
        Unchanged(outputs, before, $"{signature}, refused by the {Ops.Backend} backend");
        return false;
    }

    /// <summary><see cref="Supported"/>, then the call on this backend when it is supported; true when it ran.</summary>
    protected bool Runs(OpSignature signature, Action<Ops> call, params Watched[] outputs)
    {
        if (!Supported(signature, call, outputs))
            return false;
        call(Ops);
        return true;
    }

    static void Unchanged(Watched[] outputs, byte[][] before, string what)
    {
        for (int i = 0; i < outputs.Length; i++)
            Assert.True(before[i].AsSpan().SequenceEqual(outputs[i].Read()), $"{what}: output {i} was written");
    }

    /// <summary>The signature of an op over a weight: f32 activations, the weight's scheme and element type.</summary>
    protected static OpSignature Weighted(string op, WeightMatrix weight, bool stridedRows = false) =>
        new(op, ElementType.F32) { Scheme = weight.Scheme, Weight = weight.ElementType, StridedRows = stridedRows };

    protected DeviceBuffer<float> Upload(float[] values) => Runtime.Upload<float>(values);

    protected DeviceBuffer<int> Upload(int[] values) => Runtime.Upload<int>(values);

    protected DeviceBuffer<BFloat16> Upload(BFloat16[] values) => Runtime.Upload<BFloat16>(values);

    /// <summary>A float32 buffer full of NaN.</summary>
    protected DeviceBuffer<float> Poisoned(long length) => Runtime.Upload<float>(OpTestSupport.Nan(length));

    /// <summary>A bfloat16 buffer full of NaN.</summary>
    protected DeviceBuffer<BFloat16> PoisonedBf16(long length) =>
        Runtime.Upload<BFloat16>(Enumerable.Repeat(BFloat16.NaN, checked((int)length)).ToArray());

    /// <summary>An int32 buffer full of <see cref="IntPoison"/>.</summary>
    protected DeviceBuffer<int> PoisonedInts(long length) => Runtime.Upload<int>(Enumerable.Repeat(IntPoison, checked((int)length)).ToArray());

    /// <summary>
    /// A weight on this runtime in a stored form: "f32", "bf16", "fp8" (128 x 128 scale blocks), "fp8/RxC" (R x C blocks),
    /// "int4" (groups of 32 in features), "int4/gN" (groups of N); its <see cref="OpTestSupport.TestWeight.Values"/> are
    /// the exact dequantised values the oracles use.
    /// </summary>
    protected OpTestSupport.TestWeight Weight(string form, int count, int rows, int cols, int seed)
    {
        string[] parts = form.Split('/');
        int blockRows = 128, blockCols = 128, groupSize = 32;
        if (parts.Length == 2 && parts[0] == "fp8")
        {
            var block = parts[1].Split('x');
            (blockRows, blockCols) = (int.Parse(block[0]), int.Parse(block[1]));
        }
        else if (parts.Length == 2 && parts[0] == "int4")
            groupSize = int.Parse(parts[1].TrimStart('g'));
        return new OpTestSupport.TestWeight(parts[0], count, rows, cols, seed, blockRows, blockCols, Runtime, groupSize);
    }

    /// <summary>Columns [<paramref name="start"/>, start + width) of every row of a [rows, columns] float32 array.</summary>
    protected static float[] ColumnBlock(float[] values, int rows, int columns, int start, int width)
    {
        var block = new float[rows * width];
        for (int r = 0; r < rows; r++)
            Array.Copy(values, r * columns + start, block, r * width, width);
        return block;
    }

    /// <summary>
    /// A [rows, columns] float32 result whose column block [start, start + width) must match the oracle and whose other
    /// elements must still be NaN.
    /// </summary>
    protected static void BlockMatches(double[] expected, double[] scale, float[] actual, int rows, int columns, int start, int width,
        string what, double relative)
    {
        OpTestSupport.Close(expected, scale, ColumnBlock(actual, rows, columns, start, width), what, relative, ConformanceTolerance.Absolute);
        for (int i = 0; i < rows * columns; i++)
        {
            int c = i % columns;
            if (c < start || c >= start + width)
                Assert.True(float.IsNaN(actual[i]), $"{what}: element [{i / columns}, {c}] is outside the output block and was written ({actual[i]})");
        }
    }
}

/// <summary>
/// The tolerances of the conformance suite, in one place. A value passes when
/// <c>|actual - oracle| &lt;= relative * scale + absolute</c>, where the oracle is float64 and scale is the sum of the
/// magnitudes of the terms that made the value (a dot product's |x * w| terms; for attention, each key's weighted |v| times
/// one plus the magnitude of its score's terms: <see cref="Float64Oracles.Attend"/>), so long sums get a fair bound and
/// cancellation does not make a bound of zero. Copies, permutations, dequantisation, Add and Scale are compared bit for bit.
/// NaN never passes.
/// </summary>
public static class ConformanceTolerance
{
    /// <summary>float32 activations and weights: float32 arithmetic, any summation order.</summary>
    public const double F32 = 1e-5;

    /// <summary>
    /// bfloat16 operands (bf16 weights, bf16 KV pages): a kernel may round the other operand to bf16 as well (tensor cores),
    /// about 2^-8 per term.
    /// </summary>
    public const double Bf16 = 1e-2;

    /// <summary>FP8-block and INT4-group weights, against the dequantised weight (bf16 values, exact in float32): float32 arithmetic.</summary>
    public const double DequantisedWeight = 1e-5;

    /// <summary>Added to every bound, for values near zero.</summary>
    public const double Absolute = 1e-6;

    /// <summary>The relative tolerance of a weight form ("f32", "bf16", "fp8...", "int4...").</summary>
    public static double Weight(string form) => form.Split('/')[0] switch
    {
        "f32" => F32,
        "bf16" => Bf16,
        "fp8" or "int4" => DequantisedWeight,
        _ => throw new ArgumentOutOfRangeException(nameof(form), form, "f32, bf16, fp8 or int4"),
    };

    /// <summary>The relative tolerance of attention over KV pages of <paramref name="pages"/>.</summary>
    public static double Pages(ElementType pages) => pages == ElementType.BF16 ? Bf16 : F32;
}

/// <summary>A device buffer whose bytes a refused call must leave as they were (a NaN-poisoned output, an in-place operand).</summary>
public readonly struct Watched
{
    readonly Func<byte[]> _read;

    Watched(Func<byte[]> read) => _read = read;

    /// <summary>The buffer's bytes now.</summary>
    public byte[] Read() => _read();

    public static implicit operator Watched(DeviceBuffer<float> buffer) => new(() => MemoryMarshal.AsBytes<float>(buffer.ToArray()).ToArray());

    public static implicit operator Watched(DeviceBuffer<BFloat16> buffer) => new(() => MemoryMarshal.AsBytes<BFloat16>(buffer.ToArray()).ToArray());

    public static implicit operator Watched(DeviceBuffer<int> buffer) => new(() => MemoryMarshal.AsBytes<int>(buffer.ToArray()).ToArray());

    public static implicit operator Watched(DeviceBuffer<Float8E4M3> buffer) => new(() => MemoryMarshal.AsBytes<Float8E4M3>(buffer.ToArray()).ToArray());
}

/// <summary>
/// The Ops every conformance subclass runs, one per backend and device per process (so ILGPU compiles each kernel once):
/// all strict.
/// </summary>
public static class ConformanceBackends
{
    static readonly Lazy<Ops> ReferenceOps = new(() => Ops.Create(TestDevices.Cpu, Backend.Reference));
    static readonly Lazy<Ops> IlgpuCpuOps = new(() => Ops.Create(TestDevices.Cpu, Backend.Ilgpu));
    static readonly Lazy<Ops> CpuOps = new(() => Ops.CreateCpu(TestDevices.Cpu, 3));
    static readonly Lazy<Ops> IlgpuWarp32Ops = new(() => Ops.Create(DeviceRuntime.CreateCpu(32, 4), Backend.Ilgpu));
    static Ops? s_ilgpuCuda, s_native;

    /// <summary>The reference, on ILGPU's CPU accelerator's buffers (used in place).</summary>
    public static Ops Reference => ReferenceOps.Value;

    /// <summary>The ILGPU kernels on ILGPU's CPU accelerator, strict.</summary>
    public static Ops IlgpuCpu => IlgpuCpuOps.Value;

    /// <summary>
    /// The ILGPU kernels on a CPU accelerator simulating a GPU's 32-lane warps, 4 to a group (128 threads: Linear's 4-warp
    /// GEMV fits), strict; a runtime of its own, kept for the process.
    /// </summary>
    public static Ops IlgpuWarp32 => IlgpuWarp32Ops.Value;

    /// <summary>
    /// The CPU backend, strict, on a pool of 3 threads (more than this machine's cores, so work splits unevenly and a thread
    /// often finds nothing left: the cases a 2-thread pool would not reach).
    /// </summary>
    public static Ops Cpu => CpuOps.Value;

    /// <summary>
    /// The ILGPU kernels on the CUDA GPU, strict. Callers pass <see cref="TestDevices.RequireCuda"/>, which skips (fails under
    /// DSK_REQUIRE_GPU=1) where there is none, and which DeviceTheoryTests' scan sees in the subclass.
    /// </summary>
    public static Ops IlgpuCuda(DeviceRuntime cuda) => s_ilgpuCuda ??= Ops.Create(cuda, Backend.Ilgpu);

    /// <summary>The hand-CUDA kernels, strict. Callers pass <see cref="TestDevices.RequireNative"/> (no GPU or no native library: skip).</summary>
    public static Ops Native(DeviceRuntime cuda) => s_native ??= Ops.Create(cuda, Backend.Native);
}

/// <summary>Float64 oracles several conformance classes share.</summary>
public static class Float64Oracles
{
    /// <summary>
    /// One query row attending keys 0 .. <paramref name="keys"/> - 1 (the causal window already cut): scores
    /// <c>scale * (q . key(j))</c>, softmax with the maximum subtracted, output <c>sum_j w[j] * value(j)</c>, all in float64,
    /// added into <paramref name="output"/>; <paramref name="magnitude"/> gets <c>sum_j w[j] |value(j)| (1 + S_j + |score_j - max|)</c>
    /// with <c>S_j = |scale| sum_i |q_i key(j, i)|</c>: the scale of the float32 error, since a score's rounding error is about
    /// S_j times epsilon and moves w[j] by that much relatively.
    /// </summary>
    public static void Attend(ReadOnlySpan<float> q, int keys, Func<int, int, float> key, Func<int, int, float> value, int vHeadDim,
        double scale, Span<double> output, Span<double> magnitude)
    {
        var scores = new double[keys];
        var sizes = new double[keys];
        for (int j = 0; j < keys; j++)
        {
            double dot = 0, size = 0;
            for (int i = 0; i < q.Length; i++)
            {
                double term = (double)q[i] * key(j, i);
                dot += term;
                size += Math.Abs(term);
            }
            scores[j] = scale * dot;
            sizes[j] = Math.Abs(scale) * size;
        }
        double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
        for (int j = 0; j < keys; j++)
        {
            double w = Math.Exp(scores[j] - max) / sum;
            for (int i = 0; i < vHeadDim; i++)
            {
                double v = value(j, i);
                output[i] += w * v;
                magnitude[i] += w * Math.Abs(v) * (1 + sizes[j] + Math.Abs(scores[j] - max));
            }
        }
    }

    /// <summary>
    /// Causal grouped-query attention of one sequence in float64 (the Attention op's doc): q [tokens, qHeads, headDim],
    /// keys at <c>k[j * kRowStride + kvHead * headDim + i]</c>, values at <c>v[j * vRowStride + kvHead * vHeadDim + i]</c>.
    /// </summary>
    public static (double[] Output, double[] Scale) Attention(float[] q, float[] k, float[] v, int tokens, int qHeads, int kvHeads,
        int headDim, int vHeadDim, int queryStart, float scale, int kRowStride, int vRowStride)
    {
        var output = new double[tokens * qHeads * vHeadDim];
        var magnitude = new double[output.Length];
        int group = qHeads / kvHeads;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < qHeads; h++)
            {
                int kvh = h / group, at = (t * qHeads + h) * vHeadDim;
                Attend(q.AsSpan((t * qHeads + h) * headDim, headDim), queryStart + t + 1,
                    (j, i) => k[(long)j * kRowStride + kvh * headDim + i], (j, i) => v[(long)j * vRowStride + kvh * vHeadDim + i],
                    vHeadDim, scale, output.AsSpan(at, vHeadDim), magnitude.AsSpan(at, vHeadDim));
            }
        return (output, magnitude);
    }

    /// <summary>x [rows, cols] @ W^T for a weight's exact values W [outFeatures, cols] (no bias), with the sum of |terms| as scale.</summary>
    public static (double[] Expected, double[] Scale) Linear(float[] x, ReadOnlySpan<float> weight, int rows, int cols, int outFeatures)
    {
        var expected = new double[rows * outFeatures];
        var scale = new double[expected.Length];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outFeatures; o++)
            {
                double sum = 0, size = 0;
                for (int c = 0; c < cols; c++)
                {
                    double term = (double)x[r * cols + c] * weight[o * cols + c];
                    sum += term;
                    size += Math.Abs(term);
                }
                expected[r * outFeatures + o] = sum;
                scale[r * outFeatures + o] = size;
            }
        return (expected, scale);
    }
}
