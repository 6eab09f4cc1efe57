using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Models;
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
