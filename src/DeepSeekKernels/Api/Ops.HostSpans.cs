using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

// Host-span forms of the device-resident ops (RmsNorm and Linear have theirs beside their device forms). Each checks what
// only host memory can tell (whether the spans overlap), then stages the spans into this Ops' runtime (the reference, which
// has no runtime, into one shared CPU runtime), runs the device-resident op, which checks everything else with its own
// messages, and copies the outputs back. An output is staged with its current contents and copied back whole, so elements
// the op does not write keep their values, and a refused call writes nothing.
public sealed partial class Ops
{
    /// <summary>Host-span <see cref="SiluAndMul(DeviceTensor, DeviceTensor, int)"/>: x [rows, 2 * intermediate] (gate, up), destination [rows, intermediate].</summary>
    /// <exception cref="ArgumentException">A length is wrong, or destination overlaps x; nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16.</exception>
    public void SiluAndMul<T>(ReadOnlySpan<T> x, Span<T> destination, int intermediate) where T : unmanaged
    {
        const string op = nameof(SiluAndMul);
        HostDisjoint(op, nameof(destination), destination, nameof(x), x);
        using var stage = new HostStage(Runtime ?? HostStaging);
        var dy = stage.InOut<T>(destination);
        SiluAndMul(stage.In(x), DeviceTensor.FromView(dy), intermediate);
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>Host-span <see cref="Softmax(DeviceTensor, DeviceTensor, int)"/>: destination may be exactly x (in place), else disjoint from it.</summary>
    /// <exception cref="ArgumentException">A length is wrong, or destination overlaps x other than exactly; nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16.</exception>
    public void Softmax<T>(ReadOnlySpan<T> x, Span<T> destination, int rowLength) where T : unmanaged
    {
        const string op = nameof(Softmax);
        if (Overlaps.Of<T, T>(destination[..Math.Min(destination.Length, x.Length)], x) == Overlap.Partial)
            ThrowHelper.Argument(op, nameof(destination), "destination overlaps x other than exactly (in place).");
        using var stage = new HostStage(Runtime ?? HostStaging);
        var dx = stage.In(x);
        var dy = stage.InOut<T>(destination);
        Softmax(dx, DeviceTensor.FromView(dy), rowLength);
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>
    /// Host-span <see cref="MoeRoute(DeviceTensor, DeviceView{float}, DeviceView{int}, DeviceView{float}, MoeRouting)"/>:
    /// router logits [tokens, routing.Experts] (float32 or bfloat16), the correction bias [routing.Experts] or empty, and each
    /// token's routing.TopK expert ids and weights.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="routing"/> is null.</exception>
    /// <exception cref="ArgumentException">A length is wrong, or an output overlaps an input or the other output; nothing is written.</exception>
    public void MoeRoute<T>(ReadOnlySpan<T> routerLogits, ReadOnlySpan<float> correctionBias, Span<int> expertIds, Span<float> expertWeights,
        MoeRouting routing) where T : unmanaged
    {
        const string op = nameof(MoeRoute);
        if (routing is null)
            ThrowHelper.ArgumentNull(op, nameof(routing));
        HostDisjoint(op, nameof(expertIds), expertIds, nameof(routerLogits), routerLogits);
        HostDisjoint(op, nameof(expertIds), expertIds, nameof(correctionBias), correctionBias);
        HostDisjoint(op, nameof(expertIds), expertIds, nameof(expertWeights), expertWeights);
        HostDisjoint(op, nameof(expertWeights), expertWeights, nameof(routerLogits), routerLogits);
        HostDisjoint(op, nameof(expertWeights), expertWeights, nameof(correctionBias), correctionBias);
        using var stage = new HostStage(Runtime ?? HostStaging);
        var ids = stage.InOut<int>(expertIds);
        var weights = stage.InOut<float>(expertWeights);
        var bias = correctionBias.IsEmpty ? default : stage.View(correctionBias);
        MoeRoute(stage.In(routerLogits), bias, ids, weights, routing);
        HostStage.CopyBack(ids, expertIds);
        HostStage.CopyBack(weights, expertWeights);
    }

    /// <summary>
    /// Host-span <see cref="Attention(DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, int, int, int, int, int, int, float)"/>:
    /// causal GQA attention of one sequence's queries [tokens, qHeads, headDim] over its contiguous keys [kvLength, kvHeads,
    /// headDim] and values [kvLength, kvHeads, vHeadDim], the queries at positions queryStart onward.
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong, or destination overlaps q, k or v; nothing is written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, or the heads do not divide.</exception>
    public void Attention<T>(ReadOnlySpan<T> q, ReadOnlySpan<T> k, ReadOnlySpan<T> v, Span<T> destination,
        int qHeads, int kvHeads, int headDim, int vHeadDim, int kvLength, int queryStart, float scale) where T : unmanaged
    {
        const string op = nameof(Attention);
        HostDisjoint(op, nameof(destination), destination, nameof(q), q);
        HostDisjoint(op, nameof(destination), destination, nameof(k), k);
        HostDisjoint(op, nameof(destination), destination, nameof(v), v);
        using var stage = new HostStage(Runtime ?? HostStaging);
        var dy = stage.InOut<T>(destination);
        Attention(stage.In(q), stage.In(k), stage.In(v), DeviceTensor.FromView(dy), qHeads, kvHeads, headDim, vHeadDim, kvLength, queryStart, scale);
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>Refuses an output span that shares any byte with an input span (host memory: by address).</summary>
    static void HostDisjoint<TA, TB>(string op, string aName, ReadOnlySpan<TA> a, string bName, ReadOnlySpan<TB> b)
        where TA : unmanaged where TB : unmanaged
    {
        if (Overlaps.Of(a, b) != Overlap.None)
            ThrowHelper.Argument(op, aName, $"{aName} overlaps {bName}.");
    }

    static readonly Lazy<DeviceRuntime> s_hostStaging = new(() => DeviceRuntime.Create(DevicePreference.Cpu));

    /// <summary>Where host-span calls on <see cref="Reference"/> (which has no runtime) stage their operands: one CPU runtime per process.</summary>
    static DeviceRuntime HostStaging => s_hostStaging.Value;

    /// <summary>A host-span call's staged copies on a runtime, disposed together.</summary>
    sealed class HostStage(DeviceRuntime runtime) : IDisposable
    {
        readonly List<IDisposable> _owned = [];

        /// <summary>A copy of <paramref name="span"/>; an empty span gives an empty view (whose length the op then refuses).</summary>
        public DeviceView<T> View<T>(ReadOnlySpan<T> span) where T : unmanaged
        {
            var buffer = span.IsEmpty ? runtime.Allocate<T>(1) : runtime.Upload(span);
            _owned.Add(buffer);
            return buffer.View.Slice(0, span.Length);
        }

        /// <summary>An input as a one-dimensional tensor.</summary>
        public DeviceTensor In<T>(ReadOnlySpan<T> span) where T : unmanaged => DeviceTensor.FromView(View(span));

        /// <summary>An output, staged with its current contents (so what the op does not write comes back unchanged).</summary>
        public DeviceView<T> InOut<T>(Span<T> span) where T : unmanaged => View<T>(span);

        /// <summary>The staged output back into <paramref name="destination"/>, whole.</summary>
        public static void CopyBack<T>(DeviceView<T> view, Span<T> destination) where T : unmanaged
        {
            if (!destination.IsEmpty)
                view.CopyToHost(destination);
        }

        public void Dispose()
        {
            foreach (var item in _owned)
                item.Dispose();
        }
    }
}
