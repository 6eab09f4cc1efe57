using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>The embedded dsv3-pydoc-tiny model's tokenizer against the model's own samples and golden input.</summary>
public class EmbeddedModelTokenizerTests
{
    sealed record Sample(string Prompt, int[] GreedyIds, string Text);

    static Sample[] Samples()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.PydocTiny, "samples.json")));
        return document.RootElement.EnumerateArray().Select(s => new Sample(
            s.GetProperty("prompt").GetString()!,
            s.GetProperty("greedy_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            s.GetProperty("text").GetString()!)).ToArray();
    }

    [Fact]
    public void GreedyContinuationsDecodeToTheSampleText()
    {
        var tokenizer = TokenizerFixtures.Pydoc;
        var samples = Samples();
        Assert.NotEmpty(samples);
        foreach (var sample in samples)
        {
            Assert.Equal(sample.Text, tokenizer.Decode(sample.GreedyIds));
            var decoder = tokenizer.CreateStreamingDecoder();
            Assert.Equal(sample.Text, string.Concat(sample.GreedyIds.Select(decoder.Append)) + decoder.Flush());
        }
    }

    [Fact]
    public void PromptsEncodeAfterBos()
    {
        var tokenizer = TokenizerFixtures.Pydoc;
        Assert.Equal(0, tokenizer.BosId);
        Assert.Equal(1, tokenizer.EosId);
        foreach (var sample in Samples())
        {
            var ids = tokenizer.Encode(sample.Prompt);
            Assert.Equal(0, ids[0]);
            Assert.Equal(tokenizer.Encode(sample.Prompt, addSpecialTokens: false), ids[1..]);
            Assert.Equal(sample.Prompt, tokenizer.Decode(ids, skipSpecialTokens: true));
        }
    }

    [Fact]
    public void GoldenInputIdsAreBosPlusTheEncodedSentence()
    {
        var tokenizer = TokenizerFixtures.Pydoc;
        long[] inputIds = ReadInt64Tensor(Path.Combine(TokenizerFixtures.PydocTiny, "golden.safetensors"), "input_ids");
        var ids = inputIds.Select(x => checked((int)x)).ToArray();
        Assert.True(ids.Length > 2);
        Assert.Equal(tokenizer.BosId, ids[0]);
        string sentence = tokenizer.Decode(ids, skipSpecialTokens: true);
        Assert.DoesNotContain('\uFFFD', sentence);
        Assert.Equal(ids, tokenizer.Encode(sentence));
    }

    /// <summary>One int64 tensor of a safetensors file: 8-byte little-endian header length, JSON header, raw data.</summary>
    static long[] ReadInt64Tensor(string path, string name)
    {
        byte[] file = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(file);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(file, 8, checked((int)headerLength)));
        var tensor = header.RootElement.GetProperty(name);
        Assert.Equal("I64", tensor.GetProperty("dtype").GetString());
        var offsets = tensor.GetProperty("data_offsets");
        int begin = checked((int)(8 + headerLength + offsets[0].GetInt64()));
        int end = checked((int)(8 + headerLength + offsets[1].GetInt64()));
        var values = new long[(end - begin) / 8];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(begin + 8 * i));
        return values;
    }
}
