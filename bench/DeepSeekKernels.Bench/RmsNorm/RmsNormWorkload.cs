using DeepSeekKernels.Bench.Infrastructure;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU.Runtime;

namespace DeepSeekKernels.Bench.RmsNorm;

/// <summary>
/// What the RMSNorm benchmarks time, whatever way they submit it: bf16 activations and weight, inputs rotating
/// through 128 MiB arenas (2.5x the H100's 50 MB L2) so every operation reads DRAM, and three operations on
/// them: RMSNorm (or add + RMSNorm when fused) on the native or ILGPU backend, and the baseline, a device copy
/// of the op's input bytes (read + written by the copy = the op's own traffic, less the weight).
/// </summary>
internal sealed class RmsNormWorkload : IDisposable
{
    const long ArenaBytes = 128L << 20;
    const float Eps = 1e-6f;

    readonly bool _fused;
    readonly int _tokens, _hidden;
    readonly DeviceBuffer<BFloat16> _x, _r, _y, _w;
    readonly long _slotElements, _slots;
    long _next;

    /// <summary>Allocates and fills the arenas and runs each operation once (kernels compiled and loaded).</summary>
    public RmsNormWorkload(bool fused, int tokens, int hidden, DevicePreference device)
    {
        (_fused, _tokens, _hidden) = (fused, tokens, hidden);
        Runtime = DeviceRuntime.Create(device);
        Native = Runtime.IsCuda ? Ops.Create(Runtime, Backend.Native) : null;
        Ilgpu = Ops.Create(Runtime, Backend.Ilgpu);
        // The copy baseline moves x and residual as one block, so each slot holds both, back to back.
        _slotElements = 2L * tokens * hidden;
        _slots = Math.Max(2, ArenaBytes / (_slotElements * 2));
        var init = BenchData.RandomBf16(_slots * _slotElements);
        _x = Runtime.Upload<BFloat16>(init);
        _r = Runtime.Upload<BFloat16>(init);
        _y = Runtime.Allocate<BFloat16>(init.Length);
        _w = Runtime.Upload<BFloat16>(init[..hidden]);
        if (Native != null)
            Launch(Native);
        Launch(Ilgpu);
        Copy();
        Runtime.Synchronize();
    }

    public DeviceRuntime Runtime { get; }
    /// <summary>The hand-CUDA kernels; null on ILGPU's CPU accelerator (smoke mode).</summary>
    public Ops? Native { get; }
    public Ops Ilgpu { get; }

    /// <summary>Bytes one operation of benchmark method <paramref name="method"/> reads plus writes.</summary>
    public static long BytesMoved(string method, bool fused, int tokens, int hidden)
    {
        long activation = (long)tokens * hidden * 2;
        return method == Infrastructure.BandwidthColumn.CopyMethod
            ? 2 * activation * (fused ? 2 : 1)             // the copy reads and writes the op's input bytes
            : activation * (fused ? 4 : 2) + hidden * 2;   // x (+ residual) in, y (+ r) out, weight once
    }

    /// <summary>Enqueues one RMSNorm (add + RMSNorm when fused) on the next slot.</summary>
    public void Launch(Ops ops)
    {
        long n = (long)_tokens * _hidden;
        long offset = NextSlot() * _slotElements;
        var x = _x.Slice(offset, n);
        var y = _y.Slice(offset, n);
        if (_fused)
            ops.AddRmsNorm(x, _x.Slice(offset + n, n), _w.View, _r.Slice(offset, n), y, _hidden, Eps);
        else
            ops.RmsNorm(x, _w.View, y, _hidden, Eps);
    }

    /// <summary>Enqueues one copy of the op's input bytes on the next slot.</summary>
    public void Copy()
    {
        Runtime.Bind();
        long elements = (_fused ? 2L : 1L) * _tokens * _hidden;
        long offset = NextSlot() * _slotElements;
        if (Runtime.IsCuda)
            CudaDriver.CopyDeviceToDeviceAsync(_y.Slice(offset, 1).Pointer, _x.Slice(offset, 1).Pointer, elements * 2, Runtime.CudaStreamHandle);
        else
            _x.Slice(offset, elements).IlgpuView.CopyTo(Runtime.Stream, _y.Slice(offset, elements).IlgpuView);
    }

    long NextSlot() => _next++ % _slots;

    public void Dispose()
    {
        _x.Dispose(); _r.Dispose(); _y.Dispose(); _w.Dispose();
        Runtime.Dispose();
    }
}
