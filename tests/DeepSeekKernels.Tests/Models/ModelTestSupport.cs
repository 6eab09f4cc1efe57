using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Models;

/// <summary>Loads fixture models on the reference backend (ILGPU's CPU accelerator) and reads their golden files.</summary>
internal static class ModelTestSupport
{
    public static CausalLanguageModel Load(string folder, int chunkTokens = ModelLoader.DefaultChunkTokens, int? contextLength = null,
        WeightQuantization quantization = WeightQuantization.None) =>
        ModelLoader.Load(folder, Ops.Create(TestDevices.Cpu, Backend.Reference), chunkTokens, contextLength: contextLength, quantization: quantization);

    /// <summary>The logits of every position of <paramref name="ids"/> run as one prompt, [ids, vocab] (NaN where none was written).</summary>
    public static float[] AllLogits(CausalLanguageModel model, int[] ids)
    {
        using var cache = model.CreateCache(ids.Length);
        var logits = new float[ids.Length * model.Shape.Vocab];
        Array.Fill(logits, float.NaN);
        model.Forward(ids, cache, logits, allPositions: true);
        return logits;
    }

    /// <summary>input_ids, logits [prompt, vocab] and greedy_ids from a folder's golden.safetensors.</summary>
    public static (int[] InputIds, float[] Logits, int[] GreedyIds) Golden(string folder)
    {
        using var file = SafetensorsFile.Open(Path.Combine(folder, "golden.safetensors"));
        var ids = file.ReadAsInt64("input_ids").Select(v => checked((int)v)).ToArray();
        var logits = file.ReadAsFloat32("logits");
        var greedy = file.Tensors.ContainsKey("greedy_ids") ? file.ReadAsInt64("greedy_ids").Select(v => checked((int)v)).ToArray() : [];
        return (ids, logits, greedy);
    }

    /// <summary>||a - b|| / ||b|| over one row.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(diff / norm);
    }

    /// <summary>
    /// The prompt's logits at every position [tokens, vocab] with the given activation and KV-cache types, on the reference
    /// arithmetic (a permissive <see cref="ShadowBackend"/>), and the experts each MoE layer chose for each position:
    /// one [tokens, topK] array per MoE layer, in layer order (none for a dense model).
    /// </summary>
    public static (float[] Logits, List<int[]> Routes) LogitsAndRoutes(string folder, int[] ids, ElementType activations,
        ElementType kvCache, int chunkTokens = ModelLoader.DefaultChunkTokens)
    {
        var calls = new List<int[]>();
        var shadow = new ShadowBackend(Backend.Reference, _ => null) { OnRoute = calls.Add };
        using var model = ModelLoader.Load(folder, Ops.Over(TestDevices.Cpu, shadow), chunkTokens, activations: activations);
        Assert.Equal(activations, model.Activations);
        using var cache = model.CreateCache(ids.Length, kvCache);
        var logits = new float[ids.Length * model.Shape.Vocab];
        model.Forward(ids, cache, logits, allPositions: true);

        // A forward pass runs the prompt chunk by chunk, every layer per chunk: call i routes chunk i / M in MoE layer i % M.
        int moeLayers = Enumerable.Range(0, model.Shape.Layers).Count(model.Shape.IsMoeLayer);
        var routes = new List<int[]>();
        if (moeLayers == 0)
        {
            Assert.Empty(calls);
            return (logits, routes);
        }
        Assert.Equal(0, calls.Count % moeLayers);
        for (int layer = 0; layer < moeLayers; layer++)
            routes.Add([.. calls.Where((_, i) => i % moeLayers == layer).SelectMany(c => c)]);
        Assert.All(routes, r => Assert.Equal(0, r.Length % ids.Length));
        return (logits, routes);
    }

    /// <summary>The positions whose experts (as a set) differ in any MoE layer between two runs' <see cref="LogitsAndRoutes"/>.</summary>
    public static SortedSet<int> RoutingFlips(List<int[]> a, List<int[]> b, int tokens)
    {
        Assert.Equal(a.Count, b.Count);
        var flips = new SortedSet<int>();
        for (int layer = 0; layer < a.Count; layer++)
        {
            Assert.Equal(a[layer].Length, b[layer].Length);
            int topK = a[layer].Length / tokens;
            for (int p = 0; p < tokens; p++)
                if (!a[layer].AsSpan(p * topK, topK).ToArray().Order().SequenceEqual(b[layer].AsSpan(p * topK, topK).ToArray().Order()))
                    flips.Add(p);
        }
        return flips;
    }

    /// <summary>Greedy continuation by the model alone (argmax of each step's logits), n tokens.</summary>
    public static int[] Greedy(CausalLanguageModel model, int[] prompt, int n)
    {
        using var cache = model.CreateCache(prompt.Length + n);
        var logits = new float[model.Shape.Vocab];
        var result = new int[n];
        model.Forward(prompt, cache, logits);
        for (int i = 0; i < n; i++)
        {
            result[i] = DeepSeekKernels.Generation.Sampler.ArgMax(logits);
            if (i < n - 1)
                model.Forward([result[i]], cache, logits);
        }
        return result;
    }
}
