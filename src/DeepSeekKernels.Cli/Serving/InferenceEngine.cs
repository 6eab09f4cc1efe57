using System.Collections.Concurrent;
using DeepSeekKernels.Caching;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Serving;

/// <summary>
/// The model behind `dsk serve`: one thread owns a <see cref="BatchScheduler"/> over a page pool for
/// <c>maxBatch</c> full contexts and runs its steps while any request waits or runs (continuous batching); HTTP handlers
/// submit requests from any thread and get each token as it is sampled (on the engine's thread: a callback must not block)
/// and the result as a task. A request whose caller cancels (a client that went away) is stopped between steps and its
/// pages freed. A step that fails (non-finite logits) fails every request it held, and the engine goes on with the next.
/// </summary>
internal sealed class InferenceEngine : IDisposable
{
    readonly BatchScheduler _scheduler;
    readonly PagedKvCache _cache;
    readonly ConcurrentQueue<Action> _commands = new();
    readonly SemaphoreSlim _signal = new(0);
    readonly Thread _thread;
    readonly Dictionary<int, TaskCompletionSource<GenerationResult>> _pending = []; // engine thread only
    volatile bool _stopping;

    public InferenceEngine(CausalLanguageModel model, HfTokenizer? tokenizer, int context, int maxBatch, Numerics.ElementType kvType)
    {
        Context = context;
        _cache = model.CreatePagedCache(model.CacheLayout(context, maxBatch, kvType));
        _scheduler = new BatchScheduler(model, tokenizer, _cache);
        _thread = new Thread(Run) { IsBackground = true, Name = "dsk-serve-engine" };
        _thread.Start();
    }

    /// <summary>Positions of context each request may use (prompt and generated tokens).</summary>
    public int Context { get; }

    /// <summary>The KV page pool's bytes.</summary>
    public long CacheBytes => _cache.Bytes;

    /// <summary>Forward steps run so far.</summary>
    public int Steps => _scheduler.Steps;

    /// <summary>Requests submitted and not finished (as of the engine's last pass between steps).</summary>
    public int Active => _active;

    volatile int _active;

    /// <summary>
    /// Queues a request. The task completes with its result (finish reason <see cref="FinishReason.Cancelled"/> when
    /// <paramref name="cancellation"/> fired first), or faults with the scheduler's refusal (<see cref="ArgumentException"/>)
    /// or a failed step's error.
    /// </summary>
    public Task<GenerationResult> Submit(int[] promptIds, GenerationOptions options, Action<GeneratedToken>? onToken, CancellationToken cancellation)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        var done = new TaskCompletionSource<GenerationResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            int id;
            try
            {
                id = _scheduler.Add(promptIds, options, onToken, result => done.TrySetResult(result));
            }
            catch (Exception e)
            {
                done.TrySetException(e);
                return;
            }
            _pending[id] = done;
            _active = _pending.Count;
            if (cancellation.CanBeCanceled)
            {
                var registration = cancellation.Register(() => Post(() => _scheduler.Cancel(id)));
                done.Task.ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
            }
        });
        return done.Task;
    }

    void Post(Action command)
    {
        _commands.Enqueue(command);
        _signal.Release();
    }

    void Run()
    {
        while (!_stopping)
        {
            while (_commands.TryDequeue(out var command))
                command();
            Forget();
            if (_stopping)
                break;
            if (!_scheduler.HasWork)
            {
                _signal.Wait();
                continue;
            }
            try
            {
                _scheduler.Step();
            }
            catch (Exception e)
            {
                // the scheduler released the running requests; stop the waiting ones too and fail them all
                foreach (var (id, source) in _pending.ToArray())
                {
                    _scheduler.Cancel(id);
                    source.TrySetException(e);
                }
            }
            Forget();
        }
    }

    /// <summary>Drops the requests that finished (their results were set on this thread, in the scheduler's callbacks).</summary>
    void Forget()
    {
        foreach (var (id, source) in _pending)
            if (source.Task.IsCompleted)
                _pending.Remove(id);
        _active = _pending.Count;
    }

    public void Dispose()
    {
        if (_stopping)
            return;
        Post(() =>
        {
            foreach (var (id, _) in _pending.ToArray())
                _scheduler.Cancel(id);
            _stopping = true;
        });
        _thread.Join();
        _cache.Dispose();
        _signal.Dispose();
    }
}
