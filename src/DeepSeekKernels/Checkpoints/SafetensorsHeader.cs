using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// Reads and validates a safetensors header. Checks, in order: file at least 8 bytes; header length N in
/// [1, <see cref="SafetensorsFile.MaxHeaderLength"/>] and 8 + N within the file; the header valid UTF-8 and a
/// JSON object; "__metadata__" (optional) an object of strings; then per tensor, in header order: no duplicate
/// name, an object with "dtype" (a known name), "shape" (non-negative integers), "data_offsets" (two
/// non-negative integers, begin &lt;= end), product(shape) * dtype size not overflowing and equal to
/// end - begin, end within the data section; last, no two tensors' byte ranges overlapping.
/// </summary>
internal sealed class SafetensorsHeader
{
    /// <summary>One validated header entry; offsets relative to the data section.</summary>
    internal readonly record struct Entry(string Name, SafetensorsDType DType, long[] Shape, long ElementCount, long Begin, long End);

    SafetensorsHeader(long length, List<Entry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        Length = length;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>N, the JSON's length in bytes.</summary>
    public long Length { get; }

    /// <summary>The tensors, in header order.</summary>
    public IReadOnlyList<Entry> Entries { get; }

    /// <summary>"__metadata__", empty when absent.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Writes one tensor's header entry, <c>"name": {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}</c>, as the
    /// reference writer does (the writers here: RandomCheckpoint, and the tests' SafetensorsWriter).
    /// </summary>
    public static void WriteEntry(Utf8JsonWriter json, string name, string dtype, IEnumerable<long> shape, long begin, long end)
    {
        json.WriteStartObject(name);
        json.WriteString("dtype", dtype);
        json.WriteStartArray("shape");
        foreach (long d in shape)
            json.WriteNumberValue(d);
        json.WriteEndArray();
        json.WriteStartArray("data_offsets");
        json.WriteNumberValue(begin);
        json.WriteNumberValue(end);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Reads the header of <paramref name="path"/> from <paramref name="stream"/> (at position 0) and validates it against <paramref name="fileLength"/>.</summary>
    public static SafetensorsHeader Read(Stream stream, string path, long fileLength)
    {
        if (fileLength < 8)
            throw Fault(path, null, $"the file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (declared == 0)
            throw Fault(path, null, "the header length is 0");
        if (declared > SafetensorsFile.MaxHeaderLength)
            throw Fault(path, null, $"the header length {declared} is larger than the {SafetensorsFile.MaxHeaderLength}-byte limit (not a safetensors file?)");
        long headerLength = (long)declared;
        if (8 + headerLength > fileLength)
            throw Fault(path, null, $"the header length {headerLength} runs past the end of the file ({fileLength} bytes)");
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        return Parse(json, path, fileLength - 8 - headerLength, headerLength);
    }

    static SafetensorsHeader Parse(byte[] json, string path, long dataLength, long headerLength)
    {
        if (!Utf8.IsValid(json))
            throw Fault(path, null, "the header is not valid UTF-8");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw Fault(path, null, $"the header is not valid JSON ({ex.Message})", ex);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Fault(path, null, $"the header is a JSON {Describe(root.ValueKind)}, not an object");

            var entries = new List<Entry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
            foreach (var property in root.EnumerateObject())
            {
                string name = property.Name;
                if (!names.Add(name))
                    throw Fault(path, name, "appears twice in the header");
                if (name == "__metadata__")
                    metadata = ParseMetadata(property.Value, path);
                else
                    entries.Add(ParseEntry(name, property.Value, path, dataLength));
            }
            CheckOverlaps(entries, path);
            return new SafetensorsHeader(headerLength, entries, metadata);
        }
    }

    static Dictionary<string, string> ParseMetadata(JsonElement value, string path)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Fault(path, null, $"\"__metadata__\" is a JSON {Describe(value.ValueKind)}, not an object of strings");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw Fault(path, null, $"\"__metadata__\".\"{item.Name}\" is a JSON {Describe(item.Value.ValueKind)}, not a string");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw Fault(path, null, $"\"__metadata__\".\"{item.Name}\" appears twice");
        }
        return metadata;
    }

    static Entry ParseEntry(string name, JsonElement value, string path, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Fault(path, name, $"is a JSON {Describe(value.ValueKind)}, not an object with dtype, shape and data_offsets");

        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Fault(path, name, "has no \"dtype\" string");
        string dtypeName = dtypeElement.GetString()!;
        if (!SafetensorsDTypeInfo.TryParse(dtypeName, out var dtype))
            throw Fault(path, name, $"has unknown dtype '{dtypeName}' (known: {SafetensorsDTypeInfo.SupportedNames})");

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Fault(path, name, "has no \"shape\" array");
        var shape = new long[shapeElement.GetArrayLength()];
        int d = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long size))
                throw Fault(path, name, $"has shape {shapeElement.GetRawText()}: dimension {d} is not an integer");
            if (size < 0)
                throw Fault(path, name, $"has shape {shapeElement.GetRawText()}: dimension {d} is negative");
            shape[d++] = size;
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Fault(path, name, "has no \"data_offsets\" array of 2 integers [begin, end]");
        if (!TryGetOffset(offsets[0], out long begin) || !TryGetOffset(offsets[1], out long end))
            throw Fault(path, name, $"has data_offsets {offsets.GetRawText()}: not 2 non-negative integers");
        if (begin > end)
            throw Fault(path, name, $"has data_offsets [{begin}, {end}]: begin is after end");

        long elements, bytes;
        try
        {
            elements = 1;
            foreach (long size in shape)
                elements = checked(elements * size);
            bytes = checked(elements * dtype.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw Fault(path, name, $"has shape {TensorInfo.FormatShape(shape)}: its byte count overflows 64 bits");
        }
        if (bytes != end - begin)
            throw Fault(path, name, $"is {dtypeName} {TensorInfo.FormatShape(shape)} ({bytes} bytes) but data_offsets [{begin}, {end}] hold {end - begin} bytes");
        if (end > dataLength)
            throw Fault(path, name, $"has data_offsets [{begin}, {end}] past the end of the data section ({dataLength} bytes; the file is truncated?)");
        return new Entry(name, dtype, shape, elements, begin, end);
    }

    static bool TryGetOffset(JsonElement element, out long offset)
    {
        offset = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out offset) && offset >= 0;
    }

    static void CheckOverlaps(List<Entry> entries, string path)
    {
        var sorted = entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            var previous = sorted[i - 1];
            var current = sorted[i];
            if (current.Begin < previous.End)
                throw Fault(path, current.Name, $"has data_offsets [{current.Begin}, {current.End}] overlapping tensor '{previous.Name}' at [{previous.Begin}, {previous.End}]");
        }
    }

    static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString().ToLowerInvariant(),
    };

    static CheckpointException Fault(string path, string? tensor, string message, Exception? inner = null) =>
        tensor == null
            ? new CheckpointException($"{path}: {message}", path, null, inner)
            : new CheckpointException($"{path}: tensor '{tensor}' {message}", path, tensor, inner);
}
