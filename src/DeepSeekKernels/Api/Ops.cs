using System.Collections.Concurrent;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Native;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The op API: every op in two forms with the same name and argument order (inputs first, destination last,
/// as System.Numerics.Tensors.TensorPrimitives does):
/// <list type="bullet">
/// <item>on host spans: host memory in, host memory out (a GPU backend stages through device memory);</item>
/// <item>on device tensors (<see cref="DeviceTensor"/>; a <see cref="DeviceView{T}"/> converts to one): device-resident,
/// enqueued on the runtime's stream with no host round trip, so ops chain; read results with
/// <see cref="DeviceView{T}.CopyToHost"/>, which waits.</item>
/// </list>
/// RMSNorm has both forms; the transformer ops (Linear, DequantizeFp8, HeadwiseLinear, Embedding, Rope, Attention,
/// MlaAttention, KvAppend, PagedAttention, PagedMlaAttention, CopyColumns, SiluAndMul, Softmax, Add, Scale, MoeRoute,
/// MoePermute, GroupedLinear, GroupedLinearSiluMul, MoeCombine, QuantizeFp8Activations, LinearW8A8, GroupedLinearW8A8) have the device form only. Activations are float32 or bfloat16 with float32
/// accumulation (router logits and expert weights float32), ids/positions/offsets/pages/slots int32, weights a
/// <see cref="WeightMatrix"/> (dense f32/bf16, FP8 with 128x128 block scales, INT4 group-wise); tensors are row-major,
/// with row strides where an op says so.
/// Arguments are validated once, here, in a fixed order (element types, device views, sizes, lengths,
/// overlaps) before anything reaches a backend; errors name the op and the parameter, and a rejected call writes
/// nothing. Then the op builds its <see cref="OpSignature"/> (element types, weight scheme, shape facts) and runs on the
/// backend when the backend supports that signature (<see cref="Supports(in OpSignature)"/>); otherwise it throws
/// <see cref="OpNotSupportedException"/> naming the signature and the backend, unless these Ops fall back to the
/// reference (<see cref="WithReferenceFallback"/>), which is then recorded in <see cref="FallbackReport"/>. Values that
/// only the device holds (token ids, positions, expert ids, offsets, pages, slots, lengths) are checked where they are
/// read: a bad one is skipped and recorded in the runtime's error word, and the next synchronisation throws
/// <see cref="DeviceIndexException"/> naming the op, the operand and the value.
/// </summary>
public sealed partial class Ops
{
    readonly KernelBackend _backend;
    readonly ConcurrentDictionary<OpSignature, FallbackCounter>? _fallback; // null when strict
    readonly string[] _excluded; // ops treated as unsupported by the backend (Excluding)
    readonly OpProfiler? _profiler; // null unless WithProfiling

    Ops(DeviceRuntime? runtime, KernelBackend backend, bool referenceFallback = false, string[]? excluded = null, OpProfiler? profiler = null)
    {
        Runtime = runtime;
        _backend = backend;
        _excluded = excluded ?? [];
        _profiler = profiler;
        if (referenceFallback && backend.Kind != Backend.Reference)
            _fallback = new ConcurrentDictionary<OpSignature, FallbackCounter>();
    }

    /// <summary>The reference implementation on the CPU; needs no device. Its device-view overloads accept views of any runtime.</summary>
    public static Ops Reference { get; } = new(null, ReferenceBackend.Instance);

    /// <summary>
    /// The ops of <paramref name="backend"/> on <paramref name="runtime"/>'s device. Throws
    /// <see cref="NotSupportedException"/> with the reason when the backend cannot run there (the native
    /// kernels need a CUDA GPU and libdeepseek_kernels.so).
    /// </summary>
    /// <param name="runtime">The device runtime the ops run on.</param>
    /// <param name="backend">Which implementation runs.</param>
    /// <param name="referenceFallback">
    /// False (the default, strict): a call the backend does not support throws <see cref="OpNotSupportedException"/>
    /// naming its signature and the backend. True: such a call runs on the reference backend instead, and is counted
    /// in <see cref="FallbackReport"/> (see <see cref="WithReferenceFallback"/>).
    /// </param>
    public static Ops Create(DeviceRuntime runtime, Backend backend, bool referenceFallback = false)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        return backend switch
        {
            Backend.Reference => new Ops(runtime, ReferenceBackend.Instance),
            Backend.Ilgpu => new Ops(runtime, new IlgpuBackend(runtime), referenceFallback),
            Backend.Native => new Ops(runtime, new NativeBackend(runtime), referenceFallback),
            Backend.Cpu => new Ops(runtime, new Cpu.CpuBackend(runtime, Cpu.CpuThreadPool.Shared), referenceFallback),
            _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
        };
    }

    /// <summary>
    /// The CPU backend (<see cref="Backend.Cpu"/>) on <paramref name="runtime"/> (ILGPU's CPU accelerator) with its own pool
    /// of <paramref name="threads"/> threads (the caller's included), rather than the shared pool of one thread per physical
    /// core, and INT4 decode products as <paramref name="int4Dot"/> says (<see cref="CpuInt4Dot.Int8"/>: int8 activations, an
    /// approximation for speed; the default keeps the op's arithmetic). The pool lives as long as the process; create one Ops
    /// per thread count, not one per call.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> is below 1 or above 1024, or <paramref name="int4Dot"/> is not a <see cref="CpuInt4Dot"/>.</exception>
    /// <exception cref="NotSupportedException">The runtime is on a CUDA GPU.</exception>
    public static Ops CreateCpu(DeviceRuntime runtime, int threads, global::DeepSeekKernels.CpuInt4Dot int4Dot = global::DeepSeekKernels.CpuInt4Dot.Float32)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, 1024);
        if (!Enum.IsDefined(int4Dot))
            throw new ArgumentOutOfRangeException(nameof(int4Dot), int4Dot, "Not a CpuInt4Dot value.");
        var pool = threads == Cpu.CpuThreadPool.PhysicalCores ? Cpu.CpuThreadPool.Shared : Cpu.CpuThreadPool.WithThreads(threads);
        return new Ops(runtime, new Cpu.CpuBackend(runtime, pool, int4Dot));
    }

    /// <summary>How the CPU backend multiplies activations with INT4 weights in decode (<see cref="CreateCpu"/>); null for the other backends.</summary>
    public global::DeepSeekKernels.CpuInt4Dot? CpuInt4Dot => (_backend as Cpu.CpuBackend)?.Int4Dot;

    /// <summary>
    /// Ops over any backend (a benchmark's do-nothing backend, a test's stub), strict unless
    /// <paramref name="referenceFallback"/>.
    /// </summary>
    internal static Ops Over(DeviceRuntime runtime, KernelBackend backend, bool referenceFallback = false) =>
        new(runtime, backend, referenceFallback);

    /// <summary>
    /// These ops, except that every call the backend does not support runs on the reference backend, on the same
    /// device views: in place on ILGPU's CPU accelerator, staged through host memory on a GPU (slow, but correct:
    /// every input copied down and every output copied back, weights included, on every call). Each signature that
    /// fell back is counted in <see cref="FallbackReport"/> with its calls and the bytes staged. The reference
    /// supports every call, so for <see cref="Backend.Reference"/> this returns an equivalent Ops (nothing falls back).
    /// </summary>
    public Ops WithReferenceFallback() =>
        _backend.Kind == Backend.Reference ? this : new Ops(Runtime, _backend, referenceFallback: true, _excluded, _profiler);

    /// <summary>
    /// These ops, except that every call of the named ops counts as one the backend does not support: strict Ops refuse
    /// it, Ops with <see cref="WithReferenceFallback"/> run it on the reference and report it. A diagnostic: it sends
    /// chosen ops to the reference, e.g. to find which op of a GPU backend makes a result differ (dsk reads it from
    /// DSK_EXCLUDE_OPS). The reference ignores it (it has no other backend to send calls to).
    /// </summary>
    /// <exception cref="ArgumentException">A name is not one of <see cref="OpNames"/>.</exception>
    public Ops Excluding(params IEnumerable<string> ops)
    {
        ArgumentNullException.ThrowIfNull(ops);
        var names = ops.ToArray();
        foreach (string name in names)
        {
            if (!OpNames.Contains(name))
                throw new ArgumentException($"'{name}' is not an op; the ops are {string.Join(", ", OpNames)}.", nameof(ops));
        }
        return _backend.Kind == Backend.Reference ? this
            : new Ops(Runtime, _backend, _fallback != null, [.. _excluded.Union(names, StringComparer.Ordinal)], _profiler);
    }

    /// <summary>
    /// These ops (same backend, fallback and exclusions), timing every call: <see cref="Profile"/> then lists, per signature
    /// and weight shape, the calls and the time they spent in the backend, from dispatch to return. On a GPU the profile
    /// synchronises the stream after every call, so each op's own time is counted (and the ops no longer overlap the host:
    /// a profiled run is slower). On the CPU backends the calls are synchronous anyway and the profile costs two clock
    /// reads a call. The reference profiles too. What a run spends outside the backends (validation, the model's host code,
    /// copies between host and device) is its wall time less the profile's total.
    /// </summary>
    public Ops WithProfiling() =>
        new(Runtime, _backend, _fallback != null, _excluded, new OpProfiler());

    /// <summary>Whether these ops time their calls (<see cref="WithProfiling"/>).</summary>
    public bool Profiling => _profiler != null;

    /// <summary>
    /// The calls timed since <see cref="WithProfiling"/> or the last <see cref="ResetProfile"/>, one line per signature and
    /// weight shape, the longest first; empty unless profiling. A snapshot: safe to read while ops run.
    /// </summary>
    public IReadOnlyList<OpProfileRecord> Profile => _profiler?.Snapshot() ?? [];

    /// <summary>Clears <see cref="Profile"/> (a no-op unless profiling).</summary>
    public void ResetProfile() => _profiler?.Reset();

    /// <summary>The ops <see cref="Excluding"/> sends away from this backend (empty by default).</summary>
    public IReadOnlyList<string> ExcludedOps => _excluded;

    /// <summary>Whether calls this backend does not support run on the reference backend (<see cref="WithReferenceFallback"/>) rather than throw.</summary>
    public bool ReferenceFallback => _fallback != null;

    /// <summary>
    /// The calls that ran on the reference backend because this backend does not support them: one line per
    /// signature, with the number of calls and the bytes the reference copied between device and host memory for
    /// them, sorted by signature; empty for strict Ops and for the reference. A snapshot: safe to read while ops run.
    /// </summary>
    public IReadOnlyList<FallbackRecord> FallbackReport =>
        _fallback == null ? []
        : _fallback.Select(e => new FallbackRecord(e.Key, Interlocked.Read(ref e.Value.Calls), Interlocked.Read(ref e.Value.StagedBytes)))
            .OrderBy(r => r.Signature.ToString(), StringComparer.Ordinal).ToArray();

    /// <summary>Whether this Ops' backend itself runs calls of <paramref name="op"/> (no fallback involved).</summary>
    /// <exception cref="ArgumentException">op.Op is not one of <see cref="OpNames"/>.</exception>
    public bool Supports(in OpSignature op) => Supports(op, out _);

    /// <summary>
    /// Whether this Ops' backend itself runs calls of <paramref name="op"/> (no fallback involved); when not,
    /// <paramref name="reason"/> says why in the backend's words.
    /// </summary>
    /// <exception cref="ArgumentException">op.Op is not one of <see cref="OpNames"/>.</exception>
    public bool Supports(in OpSignature op, out string? reason)
    {
        if (op.Op is null || !OpNames.Contains(op.Op))
            throw new ArgumentException($"'{op.Op}' is not an op; the ops are {string.Join(", ", OpNames)}.", nameof(op));
        return BackendSupports(op, out reason);
    }

    /// <summary>The backend's answer, unless the op is excluded (<see cref="Excluding"/>).</summary>
    bool BackendSupports(in OpSignature op, out string? reason)
    {
        if (_excluded.Length > 0 && Array.IndexOf(_excluded, op.Op) >= 0)
        {
            reason = "excluded by DSK_EXCLUDE_OPS / Ops.Excluding";
            return false;
        }
        return _backend.Supports(op, out reason);
    }

    /// <summary>The names of every op of the device-view API, as <see cref="OpSignature.Op"/> holds them.</summary>
    public static IReadOnlyList<string> OpNames { get; } =
    [
        nameof(RmsNorm), nameof(AddRmsNorm), nameof(Linear), nameof(LinearSiluMul), nameof(DequantizeFp8), nameof(HeadwiseLinear),
        nameof(Embedding), nameof(Rope), nameof(Attention), nameof(MlaAttention), nameof(KvAppend), nameof(PagedAttention),
        nameof(PagedMlaAttention), nameof(CopyColumns),
        nameof(SiluAndMul), nameof(Softmax), nameof(Add), nameof(Scale), nameof(MoeRoute), nameof(MoePermute),
        nameof(GroupedLinear), nameof(GroupedLinearSiluMul), nameof(MoeCombine), nameof(QuantizeFp8Activations), nameof(LinearW8A8), nameof(GroupedLinearW8A8),
    ];

    /// <summary>Which implementation runs.</summary>
    public Backend Backend => _backend.Kind;

    /// <summary>Whether the backend's attention kernels take a caller's split-K workspace (the GPU backends; <see cref="PagedBatch.Workspace"/>).</summary>
    internal bool TakesKernelWorkspaces => _backend.TakesKernelWorkspaces;

    /// <summary>The backend and its device, for tables and logs: "reference", "cpu", "ilgpu-cpu", "ilgpu-cuda" or "native".</summary>
    public string Label => _backend.Kind switch
    {
        Backend.Ilgpu => Runtime is { IsCuda: true } ? "ilgpu-cuda" : "ilgpu-cpu",
        var kind => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>The CPU backend's default thread count: one per physical core of this machine.</summary>
    public static int DefaultCpuThreads => Cpu.CpuThreadPool.PhysicalCores;

    /// <summary>The threads the CPU backend's kernels run on (<see cref="Backend.Cpu"/>); null for the other backends.</summary>
    public int? CpuThreads => (_backend as Cpu.CpuBackend)?.Pool.Threads;

    /// <summary>The runtime device-resident ops run on (null for <see cref="Reference"/>).</summary>
    public DeviceRuntime? Runtime { get; }

    bool StagesThroughDevice => _backend.Kind != Backend.Reference;

    DeviceRuntime StagingRuntime => Runtime!;

    /// <summary>
    /// The backend that runs a call of signature <paramref name="op"/>: this Ops' backend when it supports it; else
    /// the reference when falling back (the call is counted in <see cref="FallbackReport"/>, and the bytes it stages
    /// when the returned scope is disposed); else throws <see cref="OpNotSupportedException"/>. Called after
    /// validation, as <c>using var call = Dispatch(signature); call.Backend.Op(...);</c>.
    /// </summary>
    DispatchScope Dispatch(in OpSignature op, WeightMatrix? weight = null)
    {
        if (BackendSupports(op, out string? reason))
            return new DispatchScope(_backend, null, _profiler, op, weight, Runtime);
        if (_fallback == null)
            throw new OpNotSupportedException(op, _backend.Kind, reason);
        var counter = _fallback.GetOrAdd(op, static _ => new FallbackCounter());
        Interlocked.Increment(ref counter.Calls);
        return new DispatchScope(ReferenceBackend.Instance, counter, _profiler, op, weight, Runtime);
    }

    /// <summary>One fallback signature's running totals.</summary>
    sealed class FallbackCounter
    {
        public long Calls;
        public long StagedBytes;
    }

    /// <summary>
    /// The backend of one call; for a fallback call, adds the bytes the reference staged on this thread during the call
    /// (the reference stages synchronously, on the calling thread) to the signature's counter when disposed; when
    /// profiling, adds the call's time (after synchronising a GPU stream) to the profile.
    /// </summary>
    readonly ref struct DispatchScope
    {
        readonly FallbackCounter? _counter;
        readonly long _stagedBefore;
        readonly OpProfiler? _profiler;
        readonly OpSignature _op;
        readonly WeightMatrix? _weight;
        readonly DeviceRuntime? _runtime;
        readonly long _start;

        public DispatchScope(KernelBackend backend, FallbackCounter? counter, OpProfiler? profiler, in OpSignature op,
            WeightMatrix? weight, DeviceRuntime? runtime)
        {
            Backend = backend;
            _counter = counter;
            _stagedBefore = counter == null ? 0 : ReferenceBackend.StagedBytesOnThisThread;
            _profiler = profiler;
            if (profiler != null)
            {
                (_op, _weight, _runtime) = (op, weight, runtime);
                _start = System.Diagnostics.Stopwatch.GetTimestamp();
            }
        }

        public KernelBackend Backend { get; }

        public void Dispose()
        {
            if (_counter != null)
                Interlocked.Add(ref _counter.StagedBytes, ReferenceBackend.StagedBytesOnThisThread - _stagedBefore);
            if (_profiler != null)
            {
                if (_runtime is { IsCuda: true })
                    _runtime.Synchronize();
                _profiler.Add(_op, _weight, System.Diagnostics.Stopwatch.GetTimestamp() - _start);
            }
        }
    }

    /// <summary>
    /// Checks an activation operand: present, on this Ops' runtime (or <paramref name="first"/>'s), f32 or bf16 (fp32
    /// accumulation either way), contiguous; returns it as its flat elements (rank 1), the form the length checks read.
    /// </summary>
    DeviceTensor Act(string op, string parameter, DeviceTensor tensor, DeviceRuntime? first)
    {
        if (tensor.IsNull)
            ThrowHelper.Argument(op, parameter, $"{parameter} is a default DeviceView (it has no buffer).");
        var expected = Runtime ?? first;
        if (expected != null && !ReferenceEquals(tensor.Runtime, expected))
            ThrowHelper.Argument(op, parameter, $"{parameter} belongs to a different DeviceRuntime than "
                + (Runtime != null ? "this Ops." : "the other operands."));
        if (tensor.ElementType is not (ElementType.F32 or ElementType.BF16))
            ThrowHelper.NotSupported(op, $"{parameter} holds {tensor.ElementType.Name()}; activations are f32 or bf16.");
        if (!tensor.IsContiguous)
            ThrowHelper.Argument(op, parameter, $"{parameter} {tensor.ShapeText} with strides {tensor.StridesText} is not contiguous; {op} reads it densely.");
        return tensor.Rank == 1 ? tensor : tensor.Reshape(tensor.ElementCount);
    }

    /// <summary>
    /// The activation type of a call's signature: f32 when every activation operand is f32, else bf16 (a backend that
    /// takes bf16 activations reads and writes them as bf16, accumulating in f32).
    /// </summary>
    static ElementType Activations(params ReadOnlySpan<DeviceTensor> tensors)
    {
        foreach (var t in tensors)
            if (!t.IsNull && t.ElementType == ElementType.BF16)
                return ElementType.BF16;
        return ElementType.F32;
    }

    /// <summary>An optional activation operand: default stays default, else as <see cref="Act"/>.</summary>
    DeviceTensor OptionalAct(string op, string parameter, DeviceTensor tensor, DeviceRuntime? first) =>
        tensor.IsNull ? tensor : Act(op, parameter, tensor, first);

    /// <summary>Checks a device view: not default, and on this Ops' runtime (any runtime for the reference).</summary>
    void CheckView<T>(string op, string parameter, DeviceView<T> view, DeviceRuntime? first) where T : unmanaged
    {
        if (view.IsNull)
            ThrowHelper.Argument(op, parameter, $"{parameter} is a default DeviceView (it has no buffer).");
        var expected = Runtime ?? first;
        if (expected != null && !ReferenceEquals(view.Runtime, expected))
            ThrowHelper.Argument(op, parameter, $"{parameter} belongs to a different DeviceRuntime than "
                + (Runtime != null ? "this Ops." : "the other operands."));
    }

    /// <summary>Checks an optional device view: default is fine, else as <see cref="CheckView{T}"/>.</summary>
    void CheckOptionalView<T>(string op, string parameter, DeviceView<T> view, DeviceRuntime? first) where T : unmanaged
    {
        if (!view.IsNull)
            CheckView(op, parameter, view, first);
    }

    /// <summary>Checks a weight: not null, and on this Ops' runtime (or the other operands' for the reference).</summary>
    void CheckWeight(string op, string parameter, WeightMatrix weight, DeviceRuntime? first)
    {
        if (weight is null)
            ThrowHelper.ArgumentNull(op, parameter);
        var expected = Runtime ?? first;
        if (expected != null && !ReferenceEquals(weight.Runtime, expected))
            ThrowHelper.Argument(op, parameter, $"{parameter} belongs to a different DeviceRuntime than "
                + (Runtime != null ? "this Ops." : "the other operands."));
    }
}
