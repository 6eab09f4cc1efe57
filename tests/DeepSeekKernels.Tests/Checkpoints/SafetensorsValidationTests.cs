using System.Text;
using DeepSeekKernels.Checkpoints;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Malformed safetensors files, each refused on open with a <see cref="CheckpointException"/> whose message
/// names the file (full path) and, where there is one, the tensor at fault.
/// </summary>
public sealed class SafetensorsValidationTests : IDisposable
{
    readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Opens <paramref name="path"/>, expecting a fault that names the file, the tensor and every fragment.</summary>
    static CheckpointException AssertRefused(string path, string? tensor, params string[] fragments)
    {
        var ex = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, ex.Message);
        Assert.Equal(path, ex.FilePath);
        if (tensor != null)
        {
            Assert.Contains($"'{tensor}'", ex.Message);
            Assert.Equal(tensor, ex.TensorName);
        }
        foreach (var fragment in fragments)
            Assert.Contains(fragment, ex.Message);
        return ex;
    }

    string Raw(string header, int dataBytes = 16)
    {
        string path = _temp.File($"{Guid.NewGuid():N}.safetensors");
        SafetensorsWriter.WriteRaw(path, header, new byte[dataBytes]);
        return path;
    }

    [Fact]
    public void FileShorterThan8Bytes()
    {
        string path = _temp.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        AssertRefused(path, null, "5 bytes");
    }

    [Fact]
    public void HeaderLengthZero()
    {
        string path = _temp.File("zero.safetensors");
        SafetensorsWriter.WriteWithDeclaredLength(path, 0, new byte[32]);
        AssertRefused(path, null, "header length is 0");
    }

    [Fact]
    public void HeaderLengthPastTheEnd()
    {
        string path = _temp.File("past.safetensors");
        SafetensorsWriter.WriteWithDeclaredLength(path, 1000, Encoding.UTF8.GetBytes("{}      "));
        AssertRefused(path, null, "1000", "past the end of the file");
    }

    [Fact]
    public void HeaderLengthTooBig()
    {
        string path = _temp.File("huge.safetensors");
        SafetensorsWriter.WriteWithDeclaredLength(path, 200_000_000, Encoding.UTF8.GetBytes("{}      "));
        AssertRefused(path, null, "200000000", "limit");
        SafetensorsWriter.WriteWithDeclaredLength(path, ulong.MaxValue, Encoding.UTF8.GetBytes("{}      "));
        AssertRefused(path, null, "limit");
    }

    [Fact]
    public void HeaderNotJson() => AssertRefused(Raw("{\"w\": {\"dtype\": \"F32\", "), null, "not valid JSON");

    [Fact]
    public void HeaderJsonButNotAnObject() => AssertRefused(Raw("[1, 2, 3]"), null, "array", "not an object");

    [Fact]
    public void HeaderNotUtf8()
    {
        string path = _temp.File("latin1.safetensors");
        var header = Encoding.Latin1.GetBytes("{\"caf\u00e9\": {}}    "); // é as the single byte 0xE9
        SafetensorsWriter.WriteWithDeclaredLength(path, (ulong)header.Length, header);
        AssertRefused(path, null, "UTF-8");
    }

    [Fact]
    public void UnknownDType() =>
        AssertRefused(Raw("""{"model.w": {"dtype": "F12", "shape": [4], "data_offsets": [0, 16]}}"""), "model.w", "unknown dtype 'F12'", "BF16");

    [Fact]
    public void DTypeIsCaseSensitive() =>
        AssertRefused(Raw("""{"w": {"dtype": "bf16", "shape": [8], "data_offsets": [0, 16]}}"""), "w", "unknown dtype 'bf16'");

    [Fact]
    public void NegativeDimension() =>
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [-4, -1], "data_offsets": [0, 16]}}"""), "w", "negative");

    [Fact]
    public void FractionalDimension() =>
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [4.5], "data_offsets": [0, 16]}}"""), "w", "not an integer");

    [Theory]
    [InlineData("[0]")]
    [InlineData("[0, 16, 32]")]
    [InlineData("\"0-16\"")]
    public void DataOffsetsNotTwoIntegers(string offsets) =>
        AssertRefused(Raw($$$"""{"w": {"dtype": "F32", "shape": [4], "data_offsets": {{{offsets}}}}}"""), "w", "data_offsets");

    [Fact]
    public void DataOffsetsNegative() =>
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}"""), "w", "non-negative");

    [Fact]
    public void DataOffsetsBeginAfterEnd() =>
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}}"""), "w", "begin is after end");

    [Fact]
    public void MissingKeys()
    {
        AssertRefused(Raw("""{"w": {"shape": [4], "data_offsets": [0, 16]}}"""), "w", "dtype");
        AssertRefused(Raw("""{"w": {"dtype": "F32", "data_offsets": [0, 16]}}"""), "w", "shape");
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [4]}}"""), "w", "data_offsets");
        AssertRefused(Raw("""{"w": [0, 16]}"""), "w", "not an object");
    }

    [Fact]
    public void ByteCountDisagreesWithShape() =>
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}"""), "w", "16 bytes", "12 bytes");

    [Fact]
    public void ByteCountOverflows() =>
        AssertRefused(Raw("""{"w": {"dtype": "BF16", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}"""), "w", "overflow");

    [Fact]
    public void OffsetsOutsideTheFile() =>
        AssertRefused(Raw("""{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}}""", dataBytes: 16),
            "b", "[16, 32]", "past the end");

    [Fact]
    public void OverlappingTensors()
    {
        var ex = AssertRefused(Raw("""{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}""", dataBytes: 32),
            "b", "overlapping", "'a'");
        Assert.Contains("[8, 24]", ex.Message);
    }

    [Fact]
    public void EmptyTensorsMayShareAnOffset()
    {
        string path = Raw("""{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""");
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(2, file.Tensors.Count);
    }

    [Fact]
    public void DuplicateTensorName() =>
        AssertRefused(Raw("""{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}"""), "w", "twice");

    [Fact]
    public void MetadataMustHoldStrings()
    {
        AssertRefused(Raw("""{"__metadata__": {"format": 1}}"""), null, "__metadata__", "format");
        AssertRefused(Raw("""{"__metadata__": ["pt"]}"""), null, "__metadata__");
    }

    [Fact]
    public void TruncatedFile()
    {
        // A valid checkpoint cut short: the tensor whose bytes run past the new end is named.
        string source = Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors");
        var bytes = File.ReadAllBytes(source);
        string path = _temp.File("truncated.safetensors");
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 100).ToArray());
        AssertRefused(path, "model.norm.weight", "past the end", "truncated");

        // cut inside the header
        File.WriteAllBytes(path, bytes.AsSpan(0, 1000).ToArray());
        AssertRefused(path, null, "past the end of the file");
    }

    [Fact]
    public void AValidFileBuiltFromScratchOpens()
    {
        string path = _temp.File("ok.safetensors");
        SafetensorsWriter.Write(path, [new("a", "F32", [2], SafetensorsWriter.F32(1, 2)), new("b", "F32", [1], SafetensorsWriter.F32(3))]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1f, 2f], file.ReadAsFloat32("a"));
        Assert.Equal([3f], file.ReadAsFloat32("b"));
        Assert.Empty(file.Metadata);
    }
}
