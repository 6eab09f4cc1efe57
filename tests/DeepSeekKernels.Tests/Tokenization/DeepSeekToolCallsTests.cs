using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary><see cref="DeepSeekToolCalls"/>: the calls a DeepSeek template lays out are read back as they went in.</summary>
public class DeepSeekToolCallsTests
{
    const string Eos = "<\uFF5Cend\u2581of\u2581sentence\uFF5C>";

    /// <summary>
    /// What DeepSeek-V3's own template renders for an assistant turn of two calls, read back: the two calls, in order,
    /// arguments byte for byte (newlines and braces inside included), type "function".
    /// </summary>
    [Fact]
    public void CallsRenderedByTheV3TemplateReadBack()
    {
        var template = ChatTemplate.FromFolder(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3"), TokenizerFixtures.DeepSeekV3)!;
        var calls = new[] { new ToolCall("get_weather", "{\"city\": \"Paris\"}"), new ToolCall("search", "{\n  \"q\": \"a } b\"\n}") };
        string prompt = template.Render([ChatMessage.User("q"), ChatMessage.AssistantCalls(calls)], addGenerationPrompt: false);
        string reply = prompt[(prompt.IndexOf(DeepSeekToolCalls.CallsBegin, StringComparison.Ordinal))..]; // what the model writes
        var (content, parsed, complete) = DeepSeekToolCalls.Parse(reply, Eos);
        Assert.Equal("", content);
        Assert.True(complete);
        Assert.Equal(calls, parsed);
    }

    [Fact]
    public void TextBeforeTheCallsIsTheContent()
    {
        string reply = "Let me check." + DeepSeekToolCalls.CallsBegin + DeepSeekToolCalls.CallBegin + "function" + DeepSeekToolCalls.Separator
            + "f\n```json\n{}\n```" + DeepSeekToolCalls.CallEnd + DeepSeekToolCalls.CallsEnd + Eos;
        var (content, calls, complete) = DeepSeekToolCalls.Parse(reply, Eos);
        Assert.Equal("Let me check.", content);
        Assert.Equal([new ToolCall("f", "{}")], calls);
        Assert.True(complete);
    }

    [Fact]
    public void TheLaterLayoutNameSeparatorArgumentsReadsToo()
    {
        string reply = DeepSeekToolCalls.CallsBegin + DeepSeekToolCalls.CallBegin + "get_time" + DeepSeekToolCalls.Separator + "{\"tz\": \"UTC\"}"
            + DeepSeekToolCalls.CallEnd + DeepSeekToolCalls.CallsEnd;
        var (_, calls, complete) = DeepSeekToolCalls.Parse(reply);
        Assert.Equal([new ToolCall("get_time", "{\"tz\": \"UTC\"}")], calls);
        Assert.True(complete);
    }

    [Fact]
    public void AReplyCutInsideACallIsIncompleteAndKeepsTheFinishedOnes()
    {
        string first = DeepSeekToolCalls.CallBegin + "function" + DeepSeekToolCalls.Separator + "a\n```json\n{}\n```" + DeepSeekToolCalls.CallEnd;
        string reply = DeepSeekToolCalls.CallsBegin + first + "\n" + DeepSeekToolCalls.CallBegin + "function" + DeepSeekToolCalls.Separator + "b\n```json\n{\"x\":";
        var (_, calls, complete) = DeepSeekToolCalls.Parse(reply);
        Assert.False(complete);
        Assert.Equal([new ToolCall("a", "{}")], calls);
    }

    [Fact]
    public void PlainTextHasNoCalls()
    {
        var (content, calls, complete) = DeepSeekToolCalls.Parse("just text" + Eos, Eos);
        Assert.Equal("just text", content);
        Assert.Empty(calls);
        Assert.True(complete);
    }
}
