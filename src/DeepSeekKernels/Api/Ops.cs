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
/// Arguments are validated once, here, in a fixed order (element types, device views, sizes, lengths,
/// overlaps) before anything reaches a backend; errors name the op and the parameter.
/// </summary>
public sealed partial class Ops
{
    readonly KernelBackend _backend;

    Ops(DeviceRuntime? runtime, KernelBackend backend)
    {
        Runtime = runtime;
        _backend = backend;
    }

    /// <summary>The reference implementation on the CPU; needs no device. Its device-view overloads accept views of any runtime.</summary>
    public static Ops Reference { get; } = new(null, ReferenceBackend.Instance);

    /// <summary>
    /// The ops of <paramref name="backend"/> on <paramref name="runtime"/>'s device. Throws
    /// <see cref="NotSupportedException"/> with the reason when the backend cannot run there (the native
    /// kernels need a CUDA GPU and libdeepseek_kernels.so).
    /// </summary>
    public static Ops Create(DeviceRuntime runtime, Backend backend)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        return backend switch
        {
            Backend.Reference => new Ops(runtime, ReferenceBackend.Instance),
            Backend.Ilgpu => new Ops(runtime, new IlgpuBackend(runtime)),
            Backend.Native => new Ops(runtime, new NativeBackend(runtime)),
            _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
        };
    }

    /// <summary>Which implementation runs.</summary>
    public Backend Backend => _backend.Kind;

    /// <summary>The runtime device-resident ops run on (null for <see cref="Reference"/>).</summary>
    public DeviceRuntime? Runtime { get; }

    bool StagesThroughDevice => _backend.Kind != Backend.Reference;

    DeviceRuntime StagingRuntime => Runtime!;

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
}
