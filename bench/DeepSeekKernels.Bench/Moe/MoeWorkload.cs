using System.Runtime.InteropServices;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using DeepSeekKernels.Bench.Attention;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Moe;

// The mixture-of-experts benchmarks of issue 13, on DeepSeek-V3's routed experts (hidden 7168, 256 experts, top-8, 8 groups of
// which 4 are kept, sigmoid scores with the correction bias (noaux_tc), weights normalised and scaled by 2.5, expert
// intermediate 2048):
//   MoeRouteBenchmarks  Ops.MoeRoute alone (router logits -> expert ids and weights), native and ILGPU, vs a copy of the logits
//   MoeLayerBenchmarks  Ops.MoeLayer, the whole routed layer, bf16 / FP8 / INT4 experts, vs a copy of the used experts' bytes,
//                       the cuBLAS bf16 GEMM rate and a per-expert cuBLAS loop over the same routing
// Both go through the op API (Ops.Create(runtime, Backend.Native / Backend.Ilgpu)); its host cost (argument checks, dispatch) is
// kept out of the figures by timing CUDA graphs: each method's calls are captured once (DeviceRuntime.CaptureGraph, after one
// uncaptured call that compiles and loads every kernel) and an invocation replays the graph and synchronises. GPU only
// ([CudaOnly]): smoke runs and machines without a GPU leave them out (Program.cs says so and exits 0).
// DSK_BENCH_HEADLINE=1 (scripts/gpu-check.sh, its bench-moe step) keeps the headline cases: routing at 1 and 512 tokens; the
// layer at 1, 16, 128 and 4096 tokens with bf16 and FP8 experts (INT4 and ILGPU's 4096-token layer left out): 33 cases.

/// <summary>DeepSeek-V3's MoE shapes and router configuration, and which parameter sets the MoE benchmarks run.</summary>
internal static class MoeShape
{
    public const int Hidden = 7168, Experts = 256, TopK = 8, Groups = 8, TopKGroups = 4, Intermediate = 2048;

    /// <summary>DeepSeek-V3's router: sigmoid scores, noaux_tc with the correction bias, normalised, times 2.5.</summary>
    public static MoeRouting Routing { get; } = new()
    {
        Experts = Experts,
        TopK = TopK,
        Scoring = MoeScoring.Sigmoid,
        Method = MoeTopKMethod.NoAuxTc,
        Groups = Groups,
        TopKGroups = TopKGroups,
        NormalizeTopK = true,
        RoutedScalingFactor = 2.5,
    };

    /// <summary>FLOPs of the experts' GEMMs for <paramref name="slots"/> routed rows: 2 x rows x (gate|up 2 x 2048 x 7168 + down 7168 x 2048).</summary>
    public static double ExpertFlops(long slots) => 2.0 * slots * (2.0 * Intermediate * Hidden + (double)Hidden * Intermediate);

    /// <summary>Distinct bytes touched between two uses of one input: more than twice the H200's 60 MB L2.</summary>
    public const long RotationBytes = 128L << 20;
}

/// <summary>
/// The layer's inputs, the same for every method and case of one token count: router weight [256, 7168] bf16 (random values
/// in [-2, 2) / 128, so the logits spread over about +-1 and the sigmoid does not saturate), correction bias [256] f32 in
/// [-0.05, 0.05), x [tokens, 7168] bf16 in [-2, 2). Drawn from <see cref="BenchData.RandomBf16"/>: router first, x after it.
/// </summary>
internal sealed class MoeInputs : IDisposable
{
    public MoeInputs(DeviceRuntime runtime, int tokens)
    {
        Tokens = tokens;
        long routerElements = (long)MoeShape.Experts * MoeShape.Hidden;
        var values = BenchData.RandomBf16(routerElements + (long)tokens * MoeShape.Hidden);
        var router = new BFloat16[routerElements];
        for (long i = 0; i < routerElements; i++)
            router[i] = BFloat16.FromSingle((float)values[(int)i] / 128); // a power of two: exact
        Router = runtime.Upload<BFloat16>(router);
        var random = new Random(13);
        Bias = runtime.Upload<float>(Enumerable.Range(0, MoeShape.Experts).Select(_ => (random.NextSingle() - 0.5f) / 10).ToArray());
        X = runtime.Upload<BFloat16>(values[(int)routerElements..]);
    }

    public int Tokens { get; }
    public DeviceBuffer<BFloat16> Router { get; }
    public DeviceBuffer<float> Bias { get; }
    public DeviceBuffer<BFloat16> X { get; }

    public WeightMatrix RouterWeight => WeightMatrix.Dense(Router.View, MoeShape.Experts, MoeShape.Hidden);

    /// <summary>Bytes the routing part of a layer call must move: the router weight, the bias, x read and y written.</summary>
    public static long RouterAndActivationBytes(int tokens) =>
        2L * MoeShape.Experts * MoeShape.Hidden + 4L * MoeShape.Experts + 2L * 2 * tokens * MoeShape.Hidden;

    public void Dispose()
    {
        Router.Dispose();
        Bias.Dispose();
        X.Dispose();
    }
}

/// <summary>
/// What the routing of one token count picked (the reference's routing of <see cref="MoeInputs"/>): rows per expert, so the
/// byte floor can count the experts actually used and the per-expert cuBLAS loop can walk them. Computed once per token count
/// in a setup (router logits by cuBLAS bf16 -> f32 on the GPU, then <c>Ops.Reference.MoeRoute</c>, the spec) and kept for the
/// report's columns, which see a fresh instance that ran no setup.
/// </summary>
internal sealed class MoeRoutingStats
{
    static readonly Dictionary<int, MoeRoutingStats> _byTokens = [];

    MoeRoutingStats(int tokens, int[] rowsPerExpert)
    {
        Tokens = tokens;
        RowsPerExpert = rowsPerExpert;
    }

    public int Tokens { get; }

    /// <summary>[256] rows (token slots) routed to each expert; they sum to tokens x 8.</summary>
    public int[] RowsPerExpert { get; }

    /// <summary>Distinct experts the routing picked.</summary>
    public int UsedExperts => RowsPerExpert.Count(r => r > 0);

    /// <summary>The stats of <paramref name="tokens"/> if a setup computed them in this process, else null.</summary>
    public static MoeRoutingStats? Find(int tokens)
    {
        lock (_byTokens)
            return _byTokens.GetValueOrDefault(tokens);
    }

    /// <summary>The stats of <paramref name="inputs"/>' token count, routed now on <paramref name="runtime"/> unless known.</summary>
    public static MoeRoutingStats Of(DeviceRuntime runtime, MoeInputs inputs)
    {
        if (Find(inputs.Tokens) is { } known)
            return known;
        int tokens = inputs.Tokens;
        using var logits = runtime.Allocate<float>((long)tokens * MoeShape.Experts);
        using var ids = runtime.Allocate<int>((long)tokens * MoeShape.TopK);
        using var weights = runtime.Allocate<float>((long)tokens * MoeShape.TopK);
        runtime.Bind();
        using (var cublas = new Cublas(runtime.CudaStreamHandle))
            cublas.GemmNT(tokens, MoeShape.Experts, MoeShape.Hidden, inputs.X.View.Pointer, inputs.Router.View.Pointer, logits.View.Pointer,
                CudaDataType.R16BF, CudaDataType.R32F);
        runtime.Synchronize();
        Ops.Reference.MoeRoute(logits.View, inputs.Bias.View, ids.View, weights.View, MoeShape.Routing);
        var rows = new int[MoeShape.Experts];
        foreach (int e in ids.ToArray())
            rows[e]++;
        var stats = new MoeRoutingStats(tokens, rows);
        lock (_byTokens)
            _byTokens[tokens] = stats;
        Console.WriteLine($"// MoE routing of {tokens} tokens: {stats.UsedExperts} of {MoeShape.Experts} experts used, " +
            $"at most {rows.Max()} rows on one expert");
        return stats;
    }
}

/// <summary>
/// One layer's routed experts on the device as the op API takes them: the fused [gate | up] stack (256 x [4096, 7168]) and the
/// down stack (256 x [7168, 2048]) in one scheme: "bf16" (dense, 22.5 GB), "fp8" (e4m3 with f32 scales per 128 x 128 block,
/// 11.3 GB; "fp8-w8a8": the same weights, run with FP8 activations, see <see cref="MoeLayerBenchmarks"/>) or "int4" (bf16 scale and zero point per group of 128, 5.6 GB + 0.35 GB). Filled on the device: one 64 MiB block of
/// random bytes is uploaded and copied over the stacks at shifting offsets (no host copy of the whole stacks), FP8's NaN codes
/// turned into finite ones first; FP8 scales are 1/448, INT4 scales 0.01 and zero points 8.
/// </summary>
internal sealed class MoeExperts : IDisposable
{
    public const string Bf16 = "bf16", Fp8 = "fp8", Int4 = "int4";

    /// <summary>FP8 experts run as W8A8 (the scratch holds FP8 inputs): the storage of <see cref="Fp8"/>.</summary>
    public const string Fp8W8A8 = "fp8-w8a8";

    /// <summary>How <paramref name="scheme"/> stores the experts (<see cref="Fp8W8A8"/>: as <see cref="Fp8"/>).</summary>
    public static string Storage(string scheme) => scheme == Fp8W8A8 ? Fp8 : scheme;
    const long PatternBytes = 64L << 20;

    readonly List<IDisposable> _owned = [];

    public MoeExperts(DeviceRuntime runtime, string scheme)
    {
        Scheme = scheme;
        scheme = Storage(scheme);
        const int e = MoeShape.Experts, h = MoeShape.Hidden, i = MoeShape.Intermediate;
        var pattern = Keep(runtime.Upload<byte>(RandomBytes()));
        switch (scheme)
        {
            case Bf16:
            {
                var gateUp = Keep(runtime.Allocate<BFloat16>((long)e * 2 * i * h));
                var down = Keep(runtime.Allocate<BFloat16>((long)e * h * i));
                Fill(runtime, gateUp.View.Pointer, gateUp.Length * 2, pattern);
                Fill(runtime, down.View.Pointer, down.Length * 2, pattern);
                GateUp = WeightMatrix.Dense(gateUp.View, 2 * i, h, e);
                Down = WeightMatrix.Dense(down.View, h, i, e);
                (GateUpData, DownData) = (gateUp.View.Pointer, down.View.Pointer);
                break;
            }
            case Fp8:
            {
                var gateUp = Keep(runtime.Allocate<Float8E4M3>((long)e * 2 * i * h));
                var down = Keep(runtime.Allocate<Float8E4M3>((long)e * h * i));
                Fill(runtime, gateUp.View.Pointer, gateUp.Length, pattern);
                Fill(runtime, down.View.Pointer, down.Length, pattern);
                var gateUpScale = Keep(Constant(runtime, (long)e * Blocks(2 * i) * Blocks(h), 1f / 448));
                var downScale = Keep(Constant(runtime, (long)e * Blocks(h) * Blocks(i), 1f / 448));
                GateUp = WeightMatrix.Fp8(gateUp.View, gateUpScale.View, 2 * i, h, count: e);
                Down = WeightMatrix.Fp8(down.View, downScale.View, h, i, count: e);
                (GateUpData, DownData) = (gateUp.View.Pointer, down.View.Pointer);
                break;
            }
            case Int4:
            {
                var gateUp = Keep(runtime.Allocate<Int4x2>((long)e * 2 * i * h / 2));
                var down = Keep(runtime.Allocate<Int4x2>((long)e * h * i / 2));
                Fill(runtime, gateUp.View.Pointer, gateUp.Length, pattern);
                Fill(runtime, down.View.Pointer, down.Length, pattern);
                long gateUpGroups = (long)e * 2 * i * (h / 128), downGroups = (long)e * h * (i / 128);
                var gateUpScale = Keep(Constant(runtime, gateUpGroups, BFloat16.FromSingle(0.01f)));
                var gateUpZero = Keep(Constant(runtime, gateUpGroups, BFloat16.FromSingle(8f)));
                var downScale = Keep(Constant(runtime, downGroups, BFloat16.FromSingle(0.01f)));
                var downZero = Keep(Constant(runtime, downGroups, BFloat16.FromSingle(8f)));
                GateUp = WeightMatrix.Int4(gateUp.View, gateUpScale.View, gateUpZero.View, 2 * i, h, 128, e);
                Down = WeightMatrix.Int4(down.View, downScale.View, downZero.View, h, i, 128, e);
                (GateUpData, DownData) = (gateUp.View.Pointer, down.View.Pointer);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(scheme), scheme, "bf16, fp8 or int4");
        }
        runtime.Synchronize(); // the copies out of the pattern are done before it is freed
        pattern.Dispose();
        _owned.Remove(pattern);
    }

    public string Scheme { get; }
    public WeightMatrix GateUp { get; }
    public WeightMatrix Down { get; }

    /// <summary>The device address of the gate|up stack's data ([256, 4096, 7168] elements in the scheme's storage).</summary>
    public IntPtr GateUpData { get; }

    /// <summary>The device address of the down stack's data ([256, 7168, 2048] elements in the scheme's storage).</summary>
    public IntPtr DownData { get; }

    /// <summary>Bytes of one expert's gate|up and down matrices in <paramref name="scheme"/>: data, scales and zero points.</summary>
    public static long BytesPerExpert(string scheme)
    {
        const long h = MoeShape.Hidden, i = MoeShape.Intermediate, elements = 2 * i * h + h * i;
        return Storage(scheme) switch
        {
            Fp8 => elements + 4L * (Blocks(2 * i) * Blocks(h) + Blocks(h) * Blocks(i)),
            Int4 => elements / 2 + 2 * 2 * (2 * i * (h / 128) + h * (i / 128)),
            _ => 2 * elements,
        };
    }

    static long Blocks(long n) => (n + 127) / 128;

    /// <summary>The 64 MiB source block: random bf16 values' bytes, with every e4m3 NaN code (S.1111.111) made finite.</summary>
    static byte[] RandomBytes()
    {
        var bytes = MemoryMarshal.AsBytes(BenchData.RandomBf16(PatternBytes / 2)).ToArray();
        for (long k = 0; k < bytes.LongLength; k++)
            if ((bytes[k] & 0x7F) == 0x7F)
                bytes[k] &= 0xF7;
        return bytes;
    }

    /// <summary>Fills <paramref name="bytes"/> at <paramref name="destination"/> with random bytes (no e4m3 NaN codes) on the device.</summary>
    public static void RandomFill(DeviceRuntime runtime, IntPtr destination, long bytes)
    {
        using var pattern = runtime.Upload<byte>(RandomBytes());
        Fill(runtime, destination, bytes, pattern);
        runtime.Synchronize();
    }

    /// <summary>Fills <paramref name="bytes"/> at <paramref name="destination"/> with windows of the pattern, each starting at another offset.</summary>
    static void Fill(DeviceRuntime runtime, IntPtr destination, long bytes, DeviceBuffer<byte> pattern)
    {
        runtime.Bind();
        long window = pattern.Length / 2;
        for (long at = 0, n = 0; at < bytes; at += window, n++)
        {
            long offset = n * 4099L * 256 % window; // 256-byte aligned, a different start for every window
            CudaDriver.CopyDeviceToDeviceAsync(destination + (nint)at, pattern.View.Pointer + (nint)offset, Math.Min(window, bytes - at),
                runtime.CudaStreamHandle);
        }
    }

    /// <summary>A buffer of <paramref name="length"/> copies of <paramref name="value"/>, filled by doubling copies on the device.</summary>
    static DeviceBuffer<T> Constant<T>(DeviceRuntime runtime, long length, T value) where T : unmanaged
    {
        var buffer = runtime.Allocate<T>(length);
        long seed = Math.Min(length, 1 << 16);
        buffer.View.Slice(0, seed).CopyFromHost(Enumerable.Repeat(value, (int)seed).ToArray());
        runtime.Bind();
        long size = Marshal.SizeOf<T>();
        for (long have = seed; have < length; have *= 2)
            CudaDriver.CopyDeviceToDeviceAsync(buffer.View.Pointer + (nint)(have * size), buffer.View.Pointer, Math.Min(have, length - have) * size,
                runtime.CudaStreamHandle);
        return buffer;
    }

    T Keep<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    public void Dispose()
    {
        foreach (var item in _owned)
            item.Dispose();
        _owned.Clear();
    }
}

/// <summary>
/// A column of <see cref="MoeLayerBenchmarks"/> relative to one of its reference methods, matched more loosely than the shared
/// columns match (those need every parameter equal): "% of GEMM", this case's TFLOP/s over the cuBLAS bf16 GEMM's (any
/// parameters: the ceiling is measured once), and "x per-expert cuBLAS", the per-expert cuBLAS loop's mean time at the same
/// token count (it always runs bf16 experts) over this case's. "-" for the reference methods and the copy.
/// </summary>
public sealed class MoeRelativeColumn(string id, string name, string reference, bool rate, string legend) : IColumn
{
    public const string LoopMethod = "PerExpertCublas";

    public string Id => id;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 5;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => legend;

    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        string method = benchmarkCase.Descriptor.WorkloadMethod.Name;
        if (method is LoopMethod or BandwidthColumn.CopyMethod or RelativeToMethodColumn.GemmMethod)
            return "-";
        var other = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.WorkloadMethod.Name == reference && c.Descriptor.Type == benchmarkCase.Descriptor.Type &&
            (rate || Equals(c.Parameters["Tokens"], benchmarkCase.Parameters["Tokens"])));
        double? mine = summary[benchmarkCase]?.ResultStatistics?.Mean;
        double? theirs = other is null ? null : summary[other]?.ResultStatistics?.Mean;
        if (mine is not > 0 || theirs is not > 0)
            return "-";
        if (!rate)
            return (theirs.Value / mine.Value).ToString("F2");
        if (CaseInstance.Of<IComputeBenchmark>(benchmarkCase) is not { } instance || CaseInstance.Of<IComputeBenchmark>(other!) is not { } gemm)
            return "-";
        double myRate = instance.FloatingPointOperations(method) / mine.Value;
        double theirRate = gemm.FloatingPointOperations(reference) / theirs.Value;
        return myRate > 0 && theirRate > 0 ? (100 * myRate / theirRate).ToString("F0") + "%" : "-";
    }

    public override string ToString() => ColumnName;
}

/// <summary>
/// <see cref="MoeLayerBenchmarks"/>' columns and case filter: "% of GEMM" and "x per-expert cuBLAS" (<see cref="MoeRelativeColumn"/>);
/// the cuBLAS GEMM ceiling runs once (bf16, the first token count), the per-expert cuBLAS loop once per token count (bf16: the
/// baseline of every scheme), fp8-w8a8 only from <see cref="Ops.MoeLayerW8A8MinTokens"/> tokens and without its own copy, and
/// with DSK_BENCH_HEADLINE=1 ILGPU's 4096-token layer and its W8A8 cases are left out (CUDA-core GEMMs over 2.9 TFLOP per
/// call: seconds per iteration).
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class MoeLayerCasesAttribute : Attribute, IConfigSource
{
    public IConfig Config { get; } = ManualConfig.CreateEmpty()
        .AddColumn(
            new MoeRelativeColumn("MoeGemmShare", "% of GEMM", RelativeToMethodColumn.GemmMethod, rate: true,
                "TFLOP/s as a share of cuBLAS bf16 GEMM's (8192^3, random data), measured once in the same run"),
            new MoeRelativeColumn("MoeLoopRatio", "x per-expert cuBLAS", MoeRelativeColumn.LoopMethod, rate: false,
                "the per-expert cuBLAS loop's mean time at the same token count (bf16 experts) / this case's (above 1: faster than the loop)"))
        .AddFilter(new SimpleFilter(Keep));

    static bool Keep(BenchmarkCase c)
    {
        string method = c.Descriptor.WorkloadMethod.Name;
        int tokens = (int)c.Parameters["Tokens"];
        string weights = (string)c.Parameters["Weights"];
        return method switch
        {
            RelativeToMethodColumn.GemmMethod => weights == MoeExperts.Bf16 && tokens == MoeLayerBenchmarks.TokenCounts.First(),
            MoeRelativeColumn.LoopMethod => weights == MoeExperts.Bf16,
            // W8A8 runs from Ops.MoeLayerW8A8MinTokens tokens (below, the fp8 case is the same call); its copy is fp8's
            _ when weights == MoeExperts.Fp8W8A8 && (tokens < Ops.MoeLayerW8A8MinTokens || method == BandwidthColumn.CopyMethod) => false,
            nameof(MoeLayerBenchmarks.Ilgpu) => !(BenchEnvironment.Headline && (tokens >= 4096 || weights == MoeExperts.Fp8W8A8)),
            _ => true,
        };
    }
}
