using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Models;

/// <summary>
/// Writes a random-weight checkpoint for a config.json in Hugging Face's layout (config.json, then model.safetensors or
/// model-0000i-of-0000n.safetensors with model.safetensors.index.json), so the runner can be measured on a model's real
/// shapes without its weights: what vLLM's <c>--load-format dummy</c> does in memory, here as files any loader reads
/// (transformers included, for a peer on the same weights). It holds exactly the tensors the loader reads
/// (<see cref="CheckpointLayout"/>), in BF16: matrices uniform with standard deviation 0.02 (transformers'
/// initializer_range), norm weights 1, biases and DeepSeek-V3's router correction bias 0. Deterministic in the seed: each
/// pair of elements is a hash of (seed, tensor, index), so the bytes do not depend on how many threads wrote them.
/// </summary>
public static class RandomCheckpoint
{
    /// <summary>Shards of at most 4 GiB (a tensor larger than that gets a shard of its own).</summary>
    public const long DefaultShardBytes = 4L << 30;

    const double Std = 0.02;
    const int ChunkElements = 1 << 24; // 32 MiB of bf16 generated in parallel, then written

    /// <summary>
    /// Writes the checkpoint of <paramref name="configPath"/>'s model into <paramref name="folder"/>, which must not exist or be
    /// empty. Each file is written under a ".part" name and renamed when complete; config.json is copied last, so a folder
    /// without it is an unfinished write.
    /// </summary>
    /// <exception cref="CheckpointException">The config is not one the runner loads, it asks for quantized weights (write the
    /// BF16 checkpoint and quantize at load instead), the folder is not empty, or the disk has too little room; nothing is
    /// written in those cases.</exception>
    public static RandomCheckpointReport Write(string configPath, string folder, ulong seed = 0, long shardBytes = DefaultShardBytes,
        Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(configPath);
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardBytes, 1L << 20);
        var config = ModelConfig.Load(configPath);
        if (config.Quantization is { } q)
            throw new CheckpointException($"{config.Source}: quantization_config ({q.QuantMethod}) asks for quantized weights; a random " +
                "checkpoint is written in BF16: drop quantization_config and quantize at load (dsk --quant fp8|int4)", config.Source, null);
        var shape = ModelShapes.From(config);
        // The bytes from the sizes alone (checked arithmetic), so a config too large for the disk is refused before its
        // tensors are listed: each element of every tensor the loader reads, in BF16.
        long total = checked(2 * Planning.ParameterInventory.Of(shape).Total);

        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new CheckpointException($"{folder}: not empty; a random checkpoint is written into a new or empty folder", folder, null);
        string existing = Path.GetFullPath(folder); // the free space of the file system the folder is (or will be) on
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
            existing = parent;
        long free = new DriveInfo(existing).AvailableFreeSpace;
        if (free < total + (64L << 20))
            throw new CheckpointException(string.Create(CultureInfo.InvariantCulture,
                $"{folder}: {total / 1e9:F2} GB of weights do not fit the {free / 1e9:F2} GB free there"), folder, null);
        Directory.CreateDirectory(folder);

        var tensors = Tensors(shape);
        if (tensors.Sum(t => t.Bytes) != total)
            throw new InvalidOperationException($"{config.Source}: the checkpoint layout and the parameter inventory disagree"); // a bug, not the config
        var shards = Shard(tensors, shardBytes);
        var files = new List<string>();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = shards.Count == 1
                ? Checkpoint.SingleFileName
                : string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            progress?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{name}: {shards[i].Count} tensors, {shards[i].Sum(t => t.Bytes) / 1e9:F2} GB"));
            WriteShard(Path.Combine(folder, name), shards[i], seed);
            files.Add(name);
        }
        if (shards.Count > 1)
            WriteIndex(Path.Combine(folder, Checkpoint.IndexFileName), shards, files, total);
        File.Copy(File.Exists(configPath) ? configPath : Path.Combine(configPath, "config.json"), Path.Combine(folder, "config.json"));
        return new RandomCheckpointReport(tensors.Count, tensors.Sum(t => t.Elements), total, files);
    }

    /// <summary>What a tensor holds: random values, ones (a norm's weight) or zeros (a bias).</summary>
    enum Fill { Random, Ones, Zeros }

    sealed record Tensor(int Index, string Name, long[] Shape, Fill Fill)
    {
        public long Elements => Shape.Aggregate(1L, (a, b) => checked(a * b));
        public long Bytes => checked(2 * Elements);
    }

    static List<Tensor> Tensors(ModelShape shape)
    {
        var tensors = new List<Tensor>();
        foreach (var entry in CheckpointLayout.Of(shape))
        {
            foreach (string name in entry.Names)
            {
                if (entry.Kind == LayoutKind.Vector)
                {
                    var fill = name.EndsWith("norm.weight", StringComparison.Ordinal) ? Fill.Ones : Fill.Zeros;
                    tensors.Add(new(tensors.Count, name, [entry.Rows], fill));
                }
                else
                {
                    tensors.Add(new(tensors.Count, name + ".weight", [entry.Rows, entry.Cols], Fill.Random));
                }
            }
        }
        return tensors;
    }

    static List<List<Tensor>> Shard(List<Tensor> tensors, long shardBytes)
    {
        var shards = new List<List<Tensor>> { new() };
        long bytes = 0;
        foreach (var t in tensors)
        {
            if (shards[^1].Count > 0 && bytes + t.Bytes > shardBytes)
            {
                shards.Add([]);
                bytes = 0;
            }
            shards[^1].Add(t);
            bytes += t.Bytes;
        }
        return shards;
    }

    static void WriteShard(string path, List<Tensor> tensors, ulong seed)
    {
        var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            json.WriteEndObject();
            long offset = 0;
            foreach (var t in tensors)
            {
                SafetensorsHeader.WriteEntry(json, t.Name, "BF16", t.Shape, offset, offset + t.Bytes);
                offset += t.Bytes;
            }
            json.WriteEndObject();
        }
        int padded = (int)((header.Length + 7) / 8 * 8);
        var prefix = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        header.ToArray().CopyTo(prefix, 8);
        prefix.AsSpan(8 + (int)header.Length).Fill((byte)' ');

        string part = path + ".part";
        using (var file = new FileStream(part, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            file.Write(prefix);
            var buffer = new ushort[ChunkElements];
            foreach (var t in tensors)
            {
                for (long start = 0; start < t.Elements; start += ChunkElements)
                {
                    int count = (int)Math.Min(ChunkElements, t.Elements - start);
                    Generate(t, seed, start, buffer, count);
                    file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan(0, count)));
                }
            }
        }
        File.Move(part, path);
    }

    /// <summary>Elements [start, start + count) of <paramref name="t"/> as BF16 bits into buffer[0, count).</summary>
    static void Generate(Tensor t, ulong seed, long start, ushort[] buffer, int count)
    {
        switch (t.Fill)
        {
            case Fill.Ones:
                buffer.AsSpan(0, count).Fill(0x3F80);
                return;
            case Fill.Zeros:
                buffer.AsSpan(0, count).Clear();
                return;
        }
        const int Block = 1 << 16; // elements per parallel task (even, as ChunkElements is: a pair never straddles two)
        Parallel.For(0, (count + Block - 1) / Block, block =>
        {
            var span = buffer.AsSpan();
            int from = block * Block, to = Math.Min(count, from + Block);
            ulong key = seed * 0x9E3779B97F4A7C15UL ^ ((ulong)t.Index << 40);
            for (int i = from; i < to; i += 2)
            {
                ulong r = Mix(key + (ulong)(start + i) / 2);
                span[i] = Bf16((uint)r);
                if (i + 1 < to)
                    span[i + 1] = Bf16((uint)(r >> 32));
            }
        });
    }

    /// <summary>SplitMix64's finaliser: a well-mixed 64-bit hash of a counter.</summary>
    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [-a, a) with a = 0.02 * sqrt(3) (standard deviation 0.02) from 24 random bits, rounded to BF16.</summary>
    static ushort Bf16(uint bits)
    {
        const float A = (float)(Std * 1.7320508075688772);
        float value = ((bits >> 8) * (1f / (1 << 23)) - 1f) * A;
        uint f = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16);
    }

    static void WriteIndex(string path, List<List<Tensor>> shards, List<string> files, long total)
    {
        using var stream = new FileStream(path + ".part", FileMode.CreateNew);
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", total);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            for (int i = 0; i < shards.Count; i++)
                foreach (var t in shards[i])
                    json.WriteString(t.Name, files[i]);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        stream.Close();
        File.Move(path + ".part", path);
    }
}

/// <summary>What <see cref="RandomCheckpoint.Write"/> wrote: tensors, parameters, bytes of tensor data, the safetensors files.</summary>
public sealed record RandomCheckpointReport(int Tensors, long Parameters, long Bytes, IReadOnlyList<string> Files);
