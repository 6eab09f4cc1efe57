using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>R1's reasoning mode: the generation prompt opens a think block, and the history keeps only the answers.</summary>
public class ChatFormatReasoningTests
{
    const string Bos = "<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>";
    const string Eos = "<\uFF5Cend\u2581of\u2581sentence\uFF5C>";

    [Fact]
    public void TheAssistantTurnOpensWithThinkAndEarlierReasoningIsDropped()
    {
        var format = new ChatFormat(TokenizerFixtures.DeepSeekV3, reasoning: true);
        var messages = new[]
        {
            ChatMessage.User("What is 2+2?"),
            ChatMessage.Assistant("<think>\nTwo and two.\n</think>\n\n4"),
            ChatMessage.User("And 3+3?"),
        };
        Assert.Equal(
            Bos + "<\uFF5CUser\uFF5C>What is 2+2?<\uFF5CAssistant\uFF5C>\n\n4" + Eos + "<\uFF5CUser\uFF5C>And 3+3?<\uFF5CAssistant\uFF5C><think>\n",
            format.Render(messages));
    }

    [Fact]
    public void ReasoningModeIsReadFromTheChatTemplate()
    {
        string folder = Directory.CreateTempSubdirectory("dsk-chat").FullName;
        Assert.False(ChatFormat.TemplateStartsReasoning(folder)); // no tokenizer_config.json
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"),
            "{\"chat_template\": \"{% if add_generation_prompt %}{{'<\uFF5CAssistant\uFF5C><think>\\\\n'}}{% endif %}\"}");
        Assert.True(ChatFormat.TemplateStartsReasoning(folder));
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"),
            "{\"chat_template\": \"{% if add_generation_prompt %}{{'<\uFF5CAssistant\uFF5C>'}}{% endif %}\"}");
        Assert.False(ChatFormat.TemplateStartsReasoning(folder));
        // DeepSeek-V3's own template does not reason
        Assert.False(ChatFormat.TemplateStartsReasoning(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3")));
    }
}
