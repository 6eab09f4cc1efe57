using System.Buffers.Binary;
using System.Runtime.InteropServices;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>Reading valid safetensors files: the fixtures' weights and golden outputs, and every dtype.</summary>
public class SafetensorsFileTests
{
    public static TheoryData<string> Fixtures() => new(CheckpointFixtures.Names);

    [Theory, MemberData(nameof(Fixtures))]
    public void GoldenFilesHoldInt64IdsAndFloat32Logits(string name)
    {
        var config = ModelConfig.Load(CheckpointFixtures.HfTiny(name));
        using var golden = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny(name), "golden.safetensors"));

        var inputIds = golden.GetTensor("input_ids");
        Assert.Equal(SafetensorsDType.I64, inputIds.DType);
        Assert.Equal([24L], inputIds.Shape);
        var ids = golden.ReadAsInt64("input_ids");
        Assert.Equal(24, ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, config.VocabSize - 1));
        Assert.True(ids.Distinct().Count() > 1, "the prompt ids are not all the same");
        Assert.All(golden.ReadAsInt64("greedy_ids"), id => Assert.InRange(id, 0, config.VocabSize - 1));

        var logits = golden.GetTensor("logits");
        Assert.Equal(SafetensorsDType.F32, logits.DType);
        Assert.Equal([24L, config.VocabSize], logits.Shape);
        var values = new float[logits.ElementCount];
        golden.ReadAsFloat32(logits, values);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.True(values.Any(v => v != 0), "logits are not all zero");
        Assert.Equal(MemoryMarshal.Cast<byte, float>(golden.GetBytes(logits)).ToArray(), values);
    }

    [Fact]
    public void HeaderFieldsAreAbsoluteAndComplete()
    {
        using var file = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors"));
        Assert.Equal(Path.GetFullPath(Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors")), file.Path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(new FileInfo(file.Path).Length, file.Length);

        var lmHead = file.Tensors["lm_head.weight"]; // the first tensor in the data section
        Assert.Equal(SafetensorsDType.BF16, lmHead.DType);
        Assert.Equal([512L, 128], lmHead.Shape);
        Assert.Equal(512 * 128, lmHead.ElementCount);
        Assert.Equal(512 * 128 * 2, lmHead.ByteLength);
        Assert.Equal(8 + file.HeaderLength, lmHead.ByteOffset);
        Assert.Same(file, lmHead.File);
        Assert.Equal("[512, 128]", lmHead.ShapeText);

        // the tensors tile the data section exactly
        Assert.Equal(file.Length - 8 - file.HeaderLength, file.Tensors.Values.Sum(t => t.ByteLength));
        var lastByte = file.Tensors.Values.Max(t => t.ByteOffset + t.ByteLength);
        Assert.Equal(file.Length, lastByte);
    }

    [Fact]
    public void ReadAsFloat32OfBf16IsTheExactWidening()
    {
        using var file = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("deepseek_v3"), "model.safetensors"));
        var tensor = file.Tensors["model.embed_tokens.weight"];
        var raw = file.GetBytes(tensor);
        var values = new float[tensor.ElementCount];
        file.ReadAsFloat32(tensor, values);
        for (int i = 0; i < values.Length; i++)
        {
            uint expected = (uint)BinaryPrimitives.ReadUInt16LittleEndian(raw.Slice(2 * i)) << 16;
            Assert.Equal(expected, BitConverter.SingleToUInt32Bits(values[i]));
        }
        Assert.Contains(values, v => v != 0);

        var copied = new BFloat16[tensor.ElementCount];
        file.CopyTo<BFloat16>(tensor, copied);
        for (int i = 0; i < copied.Length; i++)
            Assert.Equal(values[i], copied[i].ToSingle());
    }

    [Fact]
    public void ReadAsFloat32OfF32IsACopy()
    {
        using var file = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("deepseek_v3"), "model.safetensors"));
        var bias = file.Tensors["model.layers.1.mlp.gate.e_score_correction_bias"];
        Assert.Equal(SafetensorsDType.F32, bias.DType);
        var values = file.ReadAsFloat32(bias.Name);
        var copied = new float[bias.ElementCount];
        file.CopyTo<float>(bias, copied);
        Assert.Equal(copied, values);
        Assert.Equal(MemoryMarshal.Cast<byte, float>(file.GetBytes(bias)).ToArray(), values);
    }

    [Fact]
    public void EveryDTypeReadsAndConverts()
    {
        using var temp = new TempFolder();
        string path = temp.File("dtypes.safetensors");
        var halves = new[] { (Half)1.5f, (Half)(-0.25f), Half.MaxValue, Half.Epsilon, Half.NaN, (Half)0f };
        var e4m3 = Enumerable.Range(0, 256).Select(b => (byte)b).ToArray();
        var e5m2 = new byte[] { 0x3C, 0xBC, 0x7B, 0x01, 0x7C, 0x00 }; // 1, -1, 57344, 2^-16, +inf, 0
        SafetensorsWriter.Write(path,
        [
            new("f16", "F16", [2, 3], MemoryMarshal.AsBytes(halves.AsSpan()).ToArray()),
            new("e4m3", "F8_E4M3", [16, 16], e4m3),
            new("e5m2", "F8_E5M2", [6], e5m2),
            new("f64", "F64", [1], BitConverter.GetBytes(2.5)),
            new("i32", "I32", [3], MemoryMarshal.AsBytes(new[] { -7, 0, int.MaxValue }.AsSpan()).ToArray()),
            new("i16", "I16", [2], MemoryMarshal.AsBytes(new short[] { -300, 300 }.AsSpan()).ToArray()),
            new("i8", "I8", [2], [0xFF, 0x05]),
            new("u8", "U8", [2], [0xFF, 0x05]),
            new("bool", "BOOL", [3], [1, 0, 1]),
            new("i64", "I64", [2], MemoryMarshal.AsBytes(new[] { long.MinValue, 42L }.AsSpan()).ToArray()),
            new("scalar", "F32", [], SafetensorsWriter.F32(3.25f)),
            new("empty", "BF16", [0, 4], []),
        ], new Dictionary<string, string> { ["format"] = "pt", ["note"] = "é" });

        using var file = SafetensorsFile.Open(path);
        Assert.Equal("é", file.Metadata["note"]);

        var f16 = file.ReadAsFloat32("f16");
        Assert.Equal(halves.Select(h => (float)h).ToArray(), f16);

        var decoded = file.ReadAsFloat32("e4m3");
        for (int b = 0; b < 256; b++)
        {
            float expected = Float8E4M3.FromBits((byte)b).ToSingle();
            Assert.True(float.IsNaN(expected) ? float.IsNaN(decoded[b]) : expected == decoded[b], $"e4m3 0x{b:X2}: expected {expected}, got {decoded[b]}");
        }
        Assert.Equal(448f, decoded[0x7E]);
        Assert.Equal([1f, -1f, 57344f, MathF.ScaleB(1, -16), float.PositiveInfinity, 0f], file.ReadAsFloat32("e5m2"));

        Assert.Equal([-7L, 0, int.MaxValue], file.ReadAsInt64("i32"));
        Assert.Equal([-300L, 300], file.ReadAsInt64("i16"));
        Assert.Equal([-1L, 5], file.ReadAsInt64("i8"));
        Assert.Equal([255L, 5], file.ReadAsInt64("u8"));
        Assert.Equal([1L, 0, 1], file.ReadAsInt64("bool"));
        Assert.Equal([long.MinValue, 42L], file.ReadAsInt64("i64"));

        var f64 = new double[1];
        file.CopyTo<double>(file.Tensors["f64"], f64);
        Assert.Equal(2.5, f64[0]);

        var scalar = file.Tensors["scalar"];
        Assert.Empty(scalar.Shape);
        Assert.Equal(1, scalar.ElementCount);
        Assert.Equal([3.25f], file.ReadAsFloat32("scalar"));

        var empty = file.Tensors["empty"];
        Assert.Equal(0, empty.ElementCount);
        Assert.Equal(0, file.GetBytes(empty).Length);
        Assert.Empty(file.ReadAsFloat32("empty"));
    }

    [Fact]
    public void LargeTensorsConvertInChunksCorrectly()
    {
        using var temp = new TempFolder();
        string path = temp.File("large.safetensors");
        int count = (1 << 20) * 2 + 37; // more than one conversion chunk, and a ragged tail
        var bits = new ushort[count];
        var random = new Random(7);
        for (int i = 0; i < count; i++)
            bits[i] = BFloat16.FromSingle(random.NextSingle() * 8 - 4).Bits;
        SafetensorsWriter.Write(path, [new("w", "BF16", [count], MemoryMarshal.AsBytes(bits.AsSpan()).ToArray())]);

        using var file = SafetensorsFile.Open(path);
        var values = file.ReadAsFloat32("w");
        for (int i = 0; i < count; i++)
            Assert.Equal((uint)bits[i] << 16, BitConverter.SingleToUInt32Bits(values[i]));
    }

    [Fact]
    public void WrongElementTypesAndShortDestinationsAreRefused()
    {
        using var file = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors"));
        var norm = file.Tensors["model.norm.weight"]; // BF16 [128]

        var wrongSize = Assert.Throws<ArgumentException>(() => file.CopyTo<float>(norm, new float[128]));
        Assert.Contains("model.norm.weight", wrongSize.Message);
        Assert.Contains("BF16", wrongSize.Message);

        var tooShort = Assert.Throws<ArgumentException>(() => file.ReadAsFloat32(norm, new float[127]));
        Assert.Equal("destination", tooShort.ParamName);
        Assert.Throws<ArgumentException>(() => file.CopyTo<BFloat16>(norm, new BFloat16[127]));

        var notInteger = Assert.Throws<CheckpointException>(() => file.ReadAsInt64(norm, new long[128]));
        Assert.Contains("model.norm.weight", notInteger.Message);
        Assert.Contains(file.Path, notInteger.Message);

        using var golden = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("llama"), "golden.safetensors"));
        var notFloat = Assert.Throws<CheckpointException>(() => golden.ReadAsFloat32("input_ids"));
        Assert.Contains("input_ids", notFloat.Message);
        Assert.Contains("I64", notFloat.Message);

        var missing = Assert.Throws<CheckpointException>(() => golden.GetTensor("nope"));
        Assert.Contains("'nope'", missing.Message);
        Assert.Contains(golden.Path, missing.Message);

        var foreign = Assert.Throws<ArgumentException>(() => golden.GetBytes(norm));
        Assert.Contains("model.norm.weight", foreign.Message);
    }

    [Fact]
    public void ByteRangesOfATensor()
    {
        using var file = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors"));
        var norm = file.Tensors["model.norm.weight"];
        var all = file.GetBytes(norm).ToArray();
        Assert.Equal(all.AsSpan(10, 100).ToArray(), file.GetBytes(norm, 10, 100).ToArray());
        Assert.Equal(0, file.GetBytes(norm, norm.ByteLength, 0).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => file.GetBytes(norm, 200, 57));
        Assert.Throws<ArgumentOutOfRangeException>(() => file.GetBytes(norm, -1, 1));
    }

    [Fact]
    public void ReadsAfterDisposeAreRefused()
    {
        var file = SafetensorsFile.Open(Path.Combine(CheckpointFixtures.HfTiny("llama"), "model.safetensors"));
        var norm = file.Tensors["model.norm.weight"];
        file.Dispose();
        file.Dispose(); // twice is fine
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes(norm).Length);
        Assert.Throws<ObjectDisposedException>(() => file.ReadAsFloat32(norm, new float[128]));
    }

    [Fact]
    public void AMissingFileIsACheckpointErrorNamingIt()
    {
        using var temp = new TempFolder();
        string path = temp.File("absent.safetensors");
        var ex = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Equal(path, ex.FilePath);
    }
}
