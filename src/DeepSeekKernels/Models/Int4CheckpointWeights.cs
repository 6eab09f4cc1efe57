using System.Runtime.InteropServices;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;

namespace DeepSeekKernels.Models;

/// <summary>
/// A GPTQ or AWQ checkpoint's INT4 linear layer, <c>{prefix}.qweight</c>, <c>.qzeros</c>, <c>.scales</c> (and GPTQ's
/// optional <c>.g_idx</c>) in place of <c>{prefix}.weight</c>: which tensors, their shapes and dtypes (checked from the
/// headers, for <see cref="WeightLoader"/> and <see cref="CheckpointConformance"/> alike, with the same errors), and their
/// conversion to <see cref="WeightMatrix.Int4"/>'s packing (<see cref="Int4Layout"/>).
/// </summary>
/// <remarks>
/// For a matrix of N out features and K in features with groups of g (<see cref="Int4CheckpointScheme.GroupOf"/>): GPTQ
/// qweight int32 [K / 8, N], AWQ qweight int32 [K, N / 8]; both qzeros int32 [K / g, N / 8] and scales float16 (any float
/// dtype is read) [K / g, N]; g_idx int32 [K], which must map in feature k to group k / g (act-order checkpoints, whose
/// g_idx permutes the groups, are refused, naming the first in feature that breaks the rule). Each scale is rounded to
/// bfloat16 as ours are (up to 2^-9 relative, a tenth or less of the 4-bit rounding the checkpoint already carries:
/// half a code step, 1/30 of a group's range); codes and zero points are kept exactly.
/// </remarks>
internal static class Int4CheckpointWeights
{
    /// <summary>The tensors of one INT4 layer and its group size.</summary>
    public sealed record Tensors(TensorInfo QWeight, TensorInfo QZeros, TensorInfo Scales, TensorInfo? GIdx, int GroupSize);

    /// <summary>Whether <paramref name="prefix"/> is stored as an INT4 layer (<c>{prefix}.qweight</c> is in the checkpoint).</summary>
    public static bool IsStored(Checkpoint checkpoint, string prefix) => checkpoint.Contains(prefix + ".qweight");

    /// <summary>
    /// The layer's tensors, each checked against [rows = N, cols = K] and the scheme through <paramref name="expectShape"/>
    /// (the checkpoint's <see cref="Checkpoint.ExpectShape"/>, or a walk's that records the name), then its dtype.
    /// </summary>
    /// <exception cref="CheckpointException">config.json names no INT4 scheme, the sizes do not fit it, a tensor is missing,
    /// has another shape, or a dtype that is not I32 (codes, zeros, g_idx) or float (scales).</exception>
    public static Tensors Expect(Checkpoint checkpoint, ModelShape shape, string prefix, int rows, int cols, Func<string, long[], TensorInfo> expectShape)
    {
        string qweightName = prefix + ".qweight";
        var scheme = shape.Int4Checkpoint ?? throw new CheckpointException(
            $"{checkpoint.Folder}: tensor '{qweightName}' is a GPTQ/AWQ INT4 weight, but config.json has no quantization_config with " +
            "quant_method gptq or awq to say how it is packed.", checkpoint.Folder, qweightName);
        int group = scheme.GroupOf(cols);
        if (group % 32 != 0 || cols % group != 0 || rows % 8 != 0)
        {
            string why = rows % 8 != 0 ? $"{rows} out features is not a multiple of 8 (qzeros pack 8 to an int32)"
                : scheme.GroupSize == -1 ? $"one group per row of {cols} in features is not a multiple of 32, which INT4 groups must be"
                : $"{cols} in features is not a multiple of group_size {group}";
            throw new CheckpointException($"{checkpoint.Folder}: tensor '{qweightName}' cannot be an INT4 layer of [{rows}, {cols}] (out x in): {why}.",
                checkpoint.Folder, qweightName);
        }
        bool awq = scheme.Format == Int4CheckpointFormat.AwqGemm;
        var qweight = Int32(checkpoint, awq ? expectShape(qweightName, [cols, rows / 8]) : expectShape(qweightName, [cols / 8, rows]));
        var qzeros = Int32(checkpoint, expectShape(prefix + ".qzeros", [cols / group, rows / 8]));
        var scales = expectShape(prefix + ".scales", [cols / group, rows]);
        if (!SafetensorsFile.ReadsAsFloat32(scales.DType))
            throw SafetensorsFile.NotReadableAsFloat32(scales);
        TensorInfo? gIdx = null;
        if (checkpoint.Contains(prefix + ".g_idx"))
            gIdx = Int32(checkpoint, expectShape(prefix + ".g_idx", [cols]));
        return new Tensors(qweight, qzeros, scales, gIdx, group);
    }

    static TensorInfo Int32(Checkpoint checkpoint, TensorInfo tensor) => tensor.DType == SafetensorsDType.I32 ? tensor
        : throw new CheckpointException($"{checkpoint.Folder}: tensor '{tensor.Name}' has dtype {tensor.DType}; an INT4 layer's packed codes, zeros and g_idx are I32.",
            checkpoint.Folder, tensor.Name);

    /// <summary>
    /// The layer in <see cref="WeightMatrix.Int4"/>'s packing: codes [rows, cols / 2], scales and zeros [rows, cols / group]
    /// (scales rounded to bfloat16), after checking g_idx's values.
    /// </summary>
    /// <exception cref="CheckpointException">g_idx permutes the groups (act order).</exception>
    public static (Int4x2[] Packed, BFloat16[] Scales, BFloat16[] Zeros) Read(Checkpoint checkpoint, Int4CheckpointScheme scheme, Tensors t, int rows, int cols)
    {
        if (t.GIdx is { } gIdxInfo)
        {
            var gIdx = MemoryMarshal.Cast<byte, int>(checkpoint.GetBytes(gIdxInfo));
            for (int k = 0; k < cols; k++)
            {
                if (gIdx[k] != k / t.GroupSize)
                    throw new CheckpointException(
                        $"{checkpoint.Folder}: tensor '{gIdxInfo.Name}' puts in feature {k} in group {gIdx[k]}, not {k / t.GroupSize} (= {k} / group_size " +
                        $"{t.GroupSize}): an act-order (desc_act) layer, whose permuted groups the INT4 kernels cannot follow.", checkpoint.Folder, gIdxInfo.Name);
            }
        }
        var qweight = MemoryMarshal.Cast<byte, int>(checkpoint.GetBytes(t.QWeight));
        var qzeros = MemoryMarshal.Cast<byte, int>(checkpoint.GetBytes(t.QZeros));
        var scales = new float[t.Scales.ElementCount];
        checkpoint.ReadAsFloat32(t.Scales, scales);
        try
        {
            return scheme.Format switch
            {
                Int4CheckpointFormat.AwqGemm => Int4Layout.FromAwq(qweight, qzeros, scales, rows, cols, t.GroupSize),
                Int4CheckpointFormat.GptqV2 => Int4Layout.FromGptq(qweight, qzeros, scales, rows, cols, t.GroupSize, GptqCheckpointFormat.GptqV2),
                _ => Int4Layout.FromGptq(qweight, qzeros, scales, rows, cols, t.GroupSize, GptqCheckpointFormat.Gptq),
            };
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{checkpoint.Folder}: tensor '{t.QWeight.Name}' cannot be read as {scheme}: {e.Message}",
                checkpoint.Folder, t.QWeight.Name, e);
        }
    }

    /// <summary>A stack whose matrices are not all INT4 layers (or all not): the loader stores a stack in one form.</summary>
    public static CheckpointException MixedStack(Checkpoint checkpoint, string int4Prefix, string densePrefix) => new(
        $"{checkpoint.Folder}: '{int4Prefix}' is an INT4 layer (qweight) but '{densePrefix}' is not (weight); a stack must share one form.",
        checkpoint.Folder, densePrefix + ".weight");
}
