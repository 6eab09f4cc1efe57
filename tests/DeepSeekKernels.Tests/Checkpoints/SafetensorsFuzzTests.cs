using System.Buffers.Binary;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Damaged safetensors files beyond the hand-written cases of <see cref="SafetensorsValidationTests"/>: a
/// valid file (several dtypes, metadata) damaged in many seeded random ways (bytes of the header changed,
/// inserted or removed, the file cut short, the length prefix rewritten). Opening it and reading every
/// tensor must either work or throw <see cref="CheckpointException"/> naming the file: never another
/// exception, never a crash, never a read outside the mapping.
/// </summary>
public sealed class SafetensorsFuzzTests : IDisposable
{
    const int Cases = 2000;
    readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    static byte[] ValidFile(string path)
    {
        SafetensorsWriter.Write(path,
        [
            new TensorToWrite("model.embed_tokens.weight", "BF16", [4, 8], new byte[4 * 8 * 2]),
            new TensorToWrite("model.layers.0.mlp.gate_proj.weight", "F8_E4M3", [16, 8], new byte[16 * 8]),
            new TensorToWrite("model.layers.0.mlp.gate_proj.weight_scale_inv", "F32", [1, 1], SafetensorsWriter.F32(0.5f)),
            new TensorToWrite("model.norm.weight", "F32", [8], SafetensorsWriter.F32(1, 2, 3, 4, 5, 6, 7, 8)),
            new TensorToWrite("position_ids", "I64", [3], new byte[24]),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void EveryDamagedFileOpensOrIsRefusedWithACheckpointException()
    {
        byte[] valid = ValidFile(_temp.File("valid.safetensors"));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        var random = new Random(20261123);
        var tally = new FuzzTally("damaged safetensors files");
        for (int i = 0; i < Cases; i++)
        {
            var (damaged, what) = Damage(valid, headerLength, random);
            string path = _temp.File($"case{i}.safetensors");
            File.WriteAllBytes(path, damaged);
            tally.Run(i, what, () =>
            {
                using var file = SafetensorsFile.Open(path);
                foreach (var tensor in file.Tensors.Values)
                {
                    var bytes = file.GetBytes(tensor);
                    Assert.Equal(tensor.ByteLength, bytes.Length);
                    if (tensor.DType is SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16 or SafetensorsDType.F8_E4M3)
                        file.ReadAsFloat32(tensor, new float[checked((int)tensor.ElementCount)]);
                }
            }, e => e is CheckpointException c && c.FilePath == path);
        }
        tally.AssertClean();
    }

    static readonly byte[] JsonBytes = [.. "{}[],:\"0123456789-e.\\ "u8, 0xFF, 0x00];

    static (byte[] Bytes, string What) Damage(byte[] valid, int headerLength, Random random)
    {
        var bytes = (byte[])valid.Clone();
        int headerEnd = 8 + headerLength;
        switch (random.Next(6))
        {
            case 0: // change one to four header bytes to arbitrary values
            {
                int n = random.Next(1, 5);
                for (int k = 0; k < n; k++)
                    bytes[8 + random.Next(headerLength)] = (byte)random.Next(256);
                return (bytes, $"{n} header bytes changed");
            }
            case 1: // change a digit of the header to another digit (offsets, shapes)
            {
                var digits = Enumerable.Range(8, headerLength).Where(p => bytes[p] is >= (byte)'0' and <= (byte)'9').ToArray();
                int at = digits[random.Next(digits.Length)];
                bytes[at] = (byte)('0' + random.Next(10));
                return (bytes, $"digit at {at} changed");
            }
            case 2: // cut the file short
            {
                int length = random.Next(bytes.Length);
                return (bytes[..length], $"cut to {length} bytes");
            }
            case 3: // rewrite the header-length prefix
            {
                ulong length = random.Next(3) switch
                {
                    0 => (ulong)random.Next(0, bytes.Length * 2),
                    1 => (ulong)headerLength + (ulong)random.Next(-8, 9),
                    _ => (ulong)random.NextInt64(),
                };
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
                return (bytes, $"header length set to {length}");
            }
            case 4: // remove a run of header bytes (the length prefix still counts them)
            {
                int at = 8 + random.Next(headerLength), n = random.Next(1, 8);
                n = Math.Min(n, headerEnd - at);
                return ([.. bytes[..at], .. bytes[(at + n)..]], $"{n} header bytes removed at {at}");
            }
            default: // insert bytes into the header and fix the prefix, so the JSON itself is what is damaged
            {
                int at = 8 + random.Next(headerLength), n = random.Next(1, 6);
                var inserted = Enumerable.Range(0, n).Select(_ => JsonBytes[random.Next(JsonBytes.Length)]).ToArray();
                byte[] result = [.. bytes[..at], .. inserted, .. bytes[at..]];
                BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)(headerLength + n));
                return (result, $"{n} bytes inserted at {at}");
            }
        }
    }
}
