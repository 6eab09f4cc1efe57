using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// Copies checkpoint tensors to device buffers in their stored form (bf16 and FP8 stay as they are; f16
/// becomes f32), checking every shape against what config.json implies before reading it, and keeps the
/// buffers it made so the model can free them. With a <see cref="WeightQuantization"/>, the full-precision linear
/// weights (<see cref="QuantizedAtLoad"/>) are quantised on the host, a band of rows at a time, as they are read. A GPTQ or
/// AWQ checkpoint's INT4 layers are converted to <see cref="WeightMatrix.Int4"/>'s packing (<see cref="Int4CheckpointWeights"/>)
/// and kept INT4 whatever quantisation was asked for; MLA's kv_b_proj among them is dequantised to its bf16 values.
/// On ILGPU's CPU accelerator (<paramref name="mapInPlace"/>, the default there) a weight whose stored bytes already are
/// the matrix or stack asked for (f32, bf16 or FP8 data; its parts contiguous in one file, in order) is not copied: the
/// buffer is the file's read-only mapping (<see cref="DeviceRuntime.WrapReadOnlyHostMemory{T}"/>), so the pages are the
/// page cache's, shared between processes, and the checkpoint must stay open while the model lives
/// (<see cref="MapsInPlace"/>). Gate and up whose tensors are not adjacent stay two matrices rather than a fused copy.
/// </summary>
/// <param name="checkpoint">The checkpoint the tensors come from.</param>
/// <param name="runtime">The device the buffers go to.</param>
/// <param name="shape">The model's dimensions (and its FP8 block, for FP8 checkpoints).</param>
/// <param name="quantization">How to store full-precision linear weights.</param>
/// <param name="bandElements">Most weights a host band holds while quantising (tests make it small to cross bands).</param>
/// <param name="mapInPlace">Use stored weights in place from the mapping (null: on ILGPU's CPU accelerator, never on a GPU).</param>
internal sealed class WeightLoader(Checkpoint checkpoint, DeviceRuntime runtime, ModelShape shape,
    WeightQuantization quantization = WeightQuantization.None, int bandElements = WeightLoader.DefaultBandElements, bool? mapInPlace = null)
{
    public List<IDisposable> Owned { get; } = [];
    public long Bytes { get; private set; }

    readonly bool _mapInPlace = (mapInPlace ?? !runtime.IsCuda) && !runtime.IsCuda;

    /// <summary>Weight bytes used in place from the checkpoint's mapping (counted in <see cref="Bytes"/> too).</summary>
    public long MappedBytes { get; private set; }

    /// <summary>Whether some weight reads the checkpoint's mapping: the checkpoint must then outlive the model.</summary>
    public bool MapsInPlace => MappedBytes > 0;

    /// <summary>
    /// Checkpoint bytes read once into memory of the model's own (copied stacks such as the routed experts, every weight on a
    /// GPU, quantised bands, kv_b_proj's heads) and then released from this process's resident set (<see cref="ReadOnce(TensorInfo, long, long)"/>).
    /// </summary>
    public long ReleasedBytes { get; private set; }

    /// <summary>
    /// <paramref name="info"/>'s bytes [start, start + length) were copied and will not be read again: their pages leave this
    /// process's resident set (they stay in the page cache; a later read maps them again). Without it the load's peak resident
    /// memory is the model plus every page of the checkpoint it copied from (dsk bench on a MoE model: 1.51x the weights).
    /// </summary>
    void ReadOnce(TensorInfo info, long start = 0, long length = -1)
    {
        if (length < 0)
            length = info.ByteLength - start;
        info.File.ReleasePages(info, start, length);
        ReleasedBytes += length;
    }

    /// <summary><see cref="ReadOnce(TensorInfo, long, long)"/> for every tensor of a converted INT4 layer.</summary>
    void ReadOnce(Int4CheckpointWeights.Tensors t)
    {
        foreach (var info in new[] { t.QWeight, t.QZeros, t.Scales, t.GIdx })
            if (info != null)
                ReadOnce(info);
    }

    int _quantized, _alreadyFp8, _alreadyInt4;
    readonly List<string> _keptDense = [];

    /// <summary>What the quantisation did so far (all zero without one).</summary>
    public QuantizationReport Report => quantization == WeightQuantization.None
        ? QuantizationReport.None
        : new(quantization, _quantized, _alreadyFp8, [.. _keptDense]) { AlreadyInt4 = _alreadyInt4 };

    /// <summary>
    /// Whether the loader quantises the matrix <paramref name="weightName"/> (a loaded rank-2 <c>*.weight</c>) when asked
    /// and its dtype is full precision: every linear weight but the embeddings, the MoE router (<c>mlp.gate</c>) and
    /// MLA's kv_b_proj (split per head into W_UK and W_UV stacks in its own precision, see <see cref="KvBProj"/>). <see cref="ModelLoader.EstimateBytes"/> counts by the same rule.
    /// </summary>
    internal static bool QuantizedAtLoad(string weightName) =>
        weightName != "model.embed_tokens.weight"
        && !weightName.EndsWith(".mlp.gate.weight", StringComparison.Ordinal)
        && !weightName.EndsWith(".kv_b_proj.weight", StringComparison.Ordinal);

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
    /// scales would straddle the seam (rows not a multiple of the block), whether the checkpoint stores FP8 or the loader
    /// quantises to it (so a block never mixes gate and up rows, and each has the scales it would have alone).
    /// </summary>
    public GateUp GateUp(IReadOnlyList<string> gates, IReadOnlyList<string> ups, int rows, int cols)
    {
        if (_mapInPlace && gates.Count == 1 && !Int4Stored(gates[0]) && !Int4Stored(ups[0]) && !WouldQuantize(gates[0])
            && MappableDType(checkpoint.GetTensor(gates[0] + ".weight").DType)
            && !Contiguous([checkpoint.GetTensor(gates[0] + ".weight"), checkpoint.GetTensor(ups[0] + ".weight")]))
            return new GateUp(rows, null, Stack(gates, rows, cols), Stack(ups, rows, cols)); // two mapped matrices beat one fused copy
        if (gates.Any(Int4Stored) != ups.Any(Int4Stored)) // a GPTQ/AWQ checkpoint that quantised one of the two
            return new GateUp(rows, null, Stack(gates, rows, cols), Stack(ups, rows, cols));
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
        if (matrices.Any(m => m.Any(Int4Stored)))
            return Int4Stack(matrices, partRows, cols);
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
        var dtype = infos[0, 0].DType;
        bool fullPrecision = dtype is SafetensorsDType.BF16 or SafetensorsDType.F32 or SafetensorsDType.F16;
        bool quantize = quantization != WeightQuantization.None && QuantizedAtLoad(infos[0, 0].Name);
        if (quantize && fullPrecision)
        {
            if (quantization.Fits(cols))
            {
                if (quantization == WeightQuantization.Fp8 && parts > 1 && partRows % WeightQuantizations.BlockSize != 0)
                    return null; // the seam rule of FP8 checkpoints below: gate and up are quantised as two stacks
                var weight = QuantizedStack(matrices, infos, partRows, cols);
                _quantized += count * parts;
                return weight;
            }
            for (int i = 0; i < count; i++) // INT4 groups do not tile the in features: stored as the checkpoint has it
                for (int p = 0; p < parts; p++)
                    _keptDense.Add($"{infos[i, p].Name} {infos[i, p].ShapeText}");
        }
        if (_mapInPlace && MappableDType(dtype) && Contiguous(Flatten(infos)))
        {
            var (blockRows, _) = shape.Fp8Block ?? (0, 0);
            if (dtype != SafetensorsDType.F8_E4M3 || parts == 1 || (blockRows > 0 && partRows % blockRows == 0))
            {
                if (quantize && dtype == SafetensorsDType.F8_E4M3)
                    _alreadyFp8 += count * parts;
                return Mapped(matrices, infos, rows, cols);
            }
        }
        switch (dtype)
        {
            case SafetensorsDType.BF16:
            {
                var buffer = Keep(runtime.Allocate<BFloat16>(count * size));
                for (int i = 0; i < count; i++)
                    for (int p = 0; p < parts; p++)
                    {
                        buffer.Slice(i * size + p * partSize, partSize).CopyFromHost(MemoryMarshal.Cast<byte, BFloat16>(checkpoint.GetBytes(infos[i, p])));
                        ReadOnce(infos[i, p]);
                    }
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
                        ReadOnce(infos[i, p]);
                        buffer.Slice(i * size + p * partSize, partSize).CopyFromHost(host);
                    }
                return WeightMatrix.Dense<float>(buffer.View, rows, cols, count);
            }
            case SafetensorsDType.F8_E4M3:
            {
                var (blockRows, blockCols) = shape.Fp8Block ?? throw Fp8WithoutQuantizationConfig(checkpoint, infos[0, 0].Name);
                if (parts > 1 && partRows % blockRows != 0)
                    return null;
                if (quantize)
                    _alreadyFp8 += count * parts;
                var data = Keep(runtime.Allocate<Float8E4M3>(count * size));
                for (int i = 0; i < count; i++)
                    for (int p = 0; p < parts; p++)
                    {
                        data.Slice(i * size + p * partSize, partSize).CopyFromHost(MemoryMarshal.Cast<byte, Float8E4M3>(checkpoint.GetBytes(infos[i, p])));
                        ReadOnce(infos[i, p]);
                    }
                var scales = Fp8Scales(matrices, partRows, cols, blockRows, blockCols);
                return WeightMatrix.Fp8(data.View, scales.View, rows, cols, blockRows, blockCols, count);
            }
            default:
                throw NotAWeightDType(checkpoint, infos[0, 0]);
        }
    }

    /// <summary>Whether <paramref name="prefix"/> is a GPTQ/AWQ INT4 layer (qweight, qzeros, scales) rather than a weight.</summary>
    bool Int4Stored(string prefix) => Int4CheckpointWeights.IsStored(checkpoint, prefix);

    /// <summary>
    /// The stack of <see cref="StackRows"/> from a GPTQ/AWQ checkpoint's INT4 layers, each converted to
    /// <see cref="WeightMatrix.Int4"/>'s packing (<see cref="Int4CheckpointWeights"/>) and copied to its rows; every part must
    /// be such a layer. Kept as stored whatever quantisation was asked for (counted as already INT4).
    /// </summary>
    WeightMatrix Int4Stack(IReadOnlyList<string[]> matrices, int partRows, int cols)
    {
        int count = matrices.Count, parts = matrices[0].Length, rows = parts * partRows;
        string? int4 = matrices.SelectMany(m => m).FirstOrDefault(Int4Stored);
        var tensors = new Int4CheckpointWeights.Tensors[count, parts];
        for (int i = 0; i < count; i++)
            for (int p = 0; p < parts; p++)
            {
                if (!Int4Stored(matrices[i][p]))
                    throw Int4CheckpointWeights.MixedStack(checkpoint, int4!, matrices[i][p]);
                tensors[i, p] = Int4CheckpointWeights.Expect(checkpoint, shape, matrices[i][p], partRows, cols, checkpoint.ExpectShape);
            }
        int group = tensors[0, 0].GroupSize, groups = cols / group;
        long partCodes = (long)partRows * (cols / 2), partGroups = (long)partRows * groups;
        var packed = Keep(runtime.Allocate<Int4x2>(count * parts * partCodes));
        var scales = Keep(runtime.Allocate<BFloat16>(count * parts * partGroups));
        var zeros = Keep(runtime.Allocate<BFloat16>(count * parts * partGroups));
        for (int i = 0; i < count; i++)
            for (int p = 0; p < parts; p++)
            {
                var t = tensors[i, p];
                var (q, s, z) = Int4CheckpointWeights.Read(checkpoint, shape.Int4Checkpoint!, t, partRows, cols);
                long part = (long)i * parts + p;
                packed.Slice(part * partCodes, partCodes).CopyFromHost(q);
                scales.Slice(part * partGroups, partGroups).CopyFromHost(s);
                zeros.Slice(part * partGroups, partGroups).CopyFromHost(z);
                ReadOnce(t);
            }
        if (quantization != WeightQuantization.None)
            _alreadyInt4 += count * parts;
        return WeightMatrix.Int4(packed.View, scales.View, zeros.View, rows, cols, group, count);
    }

    /// <summary>Whether the loader would quantise <paramref name="prefix"/>.weight (full precision, asked to, and it fits).</summary>
    bool WouldQuantize(string prefix)
    {
        if (Int4Stored(prefix))
            return false;
        var info = checkpoint.GetTensor(prefix + ".weight");
        return quantization != WeightQuantization.None && QuantizedAtLoad(info.Name)
            && info.DType is SafetensorsDType.BF16 or SafetensorsDType.F32 or SafetensorsDType.F16
            && info.Rank == 2 && quantization.Fits((int)info.Shape[1]);
    }

    /// <summary>The dtypes used in place as stored: f32, bf16 and FP8 data (f16 is widened to f32, so copied).</summary>
    static bool MappableDType(SafetensorsDType dtype) => dtype is SafetensorsDType.BF16 or SafetensorsDType.F32 or SafetensorsDType.F8_E4M3;

    static TensorInfo[] Flatten(TensorInfo[,] infos) => [.. infos.Cast<TensorInfo>()];

    /// <summary>Whether the tensors lie back to back, in this order, in one file, aligned to their element size.</summary>
    static bool Contiguous(IReadOnlyList<TensorInfo> tensors)
    {
        for (int i = 1; i < tensors.Count; i++)
        {
            if (!ReferenceEquals(tensors[i].File, tensors[0].File) || tensors[i].ByteOffset != tensors[i - 1].ByteOffset + tensors[i - 1].ByteLength)
                return false;
        }
        return tensors[0].File.AddressOf(tensors[0]) % tensors[0].DType.SizeInBytes() == 0;
    }

    /// <summary>
    /// The stack of <see cref="StackRows"/> as the file's own bytes (contiguous parts, checked by the caller): the data is a
    /// read-only view of the mapping; FP8 block scales (small) are read into a buffer of their own.
    /// </summary>
    WeightMatrix Mapped(IReadOnlyList<string[]> matrices, TensorInfo[,] infos, int rows, int cols)
    {
        int count = matrices.Count, parts = matrices[0].Length, partRows = rows / parts;
        long size = (long)count * rows * cols;
        nint address = infos[0, 0].File.AddressOf(infos[0, 0]);
        switch (infos[0, 0].DType)
        {
            case SafetensorsDType.BF16:
                return WeightMatrix.Dense<BFloat16>(KeepMapped(runtime.WrapReadOnlyHostMemory<BFloat16>(address, size, fileMapping: true)).View, rows, cols, count);
            case SafetensorsDType.F32:
                return WeightMatrix.Dense<float>(KeepMapped(runtime.WrapReadOnlyHostMemory<float>(address, size, fileMapping: true)).View, rows, cols, count);
            default:
            {
                var (blockRows, blockCols) = shape.Fp8Block ?? throw Fp8WithoutQuantizationConfig(checkpoint, infos[0, 0].Name);
                var data = KeepMapped(runtime.WrapReadOnlyHostMemory<Float8E4M3>(address, size, fileMapping: true));
                var scales = Fp8Scales(matrices, partRows, cols, blockRows, blockCols);
                return WeightMatrix.Fp8(data.View, scales.View, rows, cols, blockRows, blockCols, count);
            }
        }
    }

    /// <summary>
    /// The <c>weight_scale_inv</c> of every part of an FP8 stack (each checked to be [ceil(partRows / blockRows),
    /// ceil(cols / blockCols)]), as float32, part after part, in a buffer of the model's own.
    /// </summary>
    DeviceBuffer<float> Fp8Scales(IReadOnlyList<string[]> matrices, int partRows, int cols, int blockRows, int blockCols)
    {
        int count = matrices.Count, parts = matrices[0].Length;
        int scaleRows = (partRows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
        long scaleSize = (long)scaleRows * scaleCols;
        var scales = Keep(runtime.Allocate<float>(count * parts * scaleSize));
        var hostScales = new float[scaleSize];
        for (int i = 0; i < count; i++)
            for (int p = 0; p < parts; p++)
            {
                string scaleName = matrices[i][p] + ".weight_scale_inv";
                checkpoint.ExpectShape(scaleName, scaleRows, scaleCols);
                checkpoint.ReadAsFloat32(checkpoint.GetTensor(scaleName), hostScales);
                scales.Slice(((long)i * parts + p) * scaleSize, scaleSize).CopyFromHost(hostScales);
            }
        return scales;
    }

    DeviceBuffer<T> KeepMapped<T>(DeviceBuffer<T> buffer) where T : unmanaged
    {
        Keep(buffer);
        MappedBytes += buffer.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        return buffer;
    }

    /// <summary>Weights per host band while quantising: bounds the loader's host memory whatever the matrix (4M floats, 16 MiB).</summary>
    public const int DefaultBandElements = 1 << 22;

    /// <summary>
    /// The stack of <see cref="StackRows"/> (full-precision parts, FP8 parts a multiple of 128 rows when more than one),
    /// quantised: each part is read a band of rows at a time (a multiple of 128 rows, so FP8 blocks never span two bands),
    /// converted to float32, quantised by <see cref="Int4GroupQuantizer"/> or <see cref="Fp8BlockQuantizer"/> and copied
    /// to its place in device buffers that hold the whole stack, in the layout <see cref="WeightMatrix.Int4"/> and
    /// <see cref="WeightMatrix.Fp8"/> take (INT4 groups never span rows, so a band quantises alone; FP8 blocks of a band
    /// are block rows of its matrix, since every part starts at a multiple of 128 rows).
    /// </summary>
    WeightMatrix QuantizedStack(IReadOnlyList<string[]> matrices, TensorInfo[,] infos, int partRows, int cols)
    {
        int count = matrices.Count, parts = matrices[0].Length, rows = parts * partRows;
        const int block = WeightQuantizations.BlockSize, group = WeightQuantizations.GroupSize;
        int bandRows = Math.Max(block, bandElements / cols / block * block);
        var host = new float[(long)Math.Min(bandRows, partRows) * cols];
        bool int4 = quantization == WeightQuantization.Int4;
        int groupsPerRow = cols / group, scaleRows = (rows + block - 1) / block, scaleCols = (cols + block - 1) / block;
        DeviceBuffer<Int4x2> packed = default!;
        DeviceBuffer<BFloat16> int4Scales = default!, zeros = default!;
        DeviceBuffer<Float8E4M3> fp8 = default!;
        DeviceBuffer<float> fp8Scales = default!;
        if (int4)
        {
            packed = Keep(runtime.Allocate<Int4x2>((long)count * rows * (cols / 2)));
            int4Scales = Keep(runtime.Allocate<BFloat16>((long)count * rows * groupsPerRow));
            zeros = Keep(runtime.Allocate<BFloat16>((long)count * rows * groupsPerRow));
        }
        else
        {
            fp8 = Keep(runtime.Allocate<Float8E4M3>((long)count * rows * cols));
            fp8Scales = Keep(runtime.Allocate<float>((long)count * scaleRows * scaleCols));
        }
        for (int i = 0; i < count; i++)
            for (int p = 0; p < parts; p++)
                for (int first = 0; first < partRows; first += bandRows)
                {
                    int n = Math.Min(bandRows, partRows - first);
                    var band = host.AsSpan(0, n * cols);
                    var info = infos[i, p];
                    ReadRowsAsFloat32(info, first, n, cols, band);
                    int elementBytes = info.DType == SafetensorsDType.F32 ? 4 : 2;
                    ReadOnce(info, (long)first * cols * elementBytes, (long)n * cols * elementBytes);
                    long row = (long)i * rows + (long)p * partRows + first; // the band's first row in the stack
                    try
                    {
                        if (int4)
                        {
                            var (q, scales, z) = Int4GroupQuantizer.Quantize(band, n, cols, group);
                            packed.Slice(row * (cols / 2), q.Length).CopyFromHost(q);
                            int4Scales.Slice(row * groupsPerRow, scales.Length).CopyFromHost(scales);
                            zeros.Slice(row * groupsPerRow, z.Length).CopyFromHost(z);
                        }
                        else
                        {
                            var (data, scaleInv) = Fp8BlockQuantizer.Quantize(band, n, cols, block, block);
                            fp8.Slice(row * cols, data.Length).CopyFromHost(data);
                            long scaleRow = (long)i * scaleRows + (p * partRows + first) / block;
                            fp8Scales.Slice(scaleRow * scaleCols, scaleInv.Length).CopyFromHost(scaleInv);
                        }
                    }
                    catch (ArgumentException e)
                    {
                        throw new CheckpointException(
                            $"{checkpoint.Folder}: tensor '{info.Name}' cannot be quantised to {quantization.Name()} (rows {first}..{first + n - 1}): {e.Message}",
                            checkpoint.Folder, info.Name, e);
                    }
                }
        return int4
            ? WeightMatrix.Int4(packed.View, int4Scales.View, zeros.View, rows, cols, group, count)
            : WeightMatrix.Fp8(fp8.View, fp8Scales.View, rows, cols, block, block, count);
    }

    /// <summary>Rows [first, first + n) of a [*, cols] BF16, F16 or F32 tensor as float32, read from the mapping.</summary>
    void ReadRowsAsFloat32(TensorInfo info, int first, int n, int cols, Span<float> destination)
    {
        int elementBytes = info.DType == SafetensorsDType.F32 ? 4 : 2;
        var bytes = checkpoint.GetBytes(info, (long)first * cols * elementBytes, n * cols * elementBytes);
        switch (info.DType)
        {
            case SafetensorsDType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination); break;
            case SafetensorsDType.BF16: BFloat16Conversions.ToSingle(MemoryMarshal.Cast<byte, BFloat16>(bytes), destination); break;
            default: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), destination); break;
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
        if (Int4Stored(prefix))
        {
            var t = Int4CheckpointWeights.Expect(checkpoint, shape, prefix, rows, cols, checkpoint.ExpectShape);
            var (codes, groupScales, zeros) = Int4CheckpointWeights.Read(checkpoint, shape.Int4Checkpoint!, t, rows, cols);
            ReadOnce(t);
            return Int4GroupQuantizer.Dequantize(codes, groupScales, zeros, rows, cols, t.GroupSize);
        }
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

    /// <summary>
    /// MLA's kv_b_proj [heads * (nope + v), latent] as two stacks, W_uk [heads, nope, latent] and W_uv [heads, v, latent]:
    /// FP8 with its block scales when the checkpoint stores FP8 and both nope and v are whole blocks of rows (DeepSeek-V3:
    /// 128 and 128, blocks of 128: the stored bytes, <see cref="KvBProjStaysFp8"/>); bf16 when it stores bf16 (the stored
    /// bytes) or FP8 whose blocks straddle the heads' row ranges (its dequantisation, which is a bf16 value by definition:
    /// <see cref="Float8E4M3.Dequantize"/>); else f32.
    /// </summary>
    public (WeightMatrix Uk, WeightMatrix Uv) KvBProj(string prefix, int heads, int nope, int v, int latent)
    {
        bool int4 = Int4Stored(prefix); // a GPTQ/AWQ layer: dequantised to its bf16 values on the host
        var info = int4 ? null : checkpoint.GetTensor(prefix + ".weight");
        if (info?.DType == SafetensorsDType.F8_E4M3 && KvBProjStaysFp8(shape))
            return KvBProjFp8(prefix, info, heads, nope, v, latent);
        var values = HostMatrix(prefix, heads * (nope + v), latent); // checks the shape; FP8 and INT4 dequantised
        if (info != null)
            ReadOnce(info);
        var uk = new float[(long)heads * nope * latent];
        var uv = new float[(long)heads * v * latent];
        for (int h = 0; h < heads; h++)
        {
            long headRow = (long)h * (nope + v);
            Array.Copy(values, headRow * latent, uk, (long)h * nope * latent, (long)nope * latent);
            Array.Copy(values, (headRow + nope) * latent, uv, (long)h * v * latent, (long)v * latent);
        }
        if (info is null || info.DType is SafetensorsDType.BF16 or SafetensorsDType.F8_E4M3)
            return (DenseBf16(uk, nope, latent, heads), DenseBf16(uv, v, latent, heads));
        return (DenseFloat(uk, nope, latent, heads), DenseFloat(uv, v, latent, heads));
    }

    /// <summary>Whether an FP8 kv_b_proj is kept in FP8: its nope and v row ranges per head are whole blocks of scale rows.</summary>
    internal static bool KvBProjStaysFp8(ModelShape s) =>
        s.Fp8Block is var (blockRows, _) && s.QkNopeHeadDim % blockRows == 0 && s.VHeadDim % blockRows == 0;

    /// <summary>W_uk and W_uv as FP8 stacks: each head's rows and their scale rows copied as stored.</summary>
    (WeightMatrix Uk, WeightMatrix Uv) KvBProjFp8(string prefix, TensorInfo info, int heads, int nope, int v, int latent)
    {
        var (blockRows, blockCols) = shape.Fp8Block!.Value;
        int rows = heads * (nope + v);
        checkpoint.ExpectShape(prefix + ".weight", rows, latent);
        int scaleCols = (latent + blockCols - 1) / blockCols;
        checkpoint.ExpectShape(prefix + ".weight_scale_inv", rows / blockRows, scaleCols);
        var scales = new float[(long)rows / blockRows * scaleCols];
        checkpoint.ReadAsFloat32(checkpoint.GetTensor(prefix + ".weight_scale_inv"), scales);
        WeightMatrix Part(int first, int count)
        {
            var bytes = MemoryMarshal.Cast<byte, Float8E4M3>(checkpoint.GetBytes(info));
            var data = Keep(runtime.Allocate<Float8E4M3>((long)heads * count * latent));
            var partScales = Keep(runtime.Allocate<float>((long)heads * count / blockRows * scaleCols));
            for (int h = 0; h < heads; h++)
            {
                int row = h * (nope + v) + first;
                data.Slice((long)h * count * latent, (long)count * latent).CopyFromHost(bytes.Slice(row * latent, count * latent));
                partScales.Slice((long)h * count / blockRows * scaleCols, (long)count / blockRows * scaleCols)
                    .CopyFromHost(scales.AsSpan(row / blockRows * scaleCols, count / blockRows * scaleCols));
            }
            return WeightMatrix.Fp8(data.View, partScales.View, count, latent, blockRows, blockCols, heads);
        }
        var parts = (Part(0, nope), Part(nope, v));
        ReadOnce(info);
        return parts;
    }

    /// <summary>A stack of bf16 matrices from float32 values that are bf16 values already (the conversion is exact).</summary>
    WeightMatrix DenseBf16(float[] data, int rows, int cols, int count)
    {
        var bits = new BFloat16[data.Length];
        BFloat16Conversions.FromSingle(data, bits);
        var buffer = Keep(runtime.Upload<BFloat16>(bits));
        return WeightMatrix.Dense<BFloat16>(buffer.View, rows, cols, count);
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
        else if (item is DeviceBuffer<Int4x2> q) Bytes += q.Length;
        return item;
    }
}
