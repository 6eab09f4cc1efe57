using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>DeepSeek's chat format, as DeepSeek-V3's chat_template renders it.</summary>
public class ChatFormatTests
{
    const string Bos = "<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>";
    const string Eos = "<\uFF5Cend\u2581of\u2581sentence\uFF5C>";

    [Fact]
    public void RendersATwoTurnConversation()
    {
        var format = new ChatFormat(TokenizerFixtures.DeepSeekV3);
        var messages = new[]
        {
            ChatMessage.System("You are helpful."),
            ChatMessage.User("What is 2+2?"),
            ChatMessage.Assistant("4"),
            ChatMessage.User("And 3+3?"),
        };
        Assert.Equal(
            Bos + "You are helpful.<\uFF5CUser\uFF5C>What is 2+2?<\uFF5CAssistant\uFF5C>4" + Eos + "<\uFF5CUser\uFF5C>And 3+3?<\uFF5CAssistant\uFF5C>",
            format.Render(messages));
        Assert.Equal(
            Bos + "You are helpful.<\uFF5CUser\uFF5C>What is 2+2?<\uFF5CAssistant\uFF5C>4" + Eos + "<\uFF5CUser\uFF5C>And 3+3?",
            format.Render(messages, addGenerationPrompt: false));
    }

    [Fact]
    public void SystemPromptsGoFirstJoinedByABlankLine()
    {
        var format = new ChatFormat(TokenizerFixtures.DeepSeekV3);
        Assert.Equal(
            Bos + "One.\n\nTwo.<\uFF5CUser\uFF5C>hi<\uFF5CAssistant\uFF5C>",
            format.Render([ChatMessage.System("One."), ChatMessage.User("hi"), ChatMessage.System("Two.")]));
        Assert.Equal(Bos + "<\uFF5CUser\uFF5C>hi<\uFF5CAssistant\uFF5C>", format.Render([ChatMessage.User("hi")]));
    }

    [Fact]
    public void RoleMarkersAreSingleAddedTokens()
    {
        var tokenizer = TokenizerFixtures.DeepSeekV3;
        var format = new ChatFormat(tokenizer);
        var ids = format.Encode([ChatMessage.User("Hello"), ChatMessage.Assistant("Hi!"), ChatMessage.User("Bye")]);
        int user = tokenizer.TokenToId(ChatFormat.UserMarker)!.Value;
        int assistant = tokenizer.TokenToId(ChatFormat.AssistantMarker)!.Value;
        Assert.Equal(128803, user);
        Assert.Equal(128804, assistant);
        Assert.Equal(
            [0, user, .. tokenizer.Encode("Hello", false), assistant, .. tokenizer.Encode("Hi!", false), 1,
             user, .. tokenizer.Encode("Bye", false), assistant],
            ids);
        Assert.Equal(format.Render([ChatMessage.User("Hello"), ChatMessage.Assistant("Hi!"), ChatMessage.User("Bye")]), tokenizer.Decode(ids));
    }

    [Fact]
    public void BadMessagesAreRejected()
    {
        var format = new ChatFormat(TokenizerFixtures.DeepSeekV3);
        var error = Assert.Throws<ArgumentException>(() => format.Render([ChatMessage.User("hi"), new ChatMessage("tool", "42")]));
        Assert.Contains("message 1 (tool) calls tools or answers a call; render tool use with the model's own chat template", error.Message);
        Assert.Equal("messages", error.ParamName);
        var calls = Assert.Throws<ArgumentException>(() => format.Render([ChatMessage.User("hi"), ChatMessage.AssistantCalls(new ToolCall("f", "{}"))]));
        Assert.Contains("ChatTemplate.FromFolder", calls.Message);
        var role = Assert.Throws<ArgumentException>(() => format.Render([new ChatMessage("critic", "x")]));
        Assert.Contains("message 0 has the role \"critic\"", role.Message);
        Assert.Throws<ArgumentException>(() => format.Render([new ChatMessage("User", "hi")])); // roles are lower case
        Assert.Throws<ArgumentException>(() => format.Render([new ChatMessage("user", null!)]));
        Assert.Throws<ArgumentException>(() => format.Render([null!]));
        Assert.Throws<ArgumentNullException>(() => format.Render(null!));
        Assert.Throws<ArgumentNullException>(() => new ChatFormat(null!));
        var noBos = Assert.Throws<ArgumentException>(() => new ChatFormat(TokenizerFixtures.Get("qwen2_5")));
        Assert.Contains("no BOS token", noBos.Message);
    }
}
