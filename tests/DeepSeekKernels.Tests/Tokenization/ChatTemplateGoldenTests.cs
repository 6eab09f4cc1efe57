using System.Text.Json;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// ChatFormat against DeepSeek-V3's own chat_template, rendered by Hugging Face's Jinja engine
/// (scripts/tokenizer-golden/chat.js writes the goldens): every conversation, with and without the generation
/// prompt, gives the same text, character for character.
/// </summary>
public class ChatTemplateGoldenTests
{
    sealed record Golden(ChatMessage[] Messages, bool AddGenerationPrompt, string Text);

    static Golden[] Read()
    {
        var lines = File.ReadAllLines(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3.chat.golden.jsonl"));
        return [.. lines.Where(l => l.Length > 0).Select(line =>
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var messages = root.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!))
                .ToArray();
            return new Golden(messages, root.GetProperty("add_generation_prompt").GetBoolean(), root.GetProperty("text").GetString()!);
        })];
    }

    [Fact]
    public void RendersEveryConversationAsTheTemplateDoes()
    {
        var goldens = Read();
        Assert.True(goldens.Length >= 20, $"{goldens.Length} goldens");
        var format = new ChatFormat(TokenizerFixtures.DeepSeekV3);
        foreach (var (golden, i) in goldens.Select((g, i) => (g, i)))
        {
            string ours = format.Render(golden.Messages, golden.AddGenerationPrompt);
            Assert.True(ours == golden.Text,
                $"conversation {i + 1} (add_generation_prompt {golden.AddGenerationPrompt}):\n  template: {JsonSerializer.Serialize(golden.Text)}\n  ours:     {JsonSerializer.Serialize(ours)}");
        }
    }
}
