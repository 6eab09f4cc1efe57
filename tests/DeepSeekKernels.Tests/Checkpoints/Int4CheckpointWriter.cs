using System.Text.Json.Nodes;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>The packings <see cref="Int4CheckpointWriter"/> writes, as GPTQ and AutoAWQ name them.</summary>
public enum Int4Packing
{
    /// <summary>quant_method "gptq", checkpoint_format "gptq": qweight [K / 8, N], qzeros hold zero - 1.</summary>
    Gptq,

    /// <summary>quant_method "gptq", checkpoint_format "gptq_v2": qzeros hold the zero itself.</summary>
    GptqV2,

    /// <summary>quant_method "awq", version "gemm": qweight [K, N / 8] in AWQ's interleaved nibble order.</summary>
    Awq,
}

/// <summary>
/// Writes a GPTQ or AWQ copy of a bf16 fixture, as a quantisation tool would lay it out, written here from the formats'
/// definitions (not through <see cref="DeepSeekKernels.Quantization.Int4Layout"/>, which the loader uses), and the dense
/// twin that holds each quantised layer's dequantised values as the loader defines them.
/// </summary>
/// <remarks>
/// Quantised: every rank-2 float <c>*.weight</c> but the embeddings, lm_head (which GPTQ and AWQ leave dense) and the MoE
/// router, whose out features are a multiple of 8 and in features a multiple of the group (and the group of 32). Round to
/// nearest per group over the group's range widened to hold 0, as GPTQ's quantiser does without its error feedback:
/// scale = float16((max - min) / 15), zero = round(-min / scale) (1..15 for "gptq", whose qzeros store zero - 1),
/// q = clamp(round(w / scale) + zero, 0, 15). The loader's value for a code is bf16((q - zero) * bf16(scale)).
/// </remarks>
public static class Int4CheckpointWriter
{
    static readonly int[] AwqOrder = [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>The group of a layer with <paramref name="cols"/> in features (-1: one group per row).</summary>
    static int GroupOf(int groupSize, int cols) => groupSize == -1 ? cols : groupSize;

    /// <summary>Whether the writer quantises <paramref name="t"/>.</summary>
    public static bool Quantizable(TensorToWrite t, int groupSize)
    {
        if (t.Shape.Length != 2 || !t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.DType is not ("BF16" or "F16" or "F32")
            || t.Name is "model.embed_tokens.weight" or "lm_head.weight" || t.Name.EndsWith(".mlp.gate.weight", StringComparison.Ordinal))
            return false;
        int rows = (int)t.Shape[0], cols = (int)t.Shape[1], group = GroupOf(groupSize, cols);
        return rows % 8 == 0 && group % 32 == 0 && cols % group == 0;
    }

    /// <summary>One layer's codes [N, K], float16 scales and integer zeros [N, K / g].</summary>
    public static (byte[] Codes, Half[] Scales, int[] Zeros) Quantize(float[] w, int rows, int cols, int group, Int4Packing packing)
    {
        int groups = cols / group;
        var codes = new byte[rows * cols];
        var scales = new Half[rows * groups];
        var zeros = new int[rows * groups];
        for (int n = 0; n < rows; n++)
            for (int g = 0; g < groups; g++)
            {
                float min = 0, max = 0;
                for (int k = g * group; k < (g + 1) * group; k++)
                {
                    min = Math.Min(min, w[n * cols + k]);
                    max = Math.Max(max, w[n * cols + k]);
                }
                var scale = (Half)((max - min) / 15);
                if (scale == Half.Zero)
                    scale = (Half)1f;
                float s = (float)scale;
                int zero = Math.Clamp((int)MathF.Round(-min / s), packing == Int4Packing.Gptq ? 1 : 0, 15);
                scales[n * groups + g] = scale;
                zeros[n * groups + g] = zero;
                for (int k = g * group; k < (g + 1) * group; k++)
                    codes[n * cols + k] = (byte)Math.Clamp((int)MathF.Round(w[n * cols + k] / s) + zero, 0, 15);
            }
        return (codes, scales, zeros);
    }

    /// <summary>
    /// <paramref name="source"/> as a GPTQ or AWQ checkpoint in <paramref name="target"/> (an existing, empty folder): each
    /// quantisable weight replaced by qweight, qzeros, scales (F16) and, for GPTQ, g_idx; config.json given the
    /// quantization_config. <paramref name="editLayer"/> may change a layer's tensors before they are written;
    /// <paramref name="keepDense"/> leaves weights unquantised; <paramref name="float16"/> writes the other float tensors in F16.
    /// </summary>
    public static string WriteQuantized(string source, string target, Int4Packing packing, int groupSize,
        Func<string, List<TensorToWrite>, List<TensorToWrite>>? editLayer = null, Func<TensorToWrite, bool>? keepDense = null, bool float16 = false) =>
        CheckpointCopy.WriteMany(source, target, t =>
        {
            if (!Quantizable(t, groupSize) || keepDense?.Invoke(t) == true)
                return [float16 ? ToFloat16(t) : t];
            string prefix = t.Name[..^".weight".Length];
            var layer = Pack(prefix, t, packing, groupSize);
            return editLayer is null ? layer : editLayer(prefix, layer);
        }, config => config["quantization_config"] = Config(packing, groupSize));

    /// <summary>The quantization_config a tool writes for the packing.</summary>
    public static JsonObject Config(Int4Packing packing, int groupSize) => packing == Int4Packing.Awq
        ? new JsonObject { ["quant_method"] = "awq", ["bits"] = 4, ["group_size"] = groupSize, ["version"] = "gemm", ["zero_point"] = true }
        : new JsonObject
        {
            ["quant_method"] = "gptq", ["bits"] = 4, ["group_size"] = groupSize, ["desc_act"] = false, ["sym"] = false,
            ["checkpoint_format"] = packing == Int4Packing.Gptq ? "gptq" : "gptq_v2",
        };

    /// <summary>
    /// <paramref name="source"/> with each layer <see cref="WriteQuantized"/> quantises replaced by its dequantised values, F32:
    /// the model the INT4 checkpoint stands for.
    /// </summary>
    public static string WriteDequantized(string source, string target, int groupSize, Int4Packing packing, Func<TensorToWrite, bool>? keepDense = null,
        bool float16 = false) =>
        CheckpointCopy.Write(source, target, t =>
        {
            if (!Quantizable(t, groupSize) || keepDense?.Invoke(t) == true)
                return float16 ? ToFloat16(t) : t;
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1], group = GroupOf(groupSize, cols), groups = cols / group;
            var (codes, scales, zeros) = Quantize(t.ToFloats(), rows, cols, group, packing);
            var bytes = new byte[rows * cols * 4];
            for (int n = 0; n < rows; n++)
                for (int k = 0; k < cols; k++)
                {
                    int at = n * groups + k / group;
                    float scale = BFloat16.FromSingle((float)scales[at]).ToSingle();
                    float value = BFloat16.FromSingle((codes[n * cols + k] - zeros[at]) * scale).ToSingle();
                    BitConverter.TryWriteBytes(bytes.AsSpan((n * cols + k) * 4), value);
                }
            return new TensorToWrite(t.Name, "F32", t.Shape, bytes);
        });

    /// <summary>One layer's tensors in the packing, from the format's definition.</summary>
    static List<TensorToWrite> Pack(string prefix, TensorToWrite t, Int4Packing packing, int groupSize)
    {
        int rows = (int)t.Shape[0], cols = (int)t.Shape[1], group = GroupOf(groupSize, cols), groups = cols / group;
        var (codes, scales, zeros) = Quantize(t.ToFloats(), rows, cols, group, packing);
        int[] qweight;
        long[] qweightShape;
        if (packing == Int4Packing.Awq)
        {
            // qweight[k, c]: nibble i holds column n = 8c + order[i]
            qweight = new int[cols * (rows / 8)];
            qweightShape = [cols, rows / 8];
            for (int k = 0; k < cols; k++)
                for (int c = 0; c < rows / 8; c++)
                    for (int i = 0; i < 8; i++)
                        qweight[k * (rows / 8) + c] |= codes[(8 * c + AwqOrder[i]) * cols + k] << (4 * i);
        }
        else
        {
            // qweight[i, n]: nibble j holds in feature k = 8i + j
            qweight = new int[cols / 8 * rows];
            qweightShape = [cols / 8, rows];
            for (int i = 0; i < cols / 8; i++)
                for (int n = 0; n < rows; n++)
                    for (int j = 0; j < 8; j++)
                        qweight[i * rows + n] |= codes[n * cols + 8 * i + j] << (4 * j);
        }
        // qzeros[g, c]: 8 out features per int32, AWQ's order for AWQ; "gptq" stores zero - 1
        var qzeros = new int[groups * (rows / 8)];
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < rows / 8; c++)
                for (int i = 0; i < 8; i++)
                {
                    int n = 8 * c + (packing == Int4Packing.Awq ? AwqOrder[i] : i);
                    int stored = zeros[n * groups + g] - (packing == Int4Packing.Gptq ? 1 : 0);
                    qzeros[g * (rows / 8) + c] |= stored << (4 * i);
                }
        var scaleBytes = new byte[groups * rows * 2];
        for (int g = 0; g < groups; g++)
            for (int n = 0; n < rows; n++)
                BitConverter.TryWriteBytes(scaleBytes.AsSpan((g * rows + n) * 2), scales[n * groups + g]);
        var layer = new List<TensorToWrite>
        {
            new(prefix + ".qweight", "I32", qweightShape, Int32Bytes(qweight)),
            new(prefix + ".qzeros", "I32", [groups, rows / 8], Int32Bytes(qzeros)),
            new(prefix + ".scales", "F16", [groups, rows], scaleBytes),
        };
        if (packing != Int4Packing.Awq)
            layer.Add(new(prefix + ".g_idx", "I32", [cols], Int32Bytes([.. Enumerable.Range(0, cols).Select(k => k / group)])));
        return layer;
    }

    /// <summary>A float tensor in F16, as AWQ and GPTQ checkpoints store what they do not quantise (other tensors as they are).</summary>
    static TensorToWrite ToFloat16(TensorToWrite t)
    {
        if (t.DType is not ("BF16" or "F32"))
            return t;
        var values = t.ToFloats();
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (Half)values[i]);
        return t with { DType = "F16", Data = bytes };
    }

    public static byte[] Int32Bytes(int[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
