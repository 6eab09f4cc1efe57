using System.Collections.Concurrent;
using DeepSeekKernels.Ilgpu;
using DeepSeekKernels.Native;
using DeepSeekKernels.Reference;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The op API: every op in two forms with the same name and argument order (inputs first, destination last,
/// as System.Numerics.Tensors.TensorPrimitives does):
/// <list type="bullet">
/// <item>on host spans: host memory in, host memory out (a GPU backend stages through device memory);</item>
/// <item>on <see cref="DeviceView{T}"/>s: device-resident, enqueued on the runtime's stream with no host
/// round trip, so ops chain; read results with <see cref="DeviceView{T}.CopyToHost"/>, which waits.</item>
/// </list>
/// RMSNorm has both forms; the transformer ops (Linear, DequantizeFp8, HeadwiseLinear, Embedding, Rope, Attention,
/// MlaAttention, CopyColumns, SiluAndMul, Softmax, Add, Scale, MoeRoute, MoePermute, GroupedLinear, MoeCombine)
/// have the device form only. Activations are float32, ids/positions/offsets int32, weights a
/// <see cref="WeightMatrix"/> (float32, bfloat16 or FP8 with block scales); shapes are row-major and dense.
/// Arguments are validated once, here, in a fixed order (element types, device views, sizes, lengths,
/// overlaps) before anything reaches a backend; errors name the op and the parameter, and a rejected call writes
/// nothing. Then the op runs on the backend, or, when the backend does not implement it, throws
/// <see cref="NotSupportedException"/> naming the op and the backend, unless these Ops fall back to the reference
/// (<see cref="WithReferenceFallback"/>). Values that only the device holds (token ids, positions, expert ids,
/// offsets) are checked where they are read (see each op).
/// </summary>
public sealed partial class Ops
{
    readonly KernelBackend _backend;
    readonly ConcurrentDictionary<string, byte>? _fallbackOps; // null when strict

    Ops(DeviceRuntime? runtime, KernelBackend backend, bool referenceFallback = false)
    {
        Runtime = runtime;
        _backend = backend;
        if (referenceFallback && backend.Kind != Backend.Reference)
            _fallbackOps = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);
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
    /// False (the default, strict): an op the backend does not implement throws <see cref="NotSupportedException"/>
    /// naming the op and the backend. True: such an op runs on the reference backend instead (see
    /// <see cref="WithReferenceFallback"/>).
    /// </param>
    public static Ops Create(DeviceRuntime runtime, Backend backend, bool referenceFallback = false)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        return backend switch
        {
            Backend.Reference => new Ops(runtime, ReferenceBackend.Instance),
            Backend.Ilgpu => new Ops(runtime, new IlgpuBackend(runtime), referenceFallback),
            Backend.Native => new Ops(runtime, new NativeBackend(runtime), referenceFallback),
            _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
        };
    }

    /// <summary>Ops over any backend, strict; for measuring what the op API itself costs per call (bench/).</summary>
    internal static Ops Over(DeviceRuntime runtime, KernelBackend backend) => new(runtime, backend);

    /// <summary>
    /// These ops, except that every op the backend does not implement runs on the reference backend, on the
    /// same device views: in place on ILGPU's CPU accelerator, staged through host memory on a GPU (slow, but
    /// correct). Ops that fell back at least once are listed in <see cref="FallbackOps"/>. The reference
    /// implements every op, so for <see cref="Backend.Reference"/> this returns an equivalent Ops.
    /// </summary>
    public Ops WithReferenceFallback() =>
        _backend.Kind == Backend.Reference ? this : new Ops(Runtime, _backend, referenceFallback: true);

    /// <summary>Whether ops this backend lacks run on the reference backend (<see cref="WithReferenceFallback"/>) rather than throw.</summary>
    public bool ReferenceFallback => _fallbackOps != null;

    /// <summary>
    /// The names of the ops (e.g. "Linear") that ran on the reference backend at least once because this
    /// backend does not implement them, sorted; empty for strict Ops. A snapshot: safe to read while ops run.
    /// </summary>
    public IReadOnlyCollection<string> FallbackOps =>
        _fallbackOps == null ? [] : _fallbackOps.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>Whether this Ops' backend itself implements <paramref name="op"/> (an op name from <see cref="OpNames"/>).</summary>
    public bool Implements(string op) => _backend.Implements(op);

    /// <summary>The names of every op of the device-view API, as <see cref="Implements"/> and <see cref="FallbackOps"/> use them.</summary>
    public static IReadOnlyList<string> OpNames { get; } =
    [
        nameof(RmsNorm), nameof(AddRmsNorm), nameof(Linear), nameof(DequantizeFp8), nameof(HeadwiseLinear),
        nameof(Embedding), nameof(Rope), nameof(Attention), nameof(MlaAttention), nameof(KvAppend), nameof(PagedAttention),
        nameof(PagedMlaAttention), nameof(CopyColumns),
        nameof(SiluAndMul), nameof(Softmax), nameof(Add), nameof(Scale), nameof(MoeRoute), nameof(MoePermute),
        nameof(GroupedLinear), nameof(MoeCombine),
    ];

    /// <summary>Which implementation runs.</summary>
    public Backend Backend => _backend.Kind;

    /// <summary>The runtime device-resident ops run on (null for <see cref="Reference"/>).</summary>
    public DeviceRuntime? Runtime { get; }

    bool StagesThroughDevice => _backend.Kind != Backend.Reference;

    DeviceRuntime StagingRuntime => Runtime!;

    /// <summary>
    /// The backend that runs <paramref name="op"/>: this Ops' backend when it implements the op; else the
    /// reference (recorded in <see cref="FallbackOps"/>) when falling back; else throws
    /// <see cref="NotSupportedException"/> naming the op and the backend. Called after validation.
    /// </summary>
    KernelBackend Dispatch(string op)
    {
        if (_backend.Implements(op))
            return _backend;
        if (_fallbackOps == null)
            throw _backend.NotImplemented(op);
        _fallbackOps.TryAdd(op, 0);
        return ReferenceBackend.Instance;
    }

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
