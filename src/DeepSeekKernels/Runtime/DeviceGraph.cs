using DeepSeekKernels.Bindings;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// Device work captured once from a runtime's stream and replayed with one launch: a CUDA graph. Made by
/// <see cref="DeviceRuntime.CaptureGraph"/>. A replay runs the captured kernels and copies again with the
/// same arguments and device pointers, so the buffers they used must stay alive; their contents may change
/// between replays (a decode step captured once reads each new token's inputs this way). Replaying saves the
/// host's per-launch cost: at one token an RMSNorm costs about what its launch does.
/// </summary>
public sealed class DeviceGraph : IDisposable
{
    readonly DeviceRuntime _runtime;
    IntPtr _exec;

    internal DeviceGraph(DeviceRuntime runtime, IntPtr exec, int nodeCount)
    {
        _runtime = runtime;
        _exec = exec;
        NodeCount = nodeCount;
    }

    /// <summary>Kernels, copies and other operations the capture recorded.</summary>
    public int NodeCount { get; }

    /// <summary>Enqueues one replay on the runtime's stream (asynchronous, like the ops it holds).</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(_exec == IntPtr.Zero || _runtime.IsDisposed, this);
        _runtime.Bind();
        CudaDriver.LaunchGraph(_exec, _runtime.CudaStreamHandle);
    }

    public void Dispose()
    {
        if (_exec == IntPtr.Zero)
            return;
        // Disposing the runtime destroyed its context, and every graph of it with it.
        if (!_runtime.IsDisposed)
        {
            _runtime.Bind();
            CudaDriver.DestroyGraphExec(_exec);
        }
        _exec = IntPtr.Zero;
    }
}
