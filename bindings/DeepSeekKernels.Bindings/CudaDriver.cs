using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>A CUDA driver API call failed; the message names the operation and the CUDA error.</summary>
public sealed class CudaException(string operation, int code, string message) : Exception(message)
{
    /// <summary>What was being done when the error came back.</summary>
    public string Operation { get; } = operation;
    /// <summary>The CUresult value.</summary>
    public int Code { get; } = code;
}

/// <summary>
/// The few CUDA driver API calls the project needs beside ILGPU (which owns the context and stream):
/// events for timing, async device copies as the bandwidth baseline, memory info, error strings, and
/// stream capture into CUDA graphs (the runtime's DeviceGraph builds on these).
/// All calls act on the context current on the calling thread (bind the ILGPU accelerator first).
/// </summary>
public static partial class CudaDriver
{
    const string Lib = NativeLibraryLocator.CudaDriver;

    [LibraryImport(Lib, EntryPoint = "cuGetErrorName")] private static partial int GetErrorName(int error, out IntPtr name);
    [LibraryImport(Lib, EntryPoint = "cuGetErrorString")] private static partial int GetErrorString(int error, out IntPtr text);
    [LibraryImport(Lib, EntryPoint = "cuEventCreate")] private static partial int EventCreate(out IntPtr ev, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] private static partial int EventDestroy(IntPtr ev);
    [LibraryImport(Lib, EntryPoint = "cuEventRecord")] private static partial int EventRecord(IntPtr ev, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuEventSynchronize")] private static partial int EventSynchronize(IntPtr ev);
    [LibraryImport(Lib, EntryPoint = "cuEventElapsedTime")] private static partial int EventElapsedTime(out float ms, IntPtr start, IntPtr end);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")] private static partial int MemcpyDtoDAsync(IntPtr dst, IntPtr src, nuint bytes, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")] private static partial int MemGetInfo(out nuint free, out nuint total);
    [LibraryImport(Lib, EntryPoint = "cuStreamSynchronize")] private static partial int StreamSynchronize(IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuDriverGetVersion")] private static partial int DriverGetVersion(out int version);
    [LibraryImport(Lib, EntryPoint = "cuStreamBeginCapture_v2")] private static partial int StreamBeginCapture(IntPtr stream, int mode);
    [LibraryImport(Lib, EntryPoint = "cuStreamEndCapture")] private static partial int StreamEndCapture(IntPtr stream, out IntPtr graph);
    [LibraryImport(Lib, EntryPoint = "cuStreamIsCapturing")] private static partial int StreamIsCapturing(IntPtr stream, out int status);
    [LibraryImport(Lib, EntryPoint = "cuGraphGetNodes")] private static partial int GraphGetNodes(IntPtr graph, IntPtr nodes, ref nuint count);
    [LibraryImport(Lib, EntryPoint = "cuGraphInstantiateWithFlags")] private static partial int GraphInstantiate(out IntPtr exec, IntPtr graph, ulong flags);
    [LibraryImport(Lib, EntryPoint = "cuGraphDestroy")] private static partial int GraphDestroy(IntPtr graph);
    [LibraryImport(Lib, EntryPoint = "cuGraphLaunch")] private static partial int GraphLaunch(IntPtr exec, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuGraphExecDestroy")] private static partial int GraphExecDestroy(IntPtr exec);

    /// <summary>CU_STREAM_CAPTURE_MODE_RELAXED: no API call is refused during a capture, on this thread or others.</summary>
    const int CaptureModeRelaxed = 2;

    /// <summary>Throws a <see cref="CudaException"/> naming <paramref name="operation"/> when <paramref name="result"/> is not CUDA_SUCCESS.</summary>
    public static void Check(int result, string operation)
    {
        if (result == 0)
            return;
        string name = "CUDA_ERROR_" + result, text = "unknown error";
        if (GetErrorName(result, out var n) == 0 && n != IntPtr.Zero) name = Marshal.PtrToStringUTF8(n) ?? name;
        if (GetErrorString(result, out var s) == 0 && s != IntPtr.Zero) text = Marshal.PtrToStringUTF8(s) ?? text;
        throw new CudaException(operation, result, $"{operation}: {name} ({text})");
    }

    /// <summary>The driver's CUDA version (e.g. 13000), or throws if the driver is missing.</summary>
    public static int DriverVersion
    {
        get
        {
            NativeLibraryLocator.Require(Lib);
            Check(DriverGetVersion(out int v), "cuDriverGetVersion");
            return v;
        }
    }

    /// <summary>Enqueues a device-to-device copy of <paramref name="bytes"/> on <paramref name="stream"/>.</summary>
    public static void CopyDeviceToDeviceAsync(IntPtr destination, IntPtr source, long bytes, IntPtr stream) =>
        Check(MemcpyDtoDAsync(destination, source, (nuint)bytes, stream), "cuMemcpyDtoDAsync");

    /// <summary>Free and total bytes of the current context's device.</summary>
    public static (long Free, long Total) MemoryInfo()
    {
        Check(MemGetInfo(out var free, out var total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    /// <summary>Waits for all work on <paramref name="stream"/>.</summary>
    public static void Synchronize(IntPtr stream) => Check(StreamSynchronize(stream), "cuStreamSynchronize");

    /// <summary>
    /// Puts <paramref name="stream"/> in capture mode: work enqueued on it is recorded into a graph instead of
    /// running, until <see cref="EndCapture"/>. Relaxed mode, so that a .NET finalizer freeing device memory on
    /// another thread cannot invalidate the capture; the capturing code must itself enqueue only stream work.
    /// </summary>
    public static void BeginCapture(IntPtr stream) =>
        Check(StreamBeginCapture(stream, CaptureModeRelaxed), "cuStreamBeginCapture");

    /// <summary>
    /// Whether <paramref name="stream"/> is being captured into a graph (CU_STREAM_CAPTURE_STATUS_ACTIVE, or a capture that
    /// was invalidated and not yet ended): work that would allocate or free device memory must then wait.
    /// </summary>
    public static bool IsCapturing(IntPtr stream)
    {
        Check(StreamIsCapturing(stream, out int status), "cuStreamIsCapturing");
        return status != 0;
    }

    /// <summary>
    /// Ends the capture begun on <paramref name="stream"/> and returns the recorded graph (a CUgraph; destroy it
    /// with <see cref="DestroyGraph"/>). Throws when the capture was invalidated, e.g. by a synchronising call.
    /// </summary>
    public static IntPtr EndCapture(IntPtr stream)
    {
        int result = StreamEndCapture(stream, out var graph);
        if (result != 0 && graph != IntPtr.Zero)
            GraphDestroy(graph);
        Check(result, "cuStreamEndCapture");
        return graph;
    }

    /// <summary>The number of nodes (kernels, copies, ...) in <paramref name="graph"/>.</summary>
    public static int GraphNodeCount(IntPtr graph)
    {
        nuint count = 0;
        Check(GraphGetNodes(graph, IntPtr.Zero, ref count), "cuGraphGetNodes");
        return checked((int)count);
    }

    /// <summary>An executable graph (CUgraphExec) made from <paramref name="graph"/>, which may then be destroyed.</summary>
    public static IntPtr InstantiateGraph(IntPtr graph)
    {
        Check(GraphInstantiate(out var exec, graph, 0), "cuGraphInstantiateWithFlags");
        return exec;
    }

    /// <summary>Destroys a graph made by <see cref="EndCapture"/>; errors are ignored (it is cleanup).</summary>
    public static void DestroyGraph(IntPtr graph) => GraphDestroy(graph);

    /// <summary>Enqueues one replay of the executable graph <paramref name="exec"/> on <paramref name="stream"/>.</summary>
    public static void LaunchGraph(IntPtr exec, IntPtr stream) => Check(GraphLaunch(exec, stream), "cuGraphLaunch");

    /// <summary>Destroys an executable graph; errors are ignored (it is cleanup).</summary>
    public static void DestroyGraphExec(IntPtr exec) => GraphExecDestroy(exec);

    /// <summary>A CUDA event for timing work on a stream (CU_EVENT_DEFAULT, i.e. with timing).</summary>
    public sealed class Event : IDisposable
    {
        IntPtr _handle;

        public Event() => Check(EventCreate(out _handle, 0), "cuEventCreate");

        /// <summary>Records the event on <paramref name="stream"/>.</summary>
        public void Record(IntPtr stream) => Check(EventRecord(_handle, stream), "cuEventRecord");

        /// <summary>Waits for the event to complete.</summary>
        public void Synchronize() => Check(EventSynchronize(_handle), "cuEventSynchronize");

        /// <summary>Milliseconds between <paramref name="start"/> and this event (both recorded and complete).</summary>
        public float ElapsedSince(Event start)
        {
            Check(EventElapsedTime(out float ms, start._handle, _handle), "cuEventElapsedTime");
            return ms;
        }

        public void Dispose()
        {
            if (_handle != IntPtr.Zero)
            {
                EventDestroy(_handle);
                _handle = IntPtr.Zero;
            }
        }
    }
}
