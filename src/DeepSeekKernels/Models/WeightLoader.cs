using System.Runtime.InteropServices;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// Copies checkpoint tensors to device buffers in their stored form (bf16 and FP8 stay as they are; f16
/// becomes f32), checking every shape against what config.json implies before reading it, and keeps the
/// buffers it made so the model can free them.
/// </summary>
internal sealed class WeightLoader(Checkpoint checkpoint, DeviceRuntime runtime, ModelShape shape)
{
    public List<IDisposable> Owned { get; } = [];
    public long Bytes { get; private set; }

    /// <summary>The matrix <c>{prefix}.weight</c> of [rows, cols] (out x in); FP8 with its <c>weight_scale_inv</c>.</summary>
    public WeightMatrix Matrix(string prefix, int rows, int cols) => Stack([prefix], rows, cols);

    /// <summary>
    /// The matrices <c>{prefixes[i]}.weight</c>, each [rows, cols], as one stack (routed experts, stored one
    /// by one on the hub). All must share a dtype.
    /// </summary>
    public WeightMatrix Stack(IReadOnlyList<string> prefixes, int rows, int cols) =>
        StackRows([.. prefixes.Select(p => new[] { p })], rows, cols)!;

    /// <summary>
    /// Gate and up of a SwiGLU MLP (one matrix each, or a stack of experts' matrices, each [rows, cols]), fused into one
    /// weight per matrix [2 * rows, cols], gate rows then up rows, so one GEMM computes both; kept as two when FP8 block
    /// scales would straddle the seam (rows not a multiple of the block).
    /// </summary>
    public GateUp GateUp(IReadOnlyList<string> gates, IReadOnlyList<string> ups, int rows, int cols)
    {
        var fused = StackRows([.. gates.Zip(ups, (g, u) => new[] { g, u })], rows, cols);
        return fused != null
            ? new GateUp(rows, fused, null, null)
            : new GateUp(rows, null, Stack(gates, rows, cols), Stack(ups, rows, cols));
    }

    /// <summary>
    /// A stack of matrices, matrix i being the row-wise concatenation of the parts <c>{matrices[i][p]}.weight</c>, each
    /// [partRows, cols]; null when the parts are FP8 and their block scales would straddle a seam.
    /// </summary>
    WeightMatrix? StackRows(IReadOnlyList<string[]> matrices, int partRows, int cols)
    {
        int count = matrices.Count, parts = matrices[0].Length, rows = parts * partRows;
        var infos = new TensorInfo[count, parts];
        for (int i = 0; i < count; i++)
            for (int p = 0; p < parts; p++)
            {
                string name = matrices[i][p] + ".weight";
                checkpoint.ExpectShape(name, partRows, cols);
                infos[i, p] = checkpoint.GetTensor(name);
                if (infos[i, p].DType != infos[0, 0].DType)
                    throw MixedStack(checkpoint, infos[i, p], infos[0, 0]);
            }
        long partSize = (long)partRows * cols, size = (long)rows * cols;
        switch (infos[0, 0].DType)
        {
            case SafetensorsDType.BF16:
            {
                var buffer = Keep(runtime.Allocate<BFloat16>(count * size));
                for (int i = 0; i < count; i++)
                    for (int p = 0; p < parts; p++)
                        buffer.Slice(i * size + p * partSize, partSize).CopyFromHost(MemoryMarshal.Cast<byte, BFloat16>(checkpoint.GetBytes(infos[i, p])));
                return WeightMatrix.Dense<BFloat16>(buffer.View, rows, cols, count);
            }
            case SafetensorsDType.F32:
            case SafetensorsDType.F16:
            {
                var buffer = Keep(runtime.Allocate<float>(count * size));
                var host = new float[partSize];
                for (int i = 0; i < count; i++)
                    for (int p = 0; p < parts; p++)
                    {
                        checkpoint.ReadAsFloat32(infos[i, p], host);
                        buffer.Slice(i * size + p * partSize, partSize).CopyFromHost(host);
                    }
                return WeightMatrix.Dense<float>(buffer.View, rows, cols, count);
            }
            case SafetensorsDType.F8_E4M3:
            {
                var (blockRows, blockCols) = shape.Fp8Block ?? throw Fp8WithoutQuantizationConfig(checkpoint, infos[0, 0].Name);
                if (parts > 1 && partRows % blockRows != 0)
                    return null;
                int scaleRows = (partRows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
                long scaleSize = (long)scaleRows * scaleCols;
                var data = Keep(runtime.Allocate<Float8E4M3>(count * size));
                var scales = Keep(runtime.Allocate<float>(count * parts * scaleSize));
                var hostScales = new float[scaleSize];
                for (int i = 0; i < count; i++)
                    for (int p = 0; p < parts; p++)
                    {
                        data.Slice(i * size + p * partSize, partSize).CopyFromHost(MemoryMarshal.Cast<byte, Float8E4M3>(checkpoint.GetBytes(infos[i, p])));
                        string scaleName = matrices[i][p] + ".weight_scale_inv";
                        checkpoint.ExpectShape(scaleName, scaleRows, scaleCols);
                        checkpoint.ReadAsFloat32(checkpoint.GetTensor(scaleName), hostScales);
                        scales.Slice(((long)i * parts + p) * scaleSize, scaleSize).CopyFromHost(hostScales);
                    }
                return WeightMatrix.Fp8(data.View, scales.View, rows, cols, blockRows, blockCols, count);
            }
            default:
                throw NotAWeightDType(checkpoint, infos[0, 0]);
        }
    }

    /// <summary>The vector <paramref name="name"/> of <paramref name="length"/> (norm weight, bias), as f32.</summary>
    public DeviceBuffer<float> Vector(string name, int length)
    {
        checkpoint.ExpectShape(name, length);
        var host = new float[length];
        checkpoint.ReadAsFloat32(checkpoint.GetTensor(name), host);
        return Keep(runtime.Upload<float>(host));
    }

    /// <summary>The matrix <c>{prefix}.weight</c> as host f32 [rows, cols], FP8 dequantised (<see cref="Float8E4M3.Dequantize"/>).</summary>
    public float[] HostMatrix(string prefix, int rows, int cols)
    {
        string name = prefix + ".weight";
        checkpoint.ExpectShape(name, rows, cols);
        var info = checkpoint.GetTensor(name);
        var result = new float[(long)rows * cols];
        if (info.DType != SafetensorsDType.F8_E4M3)
        {
            checkpoint.ReadAsFloat32(info, result);
            return result;
        }
        var (blockRows, blockCols) = shape.Fp8Block ?? throw Fp8WithoutQuantizationConfig(checkpoint, name);
        int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
        checkpoint.ExpectShape(prefix + ".weight_scale_inv", scaleRows, scaleCols);
        var scales = new float[scaleRows * scaleCols];
        checkpoint.ReadAsFloat32(checkpoint.GetTensor(prefix + ".weight_scale_inv"), scales);
        var bits = checkpoint.GetBytes(info);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                result[(long)r * cols + c] = Float8E4M3.Dequantize(Float8E4M3.FromBits(bits[r * cols + c]), scales[r / blockRows * scaleCols + c / blockCols]);
        return result;
    }

    /// <summary>A stack of <paramref name="count"/> f32 matrices [rows, cols] made on the host.</summary>
    public WeightMatrix DenseFloat(float[] data, int rows, int cols, int count)
    {
        var buffer = Keep(runtime.Upload<float>(data));
        return WeightMatrix.Dense<float>(buffer.View, rows, cols, count);
    }

    // The loader's own errors, shared with CheckpointConformance (which finds them from the headers alone).

    /// <summary>A stack (routed experts) whose matrices do not share one dtype.</summary>
    internal static CheckpointException MixedStack(Checkpoint checkpoint, TensorInfo tensor, TensorInfo first) => new(
        $"{checkpoint.Folder}: tensor '{tensor.Name}' is {tensor.DType} but '{first.Name}' is {first.DType}; a stack must share one dtype.", checkpoint.Folder, tensor.Name);

    /// <summary>An FP8 weight in a checkpoint whose config.json has no quantization_config.</summary>
    internal static CheckpointException Fp8WithoutQuantizationConfig(Checkpoint checkpoint, string name) => new(
        $"{checkpoint.Folder}: tensor '{name}' is F8_E4M3 but config.json has no quantization_config with weight_block_size.", checkpoint.Folder, name);

    /// <summary>A weight matrix of a dtype the loader does not store.</summary>
    internal static CheckpointException NotAWeightDType(Checkpoint checkpoint, TensorInfo tensor) => new(
        $"{checkpoint.Folder}: tensor '{tensor.Name}' has dtype {tensor.DType}; weights must be BF16, F16, F32 or F8_E4M3.", checkpoint.Folder, tensor.Name);

    public T Keep<T>(T item) where T : IDisposable
    {
        Owned.Add(item);
        if (item is DeviceBuffer<float> f) Bytes += f.Length * 4;
        else if (item is DeviceBuffer<BFloat16> b) Bytes += b.Length * 2;
        else if (item is DeviceBuffer<Float8E4M3> e) Bytes += e.Length;
        return item;
    }
}
