using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Bench.Linear;

/// <summary>
/// The linear layer <c>y[M, N] = x[M, K] @ W[N, K]^T</c>, bf16 activations in and out, fp32 accumulation, in every weight
/// scheme, against cuBLASLt bf16 (the baseline: the call the native backend makes for dense bf16, a 32 MiB workspace,
/// the heuristic's first algorithm) and a device copy of the bf16 weight's bytes (the bandwidth ceiling), all in one run:
/// <list type="bullet">
/// <item>CublasLtBf16: cublasLtMatmul, bf16 x bf16 -> bf16;</item>
/// <item>DskLinearBf16, DskLinearFp8, DskLinearInt4: dsk_linear (path AUTO) over a dense bf16 weight, DeepSeek-V3's FP8 e4m3
/// with 128 x 128 f32 block scales, and INT4 with bf16 scale and zero point per group of 128;</item>
/// <item>Copy: cuMemcpyDtoDAsync of the bf16 weight's bytes.</item>
/// </list>
/// Columns: µs per call; TFLOP/s (2MNK); GB/s over the bytes the call must move (its weight with scales and zeros, x and y
/// once each); that as a share of the copy's GB/s (the decode goal: M &lt;= 16 streams the weight); "x cuBLAS bf16", the
/// baseline's time over the case's (the prefill goal). Each scheme's weight is stored in as many copies as make at least
/// 128 MiB, used in turn, so the H200's 60 MB L2 never holds the weight of the next call. Each invocation enqueues
/// <see cref="Launches"/> calls and synchronises once: the figures are what back-to-back calls sustain, host launch included.
/// <para>
/// Shapes: the matrix, K x N = 7168 x 18432 and 18432 x 7168 (DeepSeek-V3's dense MLP), 4096 x 14336 (Llama-8B),
/// 7168 x 2048; M = 1, 4, 16, 64, 512, 4096: 120 cases, about 5 minutes. DSK_BENCH_HEADLINE=1 (what scripts/gpu-check.sh
/// sets) keeps M = 1, 16, 4096 on 7168 x 18432: 15 cases.
/// GPU only (cuBLASLt and the native kernels): smoke runs leave it out.
/// </para>
/// </summary>
[CudaOnly, SpeedupOverBaselineColumn]
public class LinearBenchmarks : IBandwidthBenchmark, IComputeBenchmark, IDisposable
{
    const int Launches = 10;
    const long RotationBytes = 128L << 20;

    /// <summary>Tokens (rows of x).</summary>
    [ParamsSource(nameof(TokenCounts))] public int M;

    /// <summary>In x out features, "KxN".</summary>
    [ParamsSource(nameof(Shapes))] public string Shape = "7168x18432";

    /// <summary>The tokens and shapes; DSK_BENCH_HEADLINE=1: decode at 1 and 16 tokens and prefill at 4096 on DeepSeek-V3's gate/up shape.</summary>
    public static IEnumerable<int> TokenCounts => BenchEnvironment.Headline ? [1, 16, 4096] : [1, 4, 16, 64, 512, 4096];
    public static IEnumerable<string> Shapes => BenchEnvironment.Headline ? ["7168x18432"] : ["7168x18432", "18432x7168", "4096x14336", "7168x2048"];

    int K => int.Parse(Shape.Split('x')[0]);
    int N => int.Parse(Shape.Split('x')[1]);

    DeviceRuntime? _runtime;
    readonly List<IDisposable> _owned = [];
    DeviceBuffer<BFloat16>? _x, _y;
    DeviceBuffer<BFloat16>? _copyDestination;
    DskWeight[] _weights = []; // the scheme's copies, used in turn
    int _next;
    Cublas? _cublas;
    CublasLtMatmul? _lt;

    /// <summary>Bytes of one weight in <paramref name="method"/>'s scheme: data, scales and zero points.</summary>
    long WeightBytes(string method)
    {
        long n = N, k = K;
        return method switch
        {
            nameof(DskLinearFp8) => n * k + (n + 127) / 128 * ((k + 127) / 128) * sizeof(float),
            nameof(DskLinearInt4) => n * k / 2 + 2 * n * (k / 128) * 2,
            _ => n * k * 2,
        };
    }

    public long BytesMoved(string method) => method == BandwidthColumn.CopyMethod
        ? 2 * WeightBytes(method)                              // the copy reads and writes the bf16 weight
        : WeightBytes(method) + 2L * M * K + 2L * M * N;       // weight, x and y once each

    public double FloatingPointOperations(string method) => method == BandwidthColumn.CopyMethod ? 0 : 2.0 * M * N * K;

    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        Start();
        _weights = Bf16Weights();
        _copyDestination = Keep(_runtime!.Allocate<BFloat16>((long)N * K));
        Copy();
    }

    [GlobalSetup(Target = nameof(CublasLtBf16))]
    public void SetupCublasLt()
    {
        Start();
        _weights = Bf16Weights();
        _runtime!.Bind();
        var workspace = Keep(_runtime.Allocate<int>(DenseGemmCublasLt.WorkspaceBytes / sizeof(int)));
        _cublas = new Cublas(_runtime.CudaStreamHandle);
        _lt = new CublasLtMatmul(_cublas, M, N, K, CudaDataType.R16BF, CudaDataType.R16BF, workspace.View.Pointer, DenseGemmCublasLt.WorkspaceBytes);
        CublasLtBf16();
    }

    [GlobalSetup(Target = nameof(DskLinearBf16))]
    public void SetupBf16()
    {
        Start();
        _weights = Bf16Weights();
        DskLinearBf16();
    }

    [GlobalSetup(Target = nameof(DskLinearFp8))]
    public void SetupFp8()
    {
        Start();
        long n = N, k = K, scales = (n + 127) / 128 * ((k + 127) / 128);
        // e4m3 codes from the random bf16 bits, NaN codes (S.1111.111) turned into finite ones; scales near 1 / 448 of a unit weight
        var codes = MemoryMarshal.AsBytes(BenchData.RandomBf16((n * k + 1) / 2)).ToArray();
        for (long i = 0; i < codes.LongLength; i++)
            if ((codes[i] & 0x7F) == 0x7F)
                codes[i] &= 0xF7;
        var scaleValues = Enumerable.Repeat(1f / 448, checked((int)scales)).ToArray();
        _weights = Rotation(WeightBytes(nameof(DskLinearFp8)), () =>
        {
            var data = Keep(_runtime!.Upload<Float8E4M3>(MemoryMarshal.Cast<byte, Float8E4M3>(codes.AsSpan(0, checked((int)(n * k))))));
            var scale = Keep(_runtime.Upload<float>(scaleValues));
            return LinearNative.For(WeightMatrix.Fp8(data.View, scale.View, N, K));
        });
        DskLinearFp8();
    }

    [GlobalSetup(Target = nameof(DskLinearInt4))]
    public void SetupInt4()
    {
        Start();
        long n = N, k = K, groups = n * (k / 128);
        var codes = MemoryMarshal.AsBytes(BenchData.RandomBf16(n * k / 4)).ToArray();
        var scaleValues = Enumerable.Repeat(BFloat16.FromSingle(0.01f), checked((int)groups)).ToArray();
        var zeroValues = Enumerable.Repeat(BFloat16.FromSingle(8f), checked((int)groups)).ToArray();
        _weights = Rotation(WeightBytes(nameof(DskLinearInt4)), () =>
        {
            var data = Keep(_runtime!.Upload<Int4x2>(MemoryMarshal.Cast<byte, Int4x2>(codes)));
            var scale = Keep(_runtime.Upload<BFloat16>(scaleValues));
            var zero = Keep(_runtime.Upload<BFloat16>(zeroValues));
            return LinearNative.For(WeightMatrix.Int4(data.View, scale.View, zero.View, N, K, groupSize: 128));
        });
        DskLinearInt4();
    }

    /// <summary>The bandwidth ceiling: a device copy of the bf16 weight's bytes.</summary>
    [Benchmark(OperationsPerInvoke = Launches)]
    public void Copy()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            CudaDriver.CopyDeviceToDeviceAsync(_copyDestination!.View.Pointer, NextWeight().Data, 2L * N * K, runtime.CudaStreamHandle);
        runtime.Synchronize();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Launches)]
    public void CublasLtBf16()
    {
        var runtime = _runtime!;
        runtime.Bind();
        for (int i = 0; i < Launches; i++)
            _lt!.Run(_x!.View.Pointer, NextWeight().Data, _y!.View.Pointer, runtime.CudaStreamHandle);
        runtime.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Launches)]
    public void DskLinearBf16() => RunDsk();

    [Benchmark(OperationsPerInvoke = Launches)]
    public void DskLinearFp8() => RunDsk();

    [Benchmark(OperationsPerInvoke = Launches)]
    public void DskLinearInt4() => RunDsk();

    void RunDsk()
    {
        var runtime = _runtime!;
        runtime.Bind();
        var p = new DskLinearParams
        {
            X = _x!.View.Pointer,
            Y = _y!.View.Pointer,
            M = M,
            Batch = 1,
            XRowStride = K,
            XBatchStride = (long)M * K,
            YRowStride = N,
            YBatchStride = (long)M * N,
            ResidualRowStride = N,
            ResidualBatchStride = (long)M * N,
            XDType = (int)DskDType.BF16,
            YDType = (int)DskDType.BF16,
            Path = (int)DskLinearPath.Auto,
            Stream = runtime.CudaStreamHandle,
        };
        for (int i = 0; i < Launches; i++)
        {
            p.W = NextWeight();
            DskNative.Linear(p);
        }
        runtime.Synchronize();
    }

    /// <summary>A runtime, x [M, K] (random bf16) and y [M, N].</summary>
    void Start()
    {
        _runtime = DeviceRuntime.Create(DevicePreference.Cuda);
        _x = Keep(_runtime.Upload<BFloat16>(BenchData.RandomBf16((long)M * K)));
        _y = Keep(_runtime.Allocate<BFloat16>((long)M * N));
    }

    DskWeight[] Bf16Weights()
    {
        var values = BenchData.RandomBf16((long)N * K).ToArray();
        return Rotation(WeightBytes(nameof(DskLinearBf16)), () =>
            LinearNative.For(WeightMatrix.Dense(Keep(_runtime!.Upload<BFloat16>(values)).View, N, K)));
    }

    /// <summary>Copies of a weight, as many as make <see cref="RotationBytes"/> (at least one).</summary>
    static DskWeight[] Rotation(long bytes, Func<DskWeight> make) =>
        Enumerable.Range(0, (int)Math.Max(1, (RotationBytes + bytes - 1) / bytes)).Select(_ => make()).ToArray();

    DskWeight NextWeight()
    {
        var w = _weights[_next];
        _next = (_next + 1) % _weights.Length;
        return w;
    }

    T Keep<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _lt?.Dispose();
        _cublas?.Dispose();
        (_lt, _cublas) = (null, null);
        foreach (var item in _owned)
            item.Dispose();
        _owned.Clear();
        _runtime?.Dispose();
        _runtime = null;
        GC.SuppressFinalize(this);
    }
}

/// <summary>Adds the "x cuBLAS bf16" column to a benchmark class (its baseline method's time over each case's).</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class SpeedupOverBaselineColumnAttribute : Attribute, IConfigSource
{
    public IConfig Config { get; } = ManualConfig.CreateEmpty().AddColumn(new SpeedupOverBaselineColumn());
}

/// <summary>
/// "x cuBLAS bf16": the mean time of the class's baseline method (cuBLASLt bf16) with the same parameters, over this case's
/// mean: above 1 is faster than cuBLAS. "-" for the baseline itself and for the copy.
/// </summary>
public sealed class SpeedupOverBaselineColumn : IColumn
{
    public string Id => "SpeedupOverBaseline";
    public string ColumnName => "x cuBLAS bf16";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 3;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "the cuBLASLt bf16 baseline's mean time with the same parameters / this case's mean time (above 1: faster)";

    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        if (benchmarkCase.Descriptor.Baseline || benchmarkCase.Descriptor.WorkloadMethod.Name == BandwidthColumn.CopyMethod)
            return "-";
        var baseline = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.Baseline && c.Descriptor.Type == benchmarkCase.Descriptor.Type &&
            c.Parameters.DisplayInfo == benchmarkCase.Parameters.DisplayInfo);
        double? mine = summary[benchmarkCase]?.ResultStatistics?.Mean;
        double? theirs = baseline is null ? null : summary[baseline]?.ResultStatistics?.Mean;
        return mine is > 0 && theirs is > 0 ? (theirs.Value / mine.Value).ToString("F2") : "-";
    }

    public override string ToString() => ColumnName;
}
