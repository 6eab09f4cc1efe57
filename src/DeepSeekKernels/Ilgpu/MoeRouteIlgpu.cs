using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// MoeRoute as one ILGPU launch, one warp per token (the algorithm of the hand-CUDA <c>kernels/moe_route.cu</c>, so the ids
/// agree bit for bit): the warp's scores, choices, picked marks and group scores live in dynamic shared memory, lane l owning
/// experts l, l + W, ... Scores: softmax (warp max, exp(x - max), warp sum, divide) or sigmoid 1 / (1 + exp(-x)); choice =
/// score + bias. Grouped methods: lanes over groups score each group (the maximum, or the sum of its two largest members as a
/// multiset), top_k_groups rounds of a warp argmax keep groups, every other expert's choice becomes +0. Then top_k rounds of a
/// warp argmax over the experts not picked yet (a mark, never a -inf: -inf and NaN are legal values). The order is
/// <see cref="Reference.MoeReference"/>'s: a beats b iff greater(a, b) or (not greater(b, a) and a's index is lower), with
/// greater(x, y) = isNaN(x) ? !isNaN(y) : x &gt; y. Weights = scores[id] (unbiased), divided by (their sum in k order +
/// 1e-20) when NormalizeTopK, times RoutedScalingFactor.
/// </summary>
internal sealed class MoeRouteIlgpu(DeviceRuntime runtime)
{
    /// <summary>Warps (tokens) per group, at most.</summary>
    const int Warps = 4;

    /// <summary>Dynamic shared memory a group may take.</summary>
    const int SharedBytes = 48 * 1024;

    /// <summary>Shape of one launch.</summary>
    internal struct Shape
    {
        public int Tokens, Experts, TopK, Groups, TopKGroups, PerGroup;

        /// <summary>0 greedy, 1 group max (GroupLimitedGreedy), 2 group top-two sum (NoAuxTc).</summary>
        public int Method;
        public int Sigmoid, HasBias, Normalize;
        public float Scaling;
    }

    readonly ConcurrentDictionary<Type, Delegate> _kernels = new();
    readonly Lazy<MemoryBuffer1D<float, Stride1D.Dense>> _noBias = new(() => runtime.Accelerator.Allocate1D<float>(1));

    public void Run(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights, int tokens, MoeRouting r)
    {
        bool grouped = r.Method != MoeTopKMethod.Greedy;
        var s = new Shape
        {
            Tokens = tokens, Experts = r.Experts, TopK = r.TopK, Groups = grouped ? r.Groups : 1, TopKGroups = grouped ? r.TopKGroups : 1,
            PerGroup = grouped ? r.Experts / r.Groups : r.Experts,
            Method = r.Method switch { MoeTopKMethod.GroupLimitedGreedy => 1, MoeTopKMethod.NoAuxTc => 2, _ => 0 },
            Sigmoid = r.Scoring == MoeScoring.Sigmoid ? 1 : 0, HasBias = bias.IsNull ? 0 : 1, Normalize = r.NormalizeTopK ? 1 : 0,
            Scaling = (float)r.RoutedScalingFactor,
        };
        if (logits.ElementType == ElementType.BF16)
            Launch<BFloat16>(logits, bias, ids, weights, s);
        else
            Launch<float>(logits, bias, ids, weights, s);
    }

    /// <summary>Floats of one warp's shared scratch: scores, choices and picked marks of every expert, then the group scores and kept marks.</summary>
    internal static int WarpFloats(Shape s) => 3 * s.Experts + 2 * s.Groups;

    void Launch<TL>(DeviceTensor logits, DeviceView<float> bias, DeviceView<int> ids, DeviceView<float> weights, Shape s) where TL : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var kernel = (Action<AcceleratorStream, KernelConfig, ArrayView<TL>, ArrayView<float>, ArrayView<int>, ArrayView<float>, Shape>)
            _kernels.GetOrAdd(typeof(TL), _ => Load<TL>());
        int warpBytes = WarpFloats(s) * sizeof(float);
        int warps = Math.Min(Math.Min(Warps, accelerator.MaxNumThreadsPerGroup / accelerator.WarpSize), SharedBytes / warpBytes);
        if (warps < 1)
            throw new NotSupportedException($"MoeRoute: {s.Experts} experts need {warpBytes} bytes of shared memory per token; the ILGPU kernel has {SharedBytes}.");
        warps = Math.Min(warps, s.Tokens);
        var config = new KernelConfig(new Index1D((s.Tokens + warps - 1) / warps), new Index1D(warps * accelerator.WarpSize),
            SharedMemoryConfig.RequestDynamic<float>(warps * WarpFloats(s)));
        kernel(runtime.Stream, config, LinearIlgpu.ViewOf<TL>(logits), bias.IsNull ? _noBias.Value.View : bias.IlgpuView, ids.IlgpuView,
            weights.IlgpuView, s);
    }

    Delegate Load<TL>() where TL : unmanaged
    {
        var method = typeof(MoeRouteIlgpu).GetMethod(nameof(Kernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TL), ElementCodecs.CodecFor(typeof(TL)));
        var type = typeof(Action<ArrayView<TL>, ArrayView<float>, ArrayView<int>, ArrayView<float>, Shape>);
        return runtime.Accelerator.LoadKernel((Action<ArrayView<TL>, ArrayView<float>, ArrayView<int>, ArrayView<float>, Shape>)method.CreateDelegate(type));
    }

    // warp w of group g: token g * warps + w; logits [tokens, experts], ids and weights [tokens, topK]
    static void Kernel<TL, TLC>(ArrayView<TL> logits, ArrayView<float> bias, ArrayView<int> ids, ArrayView<float> weights, Shape s)
        where TL : unmanaged where TLC : struct, IElementCodec<TL>
    {
        TLC lc = default;
        int width = Warp.WarpSize, lane = Warp.LaneIdx;
        long t = (long)Grid.IdxX * (Group.DimX / width) + Warp.WarpIdx;
        if (t >= s.Tokens)
            return;
        int experts = s.Experts;
        var shared = SharedMemory.GetDynamic<float>().SubView((long)Warp.WarpIdx * WarpFloats(s), WarpFloats(s));
        var scores = shared.SubView(0, experts);
        var choice = shared.SubView(experts, experts);
        var picked = shared.SubView(2L * experts, experts);       // 0, or its rank k + 1 once picked
        var groupScores = shared.SubView(3L * experts, s.Groups);
        var kept = shared.SubView(3L * experts + s.Groups, s.Groups); // 0, or 1 once kept
        long row = t * experts;

        // scores: lane-owned experts
        float max = float.NegativeInfinity;
        if (s.Sigmoid == 0)
        {
            for (int e = lane; e < experts; e += width)
                max = MaxNaN(max, lc.Load(logits[row + e]));
            max = WarpMaxNaN(max);
        }
        float sum = 0f;
        for (int e = lane; e < experts; e += width)
        {
            float x = lc.Load(logits[row + e]);
            float score = s.Sigmoid != 0 ? 1f / (1f + XMath.Exp(-x)) : XMath.Exp(x - max);
            scores[e] = score;
            sum += score;
        }
        if (s.Sigmoid == 0)
        {
            sum = WarpReduce.Sum(sum);
            for (int e = lane; e < experts; e += width)
                scores[e] = scores[e] / sum;
        }
        for (int e = lane; e < experts; e += width)
        {
            choice[e] = s.HasBias != 0 ? scores[e] + bias[e] : scores[e];
            picked[e] = 0f;
        }

        if (s.Method != 0)
        {
            Warp.Barrier(); // group scores read other lanes' choices
            for (int g = lane; g < s.Groups; g += width)
            {
                int first = g * s.PerGroup;
                // the best member, then (NoAuxTc) the best of the others: the two largest as a multiset
                int b0 = first;
                for (int e = first + 1; e < first + s.PerGroup; e++)
                    if (Beats(choice[e], e, choice[b0], b0))
                        b0 = e;
                float score = choice[b0];
                if (s.Method == 2)
                {
                    int b1 = -1;
                    for (int e = first; e < first + s.PerGroup; e++)
                        if (e != b0 && (b1 < 0 || Beats(choice[e], e, choice[b1], b1)))
                            b1 = e;
                    score = choice[b0] + choice[b1];
                }
                groupScores[g] = score;
                kept[g] = 0f;
            }
            for (int k = 0; k < s.TopKGroups; k++)
            {
                float best = 0f;
                int bestIndex = int.MaxValue;
                for (int g = lane; g < s.Groups; g += width)
                    if (kept[g] == 0f && (bestIndex == int.MaxValue || Beats(groupScores[g], g, best, bestIndex)))
                    {
                        best = groupScores[g];
                        bestIndex = g;
                    }
                bestIndex = WarpArgMax(best, bestIndex);
                if (bestIndex % width == lane)
                    kept[bestIndex] = 1f;
            }
            Warp.Barrier(); // kept marks are read by the lanes that own the experts
            for (int e = lane; e < experts; e += width)
                if (kept[e / s.PerGroup] == 0f)
                    choice[e] = 0f; // masked_fill(~mask, 0.0)
        }

        // top_k rounds over the experts not picked yet; the owner of a pick marks it with its rank k + 1
        long outRow = t * s.TopK;
        float total = 0f;
        for (int k = 0; k < s.TopK; k++)
        {
            float best = 0f;
            int bestIndex = int.MaxValue;
            for (int e = lane; e < experts; e += width)
                if (picked[e] == 0f && (bestIndex == int.MaxValue || Beats(choice[e], e, best, bestIndex)))
                {
                    best = choice[e];
                    bestIndex = e;
                }
            bestIndex = WarpArgMax(best, bestIndex);
            float mine = 0f;
            if (bestIndex % width == lane)
            {
                picked[bestIndex] = k + 1;
                mine = scores[bestIndex];
            }
            total += Warp.Shuffle(mine, bestIndex % width); // every lane: the weights' sum in k order
        }
        float divisor = total + 1e-20f;
        for (int e = lane; e < experts; e += width)
        {
            int k = (int)picked[e] - 1;
            if (k < 0)
                continue;
            float w = scores[e];
            if (s.Normalize != 0)
                w /= divisor;
            ids[outRow + k] = e;
            weights[outRow + k] = w * s.Scaling;
        }
    }

    /// <summary>greater(x, y) = isNaN(x) ? !isNaN(y) : x &gt; y (NaN above every number, as torch.topk).</summary>
    static bool Greater(float x, float y) => float.IsNaN(x) ? !float.IsNaN(y) : x > y;

    /// <summary>(a, ia) comes before (b, ib): greater, or neither greater and the lower index.</summary>
    static bool Beats(float a, int ia, float b, int ib) => Greater(a, b) || (!Greater(b, a) && ia < ib);

    /// <summary>The maximum, NaN if either is NaN.</summary>
    static float MaxNaN(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : a > b ? a : b;

    static float WarpMaxNaN(float value)
    {
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            value = MaxNaN(value, Warp.ShuffleXor(value, mask));
        return value;
    }

    /// <summary>The index of the warp's best (value, index) by <see cref="Beats"/>; index int.MaxValue: no candidate in that lane.</summary>
    static int WarpArgMax(float value, int index)
    {
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
        {
            float v = Warp.ShuffleXor(value, mask);
            int i = Warp.ShuffleXor(index, mask);
            if (i != int.MaxValue && (index == int.MaxValue || Beats(v, i, value, index)))
            {
                value = v;
                index = i;
            }
        }
        return index;
    }
}
