using System.Runtime.ExceptionServices;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// A fixed pool of worker threads for the CPU backend's kernels (llama.cpp's threadpool, not the .NET ThreadPool): the
/// caller of <see cref="For"/> works as thread 0 and <see cref="Threads"/> - 1 dedicated threads join it. A decode step
/// makes a hundred parallel calls of 50-500 µs, so a worker spins for a short while after each call (the next one usually
/// comes within microseconds) and only then sleeps; Parallel.For's per-call task scheduling and wake-ups cost a visible share
/// of such calls. Calls are serialised: a second thread calling <see cref="For"/> while one runs, or a body calling it
/// (nested), runs its loop alone on its own thread, so no call waits on another and none deadlocks.
/// </summary>
internal sealed class CpuThreadPool : IDisposable
{
    /// <summary>How long a worker spins for the next call before it sleeps (the gap between two GEMVs of a decode step is a few µs).</summary>
    const long SpinTicks = TimeSpan.TicksPerMillisecond / 4;

    readonly Thread[] _workers;
    readonly Lock _callLock = new();
    readonly SemaphoreSlim[] _wake; // one per worker: a release meant for one sleeper cannot wake (and be taken by) another
    readonly bool[] _sleeping;

    // the current call
    Action<int>? _body;
    int _count;
    int _next;          // next index to take
    int _pending;       // workers still in the current call
    long _generation;   // bumped once per call; workers wait for it to change
    Exception? _error;
    volatile bool _disposed;

    [ThreadStatic]
    static bool t_inCall;

    /// <summary>A pool of <paramref name="threads"/> threads in all (the caller plus threads - 1 workers).</summary>
    public CpuThreadPool(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Threads = threads;
        _workers = new Thread[threads - 1];
        _sleeping = new bool[threads - 1];
        _wake = new SemaphoreSlim[threads - 1];
        for (int i = 0; i < _wake.Length; i++)
            _wake[i] = new SemaphoreSlim(0);
        for (int i = 0; i < _workers.Length; i++)
        {
            int worker = i;
            _workers[i] = new Thread(() => Work(worker)) { IsBackground = true, Name = $"dsk-cpu-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Threads that run a call, the caller included.</summary>
    public int Threads { get; }

    /// <summary>
    /// The physical cores of this machine (Linux: distinct core ids in /sys; elsewhere, or when that cannot be read, the
    /// logical processor count): the default thread count, as llama.cpp's, since two hyperthreads of one core share its FMA
    /// units and its bandwidth to memory.
    /// </summary>
    public static int PhysicalCores { get; } = CountPhysicalCores();

    static CpuThreadPool? s_shared;
    static readonly Lock s_sharedLock = new();

    /// <summary>The process's pool of <see cref="PhysicalCores"/> threads, created on first use.</summary>
    public static CpuThreadPool Shared
    {
        get
        {
            if (s_shared != null)
                return s_shared;
            lock (s_sharedLock)
                return s_shared ??= new CpuThreadPool(PhysicalCores);
        }
    }

    static readonly Dictionary<int, CpuThreadPool> s_bySize = [];

    /// <summary>A process-wide pool of <paramref name="threads"/> threads, one per size (made on first use, never disposed).</summary>
    public static CpuThreadPool WithThreads(int threads)
    {
        lock (s_sharedLock)
        {
            if (!s_bySize.TryGetValue(threads, out var pool))
                s_bySize[threads] = pool = new CpuThreadPool(threads);
            return pool;
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/>(i) for every i in [0, count), spread over the pool's threads (each takes the next
    /// index in turn), and returns when all are done. The first exception a body throws is rethrown here after the others
    /// finished. Runs on the calling thread alone when count is 1, the pool has one thread, it is busy with another
    /// caller's call, or this is a call from inside a body.
    /// </summary>
    public void For(int count, Action<int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (count <= 0)
            return;
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count == 1 || _workers.Length == 0 || t_inCall || !_callLock.TryEnter())
        {
            for (int i = 0; i < count; i++)
                body(i);
            return;
        }
        try
        {
            t_inCall = true;
            _body = body;
            _count = count;
            _error = null;
            Volatile.Write(ref _next, 0);
            Volatile.Write(ref _pending, _workers.Length);
            Interlocked.Increment(ref _generation);
            for (int i = 0; i < _sleeping.Length; i++)
            {
                if (Interlocked.Exchange(ref _sleeping[i], false)) // atomic: the worker's own Exchange may race this one
                    _wake[i].Release();
            }
            RunIndices();
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0)
                spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
            if (_error is { } error)
                ExceptionDispatchInfo.Capture(error).Throw();
        }
        finally
        {
            t_inCall = false;
            _callLock.Exit();
        }
    }

    /// <summary>Takes indices of the current call until none are left.</summary>
    void RunIndices()
    {
        var body = _body!;
        int count = _count;
        while (true)
        {
            int i = Interlocked.Increment(ref _next) - 1;
            if (i >= count)
                return;
            try
            {
                body(i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
        }
    }

    void Work(int worker)
    {
        t_inCall = true; // a body's nested For runs inline
        long seen = 0;
        while (true)
        {
            // wait for the next call: spin, then sleep until For wakes us
            long start = DateTime.UtcNow.Ticks;
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_disposed)
            {
                Thread.SpinWait(20);
                if (++spins % 64 == 0 && DateTime.UtcNow.Ticks - start > SpinTicks)
                {
                    // a full fence (not Volatile.Write): the flag must be visible before generation is read, or a call that
                    // begins in between sees no sleeper to wake while this worker reads the old generation and sleeps (seen)
                    Interlocked.Exchange(ref _sleeping[worker], true);
                    if (Volatile.Read(ref _generation) != seen || _disposed)
                    {
                        // a call began (or disposal) after the check: take it back unless For already woke us
                        if (!Interlocked.Exchange(ref _sleeping[worker], false))
                            _wake[worker].Wait();
                        break;
                    }
                    _wake[worker].Wait();
                    start = DateTime.UtcNow.Ticks;
                }
            }
            if (_disposed)
                return;
            seen = Volatile.Read(ref _generation);
            RunIndices();
            Interlocked.Decrement(ref _pending);
        }
    }

    static int CountPhysicalCores()
    {
        try
        {
            if (OperatingSystem.IsLinux() && Directory.Exists("/sys/devices/system/cpu"))
            {
                var cores = new HashSet<string>();
                foreach (string cpu in Directory.GetDirectories("/sys/devices/system/cpu", "cpu*"))
                {
                    string siblings = Path.Combine(cpu, "topology", "thread_siblings_list");
                    string online = Path.Combine(cpu, "online");
                    if (!File.Exists(siblings) || (File.Exists(online) && File.ReadAllText(online).Trim() == "0"))
                        continue;
                    cores.Add(File.ReadAllText(siblings).Trim());
                }
                if (cores.Count > 0)
                    return Math.Min(cores.Count, Environment.ProcessorCount);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return Environment.ProcessorCount;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var wake in _wake)
            wake.Release();
        foreach (var worker in _workers)
            worker.Join();
        foreach (var wake in _wake)
            wake.Dispose();
    }
}
