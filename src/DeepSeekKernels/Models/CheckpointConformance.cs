using System.Globalization;
using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Models;

/// <summary>
/// Checks that a checkpoint holds what its config.json says, from the safetensors headers alone (no tensor
/// data is read, no device memory allocated): every tensor the loader (<see cref="ModelLoader"/>) will read,
/// in the order it reads them, with the shape config.json implies and a dtype it can load. A contradiction
/// throws the <see cref="CheckpointException"/> loading would throw, with the same message, before anything
/// is allocated. On success it says which tensors the runner will not read.
/// </summary>
public static class CheckpointConformance
{
    /// <summary>
    /// Walks the tensors the loader reads for <paramref name="checkpoint"/>'s architecture, layer by layer,
    /// and throws at the first one that is missing or contradicts config.json:
    /// matrices [out, in] in BF16, F16, F32 or F8_E4M3 (FP8 needs <c>quantization_config</c> and a float
    /// <c>weight_scale_inv</c> of [ceil(out / block rows), ceil(in / block cols)]), or GPTQ/AWQ INT4 layers
    /// (qweight, qzeros, scales and optional g_idx, <see cref="Int4CheckpointWeights"/>); norm weights and biases as
    /// vectors of a float dtype; routed experts one by one, sharing one dtype; MLA's kv_b_proj (dequantised on
    /// the host, so any float dtype); lm_head unless tie_word_embeddings; q/k/v biases for Qwen2 (and Llama with
    /// attention_bias). A config that claims more layers than the files hold fails at the first missing
    /// tensor, however many it claims.
    /// </summary>
    /// <returns>The count of tensors the loader reads and the tensors it will not read.</returns>
    /// <exception cref="CheckpointException">The first contradiction, in the loader's words: "&lt;folder&gt;: tensor 'name' has
    /// shape [a, b] but config.json implies [c, d]", "tensor 'name' is not in checkpoint &lt;folder&gt;", or a dtype error.</exception>
    public static CheckpointConformanceReport Check(Checkpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var walk = new Walk(checkpoint, ModelShapes.From(checkpoint.Config));
        walk.Model();
        return Report(checkpoint, walk.Read);
    }

    /// <summary>The tensors of <paramref name="checkpoint"/> that are not in <paramref name="read"/>, MTP layers apart.</summary>
    static CheckpointConformanceReport Report(Checkpoint checkpoint, HashSet<string> read)
    {
        var config = checkpoint.Config;
        long layers = config.NumHiddenLayers, mtpEnd = layers + config.NumNextnPredictLayers;
        var mtp = new List<string>();
        var unread = new List<string>();
        var beyond = new SortedSet<int>();
        foreach (var tensor in checkpoint.Tensors)
        {
            if (read.Contains(tensor.Name))
                continue;
            if (LayerOf(tensor.Name) is int layer && layer >= layers)
            {
                if (layer < mtpEnd)
                {
                    mtp.Add(tensor.Name);
                    continue;
                }
                beyond.Add(layer);
            }
            unread.Add(tensor.Name);
        }
        return new CheckpointConformanceReport(read.Count, mtp, unread, [.. beyond]);
    }

    /// <summary>i for a name "model.layers.{i}.…", else null.</summary>
    static int? LayerOf(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal))
            return null;
        int dot = name.IndexOf('.', prefix.Length);
        return dot > prefix.Length && int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int layer)
            ? layer
            : null;
    }

    /// <summary>
    /// The loader's reads without the reading: ModelLoader.Load and WeightLoader, call for call (same names,
    /// same order, same checks and errors), recording each tensor it looks at.
    /// </summary>
    sealed class Walk(Checkpoint checkpoint, ModelShape s)
    {
        public HashSet<string> Read { get; } = new(StringComparer.Ordinal);

        public void Model()
        {
            foreach (var entry in CheckpointLayout.Of(s))
            {
                switch (entry.Kind)
                {
                    case LayoutKind.Matrices:
                        Stack(entry.Names.Count, i => entry.Names[i], entry.Rows, entry.Cols);
                        break;
                    case LayoutKind.Vector:
                        Vector(entry.Names[0], entry.Rows);
                        break;
                    case LayoutKind.HostMatrix:
                        HostMatrix(entry.Names[0], entry.Rows, entry.Cols);
                        break;
                }
            }
        }

        // What WeightLoader checks, in its order.

        TensorInfo Expect(string name, params long[] shape)
        {
            var tensor = checkpoint.ExpectShape(name, shape);
            Read.Add(name);
            return tensor;
        }

        /// <summary>
        /// WeightLoader.Stack: a GPTQ/AWQ stack's INT4 layers one by one (<see cref="Int4CheckpointWeights.Expect"/>); else every
        /// matrix's shape and the shared dtype first, then the dtype, then FP8 scales one by one.
        /// </summary>
        void Stack(int count, Func<int, string> prefixOf, int rows, int cols)
        {
            string? int4 = null;
            for (int i = 0; i < count && int4 is null; i++)
                if (Int4CheckpointWeights.IsStored(checkpoint, prefixOf(i)))
                    int4 = prefixOf(i);
            if (int4 != null)
            {
                for (int i = 0; i < count; i++)
                {
                    if (!Int4CheckpointWeights.IsStored(checkpoint, prefixOf(i)))
                        throw Int4CheckpointWeights.MixedStack(checkpoint, int4, prefixOf(i));
                    Int4CheckpointWeights.Expect(checkpoint, s, prefixOf(i), rows, cols, Expect);
                }
                return;
            }
            TensorInfo? first = null;
            for (int i = 0; i < count; i++)
            {
                var tensor = Expect(prefixOf(i) + ".weight", rows, cols);
                first ??= tensor;
                if (tensor.DType != first.DType)
                    throw WeightLoader.MixedStack(checkpoint, tensor, first);
            }
            if (first is null)
                return;
            switch (first.DType)
            {
                case SafetensorsDType.BF16:
                case SafetensorsDType.F32:
                case SafetensorsDType.F16:
                    return;
                case SafetensorsDType.F8_E4M3:
                    var (blockRows, blockCols) = s.Fp8Block ?? throw WeightLoader.Fp8WithoutQuantizationConfig(checkpoint, first.Name);
                    int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
                    for (int i = 0; i < count; i++)
                        Float(Expect(prefixOf(i) + ".weight_scale_inv", scaleRows, scaleCols));
                    return;
                default:
                    throw WeightLoader.NotAWeightDType(checkpoint, first);
            }
        }

        /// <summary>WeightLoader.Vector: the shape, then a dtype it reads as float32.</summary>
        void Vector(string name, int length) => Float(Expect(name, length));

        /// <summary>WeightLoader.HostMatrix: any float dtype; F8_E4M3 with its scales.</summary>
        void HostMatrix(string prefix, int rows, int cols)
        {
            if (Int4CheckpointWeights.IsStored(checkpoint, prefix))
            {
                Int4CheckpointWeights.Expect(checkpoint, s, prefix, rows, cols, Expect);
                return;
            }
            string name = prefix + ".weight";
            var tensor = Expect(name, rows, cols);
            if (tensor.DType != SafetensorsDType.F8_E4M3)
            {
                Float(tensor);
                return;
            }
            var (blockRows, blockCols) = s.Fp8Block ?? throw WeightLoader.Fp8WithoutQuantizationConfig(checkpoint, name);
            int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
            Float(Expect(prefix + ".weight_scale_inv", scaleRows, scaleCols));
        }

        static void Float(TensorInfo tensor)
        {
            if (!SafetensorsFile.ReadsAsFloat32(tensor.DType))
                throw SafetensorsFile.NotReadableAsFloat32(tensor);
        }
    }
}

/// <summary>
/// What <see cref="CheckpointConformance.Check"/> found besides contradictions: how many tensors the loader
/// reads, and the tensors it will not read (names in the checkpoint's order).
/// </summary>
/// <param name="TensorsRead">Tensors the loader reads (each one checked).</param>
/// <param name="MtpTensors">Tensors of DeepSeek's multi-token-prediction layers (num_hidden_layers up to
/// num_hidden_layers + num_nextn_predict_layers - 1): expected in a DeepSeek-V3 checkpoint, not used by the runner.</param>
/// <param name="UnreadTensors">Every other tensor the loader will not read: layers beyond num_hidden_layers (and
/// its MTP layers), lm_head.weight when tie_word_embeddings is set, FP8 scales of weights that are not FP8,
/// biases the architecture has no use for, rotary_emb.inv_freq buffers.</param>
/// <param name="LayersBeyondConfig">The layer indices at or beyond num_hidden_layers that <paramref name="UnreadTensors"/>
/// holds tensors of, ascending: layers the files have and config.json does not claim.</param>
public sealed record CheckpointConformanceReport(
    int TensorsRead,
    IReadOnlyList<string> MtpTensors,
    IReadOnlyList<string> UnreadTensors,
    IReadOnlyList<int> LayersBeyondConfig);
