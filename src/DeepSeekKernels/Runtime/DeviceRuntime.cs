using DeepSeekKernels.Bindings;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Runtime;

/// <summary>Which device a <see cref="DeviceRuntime"/> should use.</summary>
public enum DevicePreference
{
    /// <summary>The first CUDA GPU if there is one, else ILGPU's CPU accelerator.</summary>
    Auto,
    /// <summary>A CUDA GPU; fails if there is none.</summary>
    Cuda,
    /// <summary>ILGPU's CPU accelerator (simulates GPU threads; for tests and machines without a GPU).</summary>
    Cpu,
}

/// <summary>
/// Owns the one ILGPU context, accelerator and stream that all device work goes through. Hand-CUDA kernels
/// and cuBLAS are launched on this same stream with the raw pointers of ILGPU buffers, so ILGPU and native
/// kernels chain on one buffer with no copies and no extra synchronisation.
/// </summary>
public sealed class DeviceRuntime : IDisposable
{
    /// <summary>Environment variable that overrides <see cref="DevicePreference.Auto"/>: "cuda" or "cpu".</summary>
    public const string DeviceVariable = "DSK_DEVICE";

    readonly Context _context;
    bool _disposed;

    DeviceRuntime(Context context, Accelerator accelerator)
    {
        _context = context;
        Accelerator = accelerator;
        Stream = accelerator.CreateStream();
        Errors = new DeviceErrors(this);
    }

    /// <summary>
    /// The error word kernels write when they meet a bad device-held index (<see cref="DeviceErrors"/>); checked, and
    /// thrown as a <see cref="DeviceIndexException"/>, at every <see cref="Synchronize"/> and copy to the host.
    /// </summary>
    public DeviceErrors Errors { get; }

    /// <summary>
    /// Lanes per warp of the GPU that ILGPU's CPU accelerator simulates here (<see cref="CpuWarpsPerGroup"/> warps per
    /// group). The accelerator runs every simulated GPU thread of a group as an OS thread and every warp shuffle as a barrier
    /// of the warp's threads; with fewer lanes than the machine has cores a shuffle's partners run at once instead of
    /// waiting to be scheduled. Measured on 2 cores (2026-12-02), ILGPU's MLA conformance and attention op tests: 100 s with
    /// ILGPU's default shape (4 lanes x 4 warps), 103 s with 4 x 2, 34 s with 2 x 4, 35 s with 2 x 8 (the default's
    /// 16-thread groups); the whole test suite 572 -> 404 s. The kernels size their groups from <see cref="Accelerator.WarpSize"/> and
    /// <see cref="Accelerator.MaxNumThreadsPerGroup"/>, so any shape runs them; <see cref="CreateCpu"/> takes others (the
    /// tests run the models on 4- and 8-lane warps too).
    /// </summary>
    public const int CpuWarpSize = 2;

    /// <summary>Warps per group of the GPU ILGPU's CPU accelerator simulates (see <see cref="CpuWarpSize"/>): 16-thread groups.</summary>
    public const int CpuWarpsPerGroup = 8;

    /// <summary>Creates a runtime on the preferred device.</summary>
    /// <exception cref="NoCudaDeviceException">A CUDA GPU was asked for (<see cref="DevicePreference.Cuda"/>, or Auto with DSK_DEVICE=cuda) and none is visible.</exception>
    public static DeviceRuntime Create(DevicePreference preference = DevicePreference.Auto)
    {
        if (preference == DevicePreference.Auto)
        {
            preference = Environment.GetEnvironmentVariable(DeviceVariable)?.Trim().ToLowerInvariant() switch
            {
                "cpu" => DevicePreference.Cpu,
                "cuda" or "gpu" => DevicePreference.Cuda,
                _ => DevicePreference.Auto,
            };
        }
        return CreateWith(preference, CpuWarpSize, CpuWarpsPerGroup);
    }

    /// <summary>
    /// Creates a runtime on ILGPU's CPU accelerator simulating groups of <paramref name="warpsPerGroup"/> warps of
    /// <paramref name="warpSize"/> lanes (<see cref="Create"/> with <see cref="DevicePreference.Cpu"/> uses
    /// <see cref="CpuWarpSize"/> x <see cref="CpuWarpsPerGroup"/>). Every simulated thread of a group is an OS thread: wide
    /// shapes are slow. The kernels fit their groups to the simulated one (Linear's 4-warp GEMV gives way to its tiled kernel).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The warp size is not a power of two in 2..32, the warps not a power of
    /// two in 1..32, or the group is over 1,024 threads.</exception>
    public static DeviceRuntime CreateCpu(int warpSize, int warpsPerGroup)
    {
        if (warpSize is < 2 or > 32 || !int.IsPow2(warpSize))
            throw new ArgumentOutOfRangeException(nameof(warpSize), warpSize, "A simulated warp has 2, 4, 8, 16 or 32 lanes.");
        if (warpsPerGroup is < 1 or > 32 || !int.IsPow2(warpsPerGroup))
            throw new ArgumentOutOfRangeException(nameof(warpsPerGroup), warpsPerGroup, "A simulated group has 1, 2, 4, 8, 16 or 32 warps.");
        if (warpSize * warpsPerGroup > 1024)
            throw new ArgumentOutOfRangeException(nameof(warpsPerGroup), warpsPerGroup, $"{warpsPerGroup} warps of {warpSize} lanes is over 1,024 threads per group.");
        return CreateWith(DevicePreference.Cpu, warpSize, warpsPerGroup);
    }

    static DeviceRuntime CreateWith(DevicePreference preference, int cpuWarpSize, int cpuWarpsPerGroup)
    {
        // One simulated multiprocessor: the accelerator runs a group at a time, its threads the machine's cores share.
        var cpu = new CPUDevice(numThreadsPerWarp: cpuWarpSize, numWarpsPerMultiprocessor: cpuWarpsPerGroup, numMultiprocessors: 1);
        var context = Context.Create(builder => builder
            .Cuda()
            .CPU(cpu)
            .EnableAlgorithms()
            .Optimize(OptimizationLevel.O2));
        try
        {
            var cudaDevices = context.GetCudaDevices();
            Accelerator accelerator = preference switch
            {
                DevicePreference.Cpu => context.CreateCPUAccelerator(0),
                DevicePreference.Cuda when cudaDevices.Count == 0 =>
                    throw new NoCudaDeviceException("No CUDA GPU was found (ILGPU saw none); use DevicePreference.Auto or Cpu."),
                _ when cudaDevices.Count > 0 => context.CreateCudaAccelerator(0),
                _ => context.CreateCPUAccelerator(0),
            };
            return new DeviceRuntime(context, accelerator);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>True when any CUDA GPU is visible (cheap to call; creates and drops an ILGPU context).</summary>
    public static bool IsCudaAvailable()
    {
        try
        {
            using var context = Context.Create(builder => builder.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>The ILGPU accelerator (CUDA or CPU).</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The one stream all work of this runtime is issued on.</summary>
    public AcceleratorStream Stream { get; }

    /// <summary>True on a CUDA GPU, false on ILGPU's CPU accelerator.</summary>
    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;

    /// <summary>The device's name, e.g. "NVIDIA H100 80GB HBM3" or "CPUAccelerator".</summary>
    public string DeviceName => Accelerator.Name;

    /// <summary>The raw CUstream of <see cref="Stream"/> (CUDA only).</summary>
    public IntPtr CudaStreamHandle => Stream is CudaStream cuda
        ? cuda.StreamPtr
        : throw new InvalidOperationException("This runtime is on ILGPU's CPU accelerator; it has no CUDA stream.");

    /// <summary>
    /// Makes this runtime's CUDA context current on the calling thread. Every entry point that launches work
    /// calls it, so ops may be called from any thread (tests and benchmarks do).
    /// </summary>
    public void Bind() => Accelerator.Bind();

    /// <summary>Allocates a device buffer of <paramref name="length"/> elements (contents undefined).</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckHostMemory(length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), $"{typeof(T).Name} x {length:N0}");
        Bind();
        try
        {
            return new DeviceBuffer<T>(this, Accelerator.Allocate1D<T>(length));
        }
        catch (Exception e) when (e is not (ArgumentException or NotSupportedException or ObjectDisposedException))
        {
            long bytes = length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            throw new DeviceMemoryException(
                $"Allocating {bytes:N0} bytes ({typeof(T).Name} x {length:N0}) on {DeviceName} failed" +
                (FreeMemoryBytes is long free ? $" with {free:N0} bytes free" : "") + $": {e.Message}", e);
        }
    }

    /// <summary>
    /// Allocates an arena of <paramref name="bytes"/> (contents undefined) to carve typed buffers from with stable
    /// addresses (<see cref="DeviceArena"/>).
    /// </summary>
    public DeviceArena CreateArena(long bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        CheckHostMemory(bytes, "an arena");
        Bind();
        try
        {
            return new DeviceArena(this, Accelerator.Allocate1D<byte>(Math.Max(bytes, 1)));
        }
        catch (Exception e) when (e is not (ArgumentException or NotSupportedException or ObjectDisposedException))
        {
            throw new DeviceMemoryException(
                $"Allocating an arena of {bytes:N0} bytes on {DeviceName} failed" +
                (FreeMemoryBytes is long free ? $" with {free:N0} bytes free" : "") + $": {e.Message}", e);
        }
    }

    /// <summary>
    /// <paramref name="length"/> elements of read-only host memory at <paramref name="address"/> as a buffer of this runtime,
    /// used in place (no copy): how the CPU reads weights straight from a memory-mapped checkpoint, so the pages are the
    /// file's, shared with every process that maps it. Only on ILGPU's CPU accelerator (a GPU needs its own copy). The caller
    /// keeps the memory mapped for as long as the buffer lives; the buffer refuses writes (<see cref="DeviceBuffer{T}.IsReadOnly"/>).
    /// </summary>
    /// <exception cref="NotSupportedException">This runtime is on a CUDA GPU.</exception>
    /// <exception cref="ArgumentException">The address is not aligned to the element size.</exception>
    /// <param name="address">The first element's host address.</param>
    /// <param name="length">Elements.</param>
    /// <param name="fileMapping">The memory is a file's mapping (<see cref="DeviceBuffer{T}.IsFileMapping"/>).</param>
    internal unsafe DeviceBuffer<T> WrapReadOnlyHostMemory<T>(IntPtr address, long length, bool fileMapping = false) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (IsCuda)
            throw new NotSupportedException("Host memory is used in place only on ILGPU's CPU accelerator; a GPU needs its own copy.");
        if (address % sizeof(T) != 0)
            throw new ArgumentException($"The address is not aligned to {typeof(T).Name}'s {sizeof(T)} bytes.", nameof(address));
        var memory = ILGPU.Runtime.CPU.CPUMemoryBuffer.Create(Accelerator, address, Math.Max(length * sizeof(T), 1), 1);
        return new DeviceBuffer<T>(this, memory, 0, length, readOnlyHost: true, fileMapping);
    }

    /// <summary>
    /// Free device memory in bytes: on a GPU the driver's figure; on ILGPU's CPU accelerator the host memory this process can
    /// still take (MemAvailable, capped by a cgroup limit: see <see cref="HostMemory"/>), or null where that cannot be read
    /// (not Linux).
    /// </summary>
    public long? FreeMemoryBytes
    {
        get
        {
            if (!IsCuda)
                return HostMemory.AvailableBytes();
            Bind();
            return CudaDriver.MemoryInfo().Free;
        }
    }

    /// <summary>Allocations on ILGPU's CPU accelerator from this size up are checked against <see cref="FreeMemoryBytes"/> first.</summary>
    internal const long HostCheckBytes = 64L << 20;

    /// <summary>
    /// On ILGPU's CPU accelerator, refuses an allocation of at least <see cref="HostCheckBytes"/> that is larger than the host
    /// memory available: Linux would grant it and kill the process when its pages are touched (a KV page pool fills as
    /// sequences grow), so it is refused now with a <see cref="DeviceMemoryException"/> that gives both figures.
    /// </summary>
    void CheckHostMemory(long bytes, string what)
    {
        if (IsCuda || bytes < HostCheckBytes || FreeMemoryBytes is not long available || bytes <= available)
            return;
        throw new DeviceMemoryException(
            $"Allocating {bytes:N0} bytes ({what}) on {DeviceName} refused: the host has {available:N0} bytes available " +
            "(MemAvailable, or the cgroup's limit less its usage); nothing was allocated. Ask for less (a shorter --context, a smaller --max-batch), or free memory.");
    }

    /// <summary>Allocates a device buffer holding a copy of <paramref name="source"/>.</summary>
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        var buffer = Allocate<T>(source.Length);
        buffer.CopyFromHost(source);
        return buffer;
    }

    /// <summary>
    /// Waits until all work issued on <see cref="Stream"/> is done, then throws the first bad device-held index an op
    /// recorded since the last check (<see cref="DeviceIndexException"/>, naming the op and the value).
    /// </summary>
    public void Synchronize()
    {
        Bind();
        Stream.Synchronize();
        Errors.ThrowIfSet();
    }

    /// <summary>
    /// Runs <paramref name="enqueue"/> with the stream in capture mode and returns what it enqueued as a
    /// <see cref="DeviceGraph"/> to replay; nothing runs during the capture. Run the same work once before
    /// capturing it, so that every kernel is compiled and loaded. Inside <paramref name="enqueue"/>, only
    /// enqueue device work on this runtime: anything that waits for the stream (a copy to the host, an op
    /// falling back to the reference, <see cref="Synchronize"/>) makes the capture fail. When
    /// <paramref name="enqueue"/> throws, or the capture fails, the capture is ended, the stream is usable
    /// again and nothing was run.
    /// </summary>
    /// <exception cref="NotSupportedException">The runtime is on ILGPU's CPU accelerator.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="enqueue"/> enqueued nothing.</exception>
    /// <exception cref="Bindings.CudaException">The driver refused the capture (the message names the call).</exception>
    public DeviceGraph CaptureGraph(Action enqueue)
    {
        ArgumentNullException.ThrowIfNull(enqueue);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsCuda)
            throw new NotSupportedException("CUDA graphs need a CUDA GPU; this runtime is on ILGPU's CPU accelerator.");
        Bind();
        IntPtr stream = CudaStreamHandle;
        CudaDriver.BeginCapture(stream);
        try
        {
            enqueue();
        }
        catch
        {
            try
            {
                CudaDriver.DestroyGraph(CudaDriver.EndCapture(stream));
            }
            catch (Bindings.CudaException)
            {
                // The capture was already invalidated; the exception from enqueue says why.
            }
            throw;
        }
        Bind(); // enqueue may have bound another context to this thread
        IntPtr graph = CudaDriver.EndCapture(stream);
        try
        {
            int nodes = CudaDriver.GraphNodeCount(graph);
            if (nodes == 0)
                throw new InvalidOperationException("The capture recorded no device work: the action enqueued nothing on this runtime's stream.");
            return new DeviceGraph(this, CudaDriver.InstantiateGraph(graph), nodes);
        }
        finally
        {
            CudaDriver.DestroyGraph(graph);
        }
    }

    internal bool IsDisposed => _disposed;

    /// <summary>Whether the hand-CUDA kernels can run here; if not, <paramref name="reason"/> says why.</summary>
    public bool IsNativeAvailable(out string reason)
    {
        if (!IsCuda)
        {
            reason = "the native kernels need a CUDA GPU; this runtime is on ILGPU's CPU accelerator";
            return false;
        }
        return DskNative.TryLoad(out reason);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Errors.Dispose();
        Stream.Dispose();
        Accelerator.Dispose();
        _context.Dispose();
    }
}
