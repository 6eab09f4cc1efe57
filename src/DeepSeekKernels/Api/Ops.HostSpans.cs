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
    /// Host-span <see cref="Rope(DeviceTensor, DeviceView{int}, RopeTable, int, int, int, RopeLayout)"/>, in place on x [tokens,
    /// heads, headStride] (float32 or bfloat16) with token t at positions[t]; tokens is positions' length. The cos/sin table is
    /// built for this call from <paramref name="scaling"/> over positions [0, max(positions)] (the values of a position do not
    /// depend on how many the table holds, so the result equals the device form's with the model's table); for many calls,
    /// build a <see cref="RopeTable"/> once and use the device-resident form.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="scaling"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A position is negative (the message names the first and its index), or a
    /// size is out of range; nothing is written.</exception>
    /// <exception cref="ArgumentException">A length is wrong, positions overlaps x, or a RoPE parameter the kind needs is missing;
    /// nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16.</exception>
    public void Rope<T>(Span<T> x, ReadOnlySpan<int> positions, RopeScaling scaling, int rotaryDim, int heads, int headStride,
        int ropeOffset, RopeLayout layout) where T : unmanaged
    {
        const string op = nameof(Rope);
        if (scaling is null)
            ThrowHelper.ArgumentNull(op, nameof(scaling));
        if (positions.IsEmpty)
            ThrowHelper.Argument(op, nameof(positions), "positions is empty: it needs one position per token of x.");
        HostDisjoint(op, nameof(x), x, nameof(positions), positions);
        int last = 0;
        for (int t = 0; t < positions.Length; t++)
        {
            if (positions[t] < 0)
                ThrowHelper.OutOfRange(op, nameof(positions), positions[t], $"positions[{t}] = {positions[t]} is negative.");
            last = Math.Max(last, positions[t]);
        }
        if (last == int.MaxValue)
            ThrowHelper.OutOfRange(op, nameof(positions), last, $"a position of {last} leaves no room for a table of position + 1 entries.");
        var runtime = Runtime ?? HostStaging;
        using var table = RopeTable.Create(runtime, scaling, rotaryDim, last + 1);
        using var stage = new HostStage(runtime);
        var dx = stage.InOut<T>(x);
        Rope(DeviceTensor.FromView(dx), stage.View(positions), table, heads, headStride, ropeOffset, layout);
        runtime.Synchronize();
        HostStage.CopyBack(dx, x);
    }

    /// <summary>
    /// Host-span <see cref="MoePermute(DeviceTensor, DeviceView{int}, DeviceTensor, DeviceView{int}, DeviceView{int}, int, int, DeviceView{int})"/>:
    /// x [tokens, hidden] and expertIds [tokens, topK] into permuted [tokens * topK, hidden], expertOffsets [experts + 1] and
    /// slotRows [tokens * topK] (each at least that long; only those elements are written).
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong, or an output overlaps an input or another output; nothing is written.</exception>
    /// <exception cref="DeviceIndexException">An expert id is outside [0, experts); nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16.</exception>
    public void MoePermute<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> expertIds, Span<T> permuted, Span<int> expertOffsets, Span<int> slotRows,
        int experts, int topK = 0) where T : unmanaged
    {
        const string op = nameof(MoePermute);
        HostDisjoint(op, nameof(permuted), permuted, nameof(x), x);
        HostDisjoint(op, nameof(permuted), permuted, nameof(expertIds), expertIds);
        HostDisjoint(op, nameof(expertOffsets), expertOffsets, nameof(x), x);
        HostDisjoint(op, nameof(expertOffsets), expertOffsets, nameof(expertIds), expertIds);
        HostDisjoint(op, nameof(expertOffsets), expertOffsets, nameof(permuted), permuted);
        HostDisjoint(op, nameof(slotRows), slotRows, nameof(x), x);
        HostDisjoint(op, nameof(slotRows), slotRows, nameof(expertIds), expertIds);
        HostDisjoint(op, nameof(slotRows), slotRows, nameof(permuted), permuted);
        HostDisjoint(op, nameof(slotRows), slotRows, nameof(expertOffsets), expertOffsets);
        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var dPermuted = stage.InOut<T>(permuted);
        var dOffsets = stage.InOut<int>(expertOffsets);
        var dSlotRows = stage.InOut<int>(slotRows);
        MoePermute(stage.In(x), stage.View(expertIds), DeviceTensor.FromView(dPermuted), dOffsets, dSlotRows, experts, topK);
        runtime.Synchronize(); // an expert id out of range throws here, before anything is copied back
        HostStage.CopyBack(dPermuted, permuted);
        HostStage.CopyBack(dOffsets, expertOffsets);
        HostStage.CopyBack(dSlotRows, slotRows);
    }

    /// <summary>
    /// Host-span <see cref="GroupedLinear(DeviceTensor, DeviceView{int}, WeightMatrix, DeviceTensor)"/>: x [M, weight.Cols] rows
    /// grouped by expert, expertOffsets [weight.Count + 1], a weight stack in host memory (Count = experts), destination
    /// [M, weight.Rows] (rows outside the offsets keep their values). Each call copies the stack: for many calls, upload it
    /// once and use the device-resident form.
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong, the weight is default, or destination overlaps an input; nothing is written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The offsets are out of order or past M (the reference, before it writes).</exception>
    /// <exception cref="DeviceIndexException">The offsets are out of order or past M (a device backend); nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16, or the backend does not run the signature.</exception>
    public void GroupedLinear<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> expertOffsets, in HostWeightMatrix weight, Span<T> destination)
        where T : unmanaged => Grouped(nameof(GroupedLinear), x, expertOffsets, weight, destination, siluMul: false);

    /// <summary>
    /// Host-span <see cref="GroupedLinearSiluMul(DeviceTensor, DeviceView{int}, WeightMatrix, DeviceTensor)"/>: as
    /// <see cref="GroupedLinear{T}(ReadOnlySpan{T}, ReadOnlySpan{int}, in HostWeightMatrix, Span{T})"/> over a stack of fused
    /// [gate | up] matrices, destination [M, gateUp.Rows / 2].
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong, the weight is default or has an odd number of rows, or destination overlaps an input; nothing is written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The offsets are out of order or past M (the reference, before it writes).</exception>
    /// <exception cref="DeviceIndexException">The offsets are out of order or past M (a device backend); nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16, or the backend does not run the signature.</exception>
    public void GroupedLinearSiluMul<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> expertOffsets, in HostWeightMatrix gateUp, Span<T> destination)
        where T : unmanaged => Grouped(nameof(GroupedLinearSiluMul), x, expertOffsets, gateUp, destination, siluMul: true);

    void Grouped<T>(string op, ReadOnlySpan<T> x, ReadOnlySpan<int> expertOffsets, in HostWeightMatrix weight, Span<T> destination,
        bool siluMul) where T : unmanaged
    {
        string name = siluMul ? "gateUp" : "weight";
        if (weight.Rows < 1)
            ThrowHelper.Argument(op, name, $"{name} is a default HostWeightMatrix (make it with HostWeightMatrix.Dense, Fp8 or Int4).");
        HostDisjoint(op, nameof(destination), destination, nameof(x), x);
        HostDisjoint(op, nameof(destination), destination, nameof(expertOffsets), expertOffsets);
        HostDisjoint(op, nameof(destination), destination, name, weight.Data);
        HostDisjoint(op, nameof(destination), destination, name + ".Scales", weight.Scales);
        HostDisjoint(op, nameof(destination), destination, name + ".Zeros", weight.Zeros);
        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var w = stage.Weight(weight);
        var dy = stage.InOut<T>(destination);
        if (siluMul)
            GroupedLinearSiluMul(stage.In(x), stage.View(expertOffsets), w, DeviceTensor.FromView(dy));
        else
            GroupedLinear(stage.In(x), stage.View(expertOffsets), w, DeviceTensor.FromView(dy));
        runtime.Synchronize(); // bad offsets throw here, before anything is copied back
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>
    /// Host-span <see cref="MoeCombine(DeviceTensor, DeviceView{int}, DeviceView{float}, DeviceTensor, int, bool)"/>: expertOutput
    /// [tokens * topK, hidden] in permuted order, slotRows [tokens * topK], expertWeights [tokens, topK], destination [tokens,
    /// hidden] (with accumulate, added onto what it holds: e.g. the shared experts' output).
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong, or destination overlaps an input; nothing is written.</exception>
    /// <exception cref="DeviceIndexException">A slot row is outside [0, tokens * topK); nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16.</exception>
    public void MoeCombine<T>(ReadOnlySpan<T> expertOutput, ReadOnlySpan<int> slotRows, ReadOnlySpan<float> expertWeights, Span<T> destination,
        int topK, bool accumulate) where T : unmanaged
    {
        const string op = nameof(MoeCombine);
        HostDisjoint(op, nameof(destination), destination, nameof(expertOutput), expertOutput);
        HostDisjoint(op, nameof(destination), destination, nameof(slotRows), slotRows);
        HostDisjoint(op, nameof(destination), destination, nameof(expertWeights), expertWeights);
        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var dy = stage.InOut<T>(destination);
        MoeCombine(stage.In(expertOutput), stage.View(slotRows), stage.View(expertWeights), DeviceTensor.FromView(dy), topK, accumulate);
        runtime.Synchronize(); // a slot row out of range throws here, before anything is copied back
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>
    /// Host-span <see cref="MoeLayer(DeepSeekKernels.MoeLayer, DeviceTensor, MoeLayerScratch, DeviceTensor, bool)"/>: one MoE
    /// layer's routed experts over weights in host memory: x [tokens, hidden] (float32 or bfloat16), the router [Experts,
    /// hidden] and its correction bias [Experts] (or empty), the fused [gate | up] stack and the down stack (Count = Experts),
    /// into destination [tokens, hidden] (with accumulate, added onto what it holds: the shared experts' output). Each call
    /// stages every weight and allocates the chain's scratch: for a model, build a <see cref="DeepSeekKernels.MoeLayer"/> once.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="routing"/> is null.</exception>
    /// <exception cref="ArgumentException">A weight is default, the parts do not fit together (named), a length is wrong, or
    /// destination overlaps an input; nothing is written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor BFloat16, or the backend lacks an op of the chain.</exception>
    public void MoeLayer<T>(ReadOnlySpan<T> x, in HostWeightMatrix router, ReadOnlySpan<float> correctionBias, MoeRouting routing,
        in HostWeightMatrix gateUp, in HostWeightMatrix down, Span<T> destination, bool accumulate) where T : unmanaged =>
        HostMoeLayer(x, router, correctionBias, routing, gateUp, default, default, down, destination, accumulate);

    /// <summary>
    /// Host-span <see cref="MoeLayer(DeepSeekKernels.MoeLayer, DeviceTensor, MoeLayerScratch, DeviceTensor, bool)"/> with the
    /// gate and up stacks apart (as <see cref="MoeLayer{T}(ReadOnlySpan{T}, in HostWeightMatrix, ReadOnlySpan{float}, MoeRouting, in HostWeightMatrix, in HostWeightMatrix, Span{T}, bool)"/> otherwise).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="routing"/> is null.</exception>
    /// <exception cref="ArgumentException">A weight is default, the parts do not fit together (named), a length is wrong, or
    /// destination overlaps an input; nothing is written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor BFloat16, or the backend lacks an op of the chain.</exception>
    public void MoeLayer<T>(ReadOnlySpan<T> x, in HostWeightMatrix router, ReadOnlySpan<float> correctionBias, MoeRouting routing,
        in HostWeightMatrix gate, in HostWeightMatrix up, in HostWeightMatrix down, Span<T> destination, bool accumulate) where T : unmanaged
    {
        if (gate.Rows < 1 || up.Rows < 1)
            ThrowHelper.Argument(nameof(MoeLayer), gate.Rows < 1 ? nameof(gate) : nameof(up),
                $"{(gate.Rows < 1 ? nameof(gate) : nameof(up))} is a default HostWeightMatrix (make it with HostWeightMatrix.Dense, Fp8 or Int4).");
        HostMoeLayer(x, router, correctionBias, routing, default, gate, up, down, destination, accumulate);
    }

    void HostMoeLayer<T>(ReadOnlySpan<T> x, in HostWeightMatrix router, ReadOnlySpan<float> correctionBias, MoeRouting routing,
        in HostWeightMatrix gateUp, in HostWeightMatrix gate, in HostWeightMatrix up, in HostWeightMatrix down, Span<T> destination,
        bool accumulate) where T : unmanaged
    {
        const string op = nameof(MoeLayer);
        if (typeof(T) != typeof(float) && typeof(T) != typeof(BFloat16))
            ThrowHelper.NotSupported(op, $"x has element type {typeof(T).Name}; activations are float or BFloat16.");
        if (routing is null)
            ThrowHelper.ArgumentNull(op, nameof(routing));
        bool fused = gate.Rows < 1;
        if (router.Rows < 1)
            ThrowHelper.Argument(op, nameof(router), "router is a default HostWeightMatrix (make it with HostWeightMatrix.Dense, Fp8 or Int4).");
        if (down.Rows < 1)
            ThrowHelper.Argument(op, nameof(down), "down is a default HostWeightMatrix (make it with HostWeightMatrix.Dense, Fp8 or Int4).");
        if (fused && gateUp.Rows < 1)
            ThrowHelper.Argument(op, nameof(gateUp), "gateUp is a default HostWeightMatrix (make it with HostWeightMatrix.Dense, Fp8 or Int4).");
        int hidden = router.Cols;
        if (x.IsEmpty || x.Length % hidden != 0)
            ThrowHelper.Argument(op, nameof(x), $"x has {x.Length} elements; a positive multiple of hidden = router.Cols = {hidden} (tokens x hidden).");
        int tokens = x.Length / hidden;
        HostDisjoint(op, nameof(destination), destination, nameof(x), x);
        HostDisjoint(op, nameof(destination), destination, nameof(correctionBias), correctionBias);
        static void Weights(string name, in HostWeightMatrix w, Span<T> output)
        {
            HostDisjoint(op, "destination", output, name, w.Data);
            HostDisjoint(op, "destination", output, name + ".Scales", w.Scales);
            HostDisjoint(op, "destination", output, name + ".Zeros", w.Zeros);
        }
        Weights(nameof(router), router, destination);
        Weights(nameof(gateUp), gateUp, destination);
        Weights(nameof(gate), gate, destination);
        Weights(nameof(up), up, destination);
        Weights(nameof(down), down, destination);

        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var layer = new MoeLayer(stage.Weight(router), correctionBias.IsEmpty ? default : stage.View(correctionBias), routing,
            fused ? stage.Weight(gateUp) : null, fused ? null : stage.Weight(gate), fused ? null : stage.Weight(up), stage.Weight(down));
        using var scratch = MoeLayerScratch.Allocate(layer, tokens, typeof(T) == typeof(float) ? ElementType.F32 : ElementType.BF16);
        var dy = stage.InOut<T>(destination);
        MoeLayer(layer, stage.In(x), scratch, DeviceTensor.FromView(dy), accumulate);
        runtime.Synchronize();
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

    /// <summary>
    /// Host-span <see cref="KvAppend(DeviceTensor, DeviceTensor, DeviceView{int}, DeviceTensor, DeviceTensor)"/>: keys [tokens,
    /// keyWidth] (and values [tokens, valueWidth]; both empty with valuePages for an MLA latent cache) into keyPages [pages,
    /// pageSize, keyWidth] (and valuePages [pages, pageSize, valueWidth]) at slot slotMapping[t] of token t; tokens is
    /// slotMapping's length and the widths and page counts follow from the lengths. The pools are staged and copied back whole
    /// (a host-span call costs the pool's bytes twice: the device-resident form is for loops).
    /// </summary>
    /// <exception cref="ArgumentException">A length does not divide, values and valuePages are not both empty or both given, or
    /// a pool overlaps an input or the other pool; nothing is written.</exception>
    /// <exception cref="DeviceIndexException">A slot is outside the pool; nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16.</exception>
    public void KvAppend<T, TPage>(ReadOnlySpan<T> keys, ReadOnlySpan<T> values, ReadOnlySpan<int> slotMapping,
        Span<TPage> keyPages, Span<TPage> valuePages, int pageSize) where T : unmanaged where TPage : unmanaged
    {
        const string op = nameof(KvAppend);
        OpChecks.AtLeast1(op, nameof(pageSize), pageSize);
        if (slotMapping.IsEmpty)
            ThrowHelper.Argument(op, nameof(slotMapping), "slotMapping is empty: it needs one slot per token to append.");
        int tokens = slotMapping.Length;
        if (values.IsEmpty != valuePages.IsEmpty)
            ThrowHelper.Argument(op, values.IsEmpty ? nameof(values) : nameof(valuePages),
                "values and valuePages come together: pass both (keys and values) or neither (an MLA latent cache).");
        long keyWidth = Width(op, nameof(keys), keys.Length, tokens);
        long pages = OpChecks.Rows(op, nameof(keyPages), keyPages.Length, (long)pageSize * keyWidth, SizeText.Of("pageSize * keyWidth", pageSize, keyWidth));
        long valueWidth = 0;
        if (!values.IsEmpty)
        {
            valueWidth = Width(op, nameof(values), values.Length, tokens);
            OpChecks.Length(op, nameof(valuePages), valuePages.Length, pages * pageSize * valueWidth, "keyPages' pages * pageSize * valueWidth");
        }
        HostDisjoint(op, nameof(keyPages), keyPages, nameof(keys), keys);
        HostDisjoint(op, nameof(keyPages), keyPages, nameof(values), values);
        HostDisjoint(op, nameof(keyPages), keyPages, nameof(slotMapping), slotMapping);
        HostDisjoint(op, nameof(valuePages), valuePages, nameof(keys), keys);
        HostDisjoint(op, nameof(valuePages), valuePages, nameof(values), values);
        HostDisjoint(op, nameof(valuePages), valuePages, nameof(slotMapping), slotMapping);
        HostDisjoint(op, nameof(valuePages), valuePages, nameof(keyPages), keyPages);
        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var dKeyPages = stage.InOut<TPage>(keyPages);
        var dValuePages = values.IsEmpty ? default : stage.InOut<TPage>(valuePages);
        KvAppend(DeviceTensor.Of(stage.View(keys), tokens, keyWidth),
            values.IsEmpty ? default : DeviceTensor.Of(stage.View(values), tokens, valueWidth),
            stage.View(slotMapping),
            DeviceTensor.Of(dKeyPages, pages, pageSize, keyWidth),
            values.IsEmpty ? default : DeviceTensor.Of(dValuePages, pages, pageSize, valueWidth));
        runtime.Synchronize(); // a slot outside the pool throws here, before anything is copied back
        HostStage.CopyBack(dKeyPages, keyPages);
        if (!values.IsEmpty)
            HostStage.CopyBack(dValuePages, valuePages);
    }

    /// <summary>
    /// Host-span <see cref="PagedAttention(DeviceTensor, DeviceTensor, DeviceTensor, PagedBatch, DeviceTensor, int, float)"/>:
    /// q [tokens, qHeads, headDim] over keyPages [pages, pageSize, kvHeads * headDim] and valuePages [pages, pageSize,
    /// kvHeads * vHeadDim] with the step's metadata as spans (blockTable [batch, maxPages], sequenceLengths [batch],
    /// queryStarts [batch + 1]), into destination [tokens, qHeads, vHeadDim]; tokens, pages and vHeadDim follow from the
    /// lengths.
    /// </summary>
    /// <exception cref="ArgumentException">A length does not divide, or destination overlaps an input; nothing is written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, or the heads do not divide.</exception>
    /// <exception cref="DeviceIndexException">The metadata points outside the pool or the table, or is out of order; nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16, or the backend lacks the op.</exception>
    public void PagedAttention<T, TPage, TOut>(ReadOnlySpan<T> q, ReadOnlySpan<TPage> keyPages, ReadOnlySpan<TPage> valuePages,
        ReadOnlySpan<int> blockTable, ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<int> queryStarts, Span<TOut> destination,
        int qHeads, int kvHeads, int headDim, int pageSize, float scale) where T : unmanaged where TPage : unmanaged where TOut : unmanaged
    {
        const string op = nameof(PagedAttention);
        OpChecks.AtLeast1(op, nameof(qHeads), qHeads);
        OpChecks.AtLeast1(op, nameof(kvHeads), kvHeads);
        OpChecks.AtLeast1(op, nameof(headDim), headDim);
        OpChecks.AtLeast1(op, nameof(pageSize), pageSize);
        int tokens = OpChecks.Rows(op, nameof(q), q.Length, (long)qHeads * headDim, SizeText.Of("qHeads * headDim", qHeads, headDim));
        long pages = OpChecks.Rows(op, nameof(keyPages), keyPages.Length, (long)pageSize * kvHeads * headDim,
            SizeText.Of("pageSize * kvHeads * headDim", pageSize, (long)kvHeads * headDim));
        long valueRow = OpChecks.Rows(op, nameof(valuePages), valuePages.Length, pages * pageSize, "keyPages' pages * pageSize");
        if (valueRow % kvHeads != 0)
            ThrowHelper.Argument(op, nameof(valuePages), $"valuePages' rows of {valueRow} elements are not kvHeads = {kvHeads} value heads.");
        long vHeadDim = valueRow / kvHeads;
        OpChecks.LongEnough(op, nameof(destination), destination.Length, (long)tokens * qHeads * vHeadDim,
            SizeText.Of("tokens * qHeads * vHeadDim", (long)tokens * qHeads, vHeadDim));
        var (table, lengths, starts) = Metadata(op, blockTable, sequenceLengths, queryStarts);
        HostDisjoint(op, nameof(destination), destination, nameof(q), q);
        HostDisjoint(op, nameof(destination), destination, nameof(keyPages), keyPages);
        HostDisjoint(op, nameof(destination), destination, nameof(valuePages), valuePages);
        MetadataDisjoint(op, destination, blockTable, sequenceLengths, queryStarts);
        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var dy = stage.InOut<TOut>(destination);
        PagedAttention(DeviceTensor.Of(stage.View(q), tokens, qHeads, headDim),
            DeviceTensor.Of(stage.View(keyPages), pages, pageSize, (long)kvHeads * headDim),
            DeviceTensor.Of(stage.View(valuePages), pages, pageSize, valueRow),
            new PagedBatch(stage.View(table), stage.View(lengths), stage.View(starts)),
            DeviceTensor.Of(dy.Slice(0, (long)tokens * qHeads * vHeadDim), tokens, qHeads, vHeadDim), kvHeads, scale);
        runtime.Synchronize(); // bad metadata throws here, before anything is copied back
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>
    /// Host-span <see cref="PagedMlaAttention(DeviceTensor, DeviceTensor, PagedBatch, DeviceTensor, float)"/>: q [tokens,
    /// heads, latentDim + ropeDim] over latentPages [pages, pageSize, latentDim + ropeDim] with the step's metadata as spans,
    /// into destination [tokens, heads, latentDim]; tokens, pages and the dims follow from the lengths and latentDim.
    /// </summary>
    /// <exception cref="ArgumentException">A length does not divide, or destination overlaps an input; nothing is written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    /// <exception cref="DeviceIndexException">The metadata points outside the pool or the table, or is out of order; nothing is written.</exception>
    /// <exception cref="NotSupportedException">An element type is not float or BFloat16, or the backend lacks the op.</exception>
    public void PagedMlaAttention<T, TPage, TOut>(ReadOnlySpan<T> q, ReadOnlySpan<TPage> latentPages, ReadOnlySpan<int> blockTable,
        ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<int> queryStarts, Span<TOut> destination, int heads, int latentDim,
        int ropeDim, int pageSize, float scale) where T : unmanaged where TPage : unmanaged where TOut : unmanaged
    {
        const string op = nameof(PagedMlaAttention);
        OpChecks.AtLeast1(op, nameof(heads), heads);
        OpChecks.AtLeast1(op, nameof(latentDim), latentDim);
        OpChecks.NotNegative(op, nameof(ropeDim), ropeDim);
        OpChecks.AtLeast1(op, nameof(pageSize), pageSize);
        long row = (long)latentDim + ropeDim;
        int tokens = OpChecks.Rows(op, nameof(q), q.Length, heads * row, SizeText.Of("heads * (latentDim + ropeDim)", heads, row));
        long pages = OpChecks.Rows(op, nameof(latentPages), latentPages.Length, pageSize * row, SizeText.Of("pageSize * (latentDim + ropeDim)", pageSize, row));
        OpChecks.LongEnough(op, nameof(destination), destination.Length, (long)tokens * heads * latentDim,
            SizeText.Of("tokens * heads * latentDim", (long)tokens * heads, latentDim));
        var (table, lengths, starts) = Metadata(op, blockTable, sequenceLengths, queryStarts);
        HostDisjoint(op, nameof(destination), destination, nameof(q), q);
        HostDisjoint(op, nameof(destination), destination, nameof(latentPages), latentPages);
        MetadataDisjoint(op, destination, blockTable, sequenceLengths, queryStarts);
        var runtime = Runtime ?? HostStaging;
        using var stage = new HostStage(runtime);
        var dy = stage.InOut<TOut>(destination);
        PagedMlaAttention(DeviceTensor.Of(stage.View(q), tokens, heads, row),
            DeviceTensor.Of(stage.View(latentPages), pages, pageSize, row),
            new PagedBatch(stage.View(table), stage.View(lengths), stage.View(starts)),
            DeviceTensor.Of(dy.Slice(0, (long)tokens * heads * latentDim), tokens, heads, latentDim), scale);
        runtime.Synchronize(); // bad metadata throws here, before anything is copied back
        HostStage.CopyBack(dy, destination);
    }

    /// <summary>Refuses a destination that shares bytes with the step's metadata spans.</summary>
    static void MetadataDisjoint<TOut>(string op, ReadOnlySpan<TOut> destination, ReadOnlySpan<int> blockTable,
        ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<int> queryStarts) where TOut : unmanaged
    {
        HostDisjoint(op, nameof(destination), destination, nameof(blockTable), blockTable);
        HostDisjoint(op, nameof(destination), destination, nameof(sequenceLengths), sequenceLengths);
        HostDisjoint(op, nameof(destination), destination, nameof(queryStarts), queryStarts);
    }

    /// <summary>The row width of an input of <paramref name="length"/> elements holding one row per token.</summary>
    static long Width(string op, string name, long length, int tokens)
    {
        if (length == 0 || length % tokens != 0)
            ThrowHelper.Argument(op, name, $"{name} has {length} elements, not {tokens} token rows (slotMapping's length) of one width.");
        return length / tokens;
    }

    /// <summary>The metadata spans, checked for what their lengths alone tell: sequenceLengths gives the batch, queryStarts has
    /// batch + 1 entries and blockTable a whole number of rows of batch entries. Their values are checked where read.</summary>
    static (int[] Table, int[] Lengths, int[] Starts) Metadata(string op, ReadOnlySpan<int> blockTable, ReadOnlySpan<int> sequenceLengths,
        ReadOnlySpan<int> queryStarts)
    {
        if (sequenceLengths.IsEmpty)
            ThrowHelper.Argument(op, nameof(sequenceLengths), "sequenceLengths is empty: the step needs at least one sequence.");
        int batch = sequenceLengths.Length;
        OpChecks.Length(op, nameof(queryStarts), queryStarts.Length, batch + 1L, "sequenceLengths' length + 1");
        OpChecks.Rows(op, nameof(blockTable), blockTable.Length, batch, "batch (sequenceLengths' length)");
        return (blockTable.ToArray(), sequenceLengths.ToArray(), queryStarts.ToArray());
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

        /// <summary>A copy of a host weight (or stack) as a <see cref="WeightMatrix"/> of the same scheme and sizes.</summary>
        public WeightMatrix Weight(in HostWeightMatrix weight)
        {
            DeviceView<TE> Stage<TE>(ReadOnlySpan<byte> bytes) where TE : unmanaged => View(MemoryMarshal.Cast<byte, TE>(bytes));
            int rows = weight.Rows, cols = weight.Cols, count = weight.Count;
            return weight.Scheme switch
            {
                WeightScheme.Fp8Block => WeightMatrix.Fp8(Stage<Float8E4M3>(weight.Data), Stage<float>(weight.Scales), rows, cols,
                    weight.BlockRows, weight.BlockCols, count),
                WeightScheme.Int4Group => WeightMatrix.Int4(Stage<Int4x2>(weight.Data), Stage<BFloat16>(weight.Scales),
                    Stage<BFloat16>(weight.Zeros), rows, cols, weight.GroupSize, count),
                _ when weight.ElementType == ElementType.F32 => WeightMatrix.Dense(Stage<float>(weight.Data), rows, cols, count),
                _ => WeightMatrix.Dense(Stage<BFloat16>(weight.Data), rows, cols, count),
            };
        }

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
