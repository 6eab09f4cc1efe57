using System.Text.Json;
using DeepSeekKernels.Tokenization;
using DeepSeekKernels.Tokenization.Templates;

namespace DeepSeekKernels.Tests.Tokenization;

/// <summary>
/// <see cref="ChatTemplate"/> against Jinja2 itself in transformers' configuration (scripts/chat-template-golden/render.py
/// wrote the goldens): DeepSeek-V3's own template and three written for these tests (DeepSeek's format with tools in the
/// system prompt, Qwen2.5-style tool tags, and one exercising macros, namespaces, loop controls and variables, filters,
/// tests, slicing, string and dict methods, arithmetic, tojson with indent, whitespace control and raise_exception), over
/// plain conversations and conversations with tool calls and tool outputs, with and without tools and the generation
/// prompt: the same text character for character, or the same raised error.
/// </summary>
public class ChatTemplateTests
{
    static readonly string TemplatesFolder = Path.Combine(Support.RepositoryRoot.Path, "scripts", "chat-template-golden", "templates");

    sealed record Golden(string Template, ChatMessage[] Messages, string? Tools, bool AddGenerationPrompt, string Bos, string Eos, string? Text, string? Error);

    static Golden[] Read() => [.. File.ReadAllLines(Path.Combine(TokenizerFixtures.Directory, "chat_templates.golden.jsonl"))
        .Where(l => l.Length > 0).Select(line =>
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var messages = root.GetProperty("messages").EnumerateArray().Select(m => new ChatMessage(m.GetProperty("role").GetString()!,
                m.GetProperty("content").GetString())
            {
                ToolCalls = m.TryGetProperty("tool_calls", out var calls)
                    ? [.. calls.EnumerateArray().Select(c => new ToolCall(c.GetProperty("function").GetProperty("name").GetString()!,
                        c.GetProperty("function").GetProperty("arguments").GetString()!, c.TryGetProperty("id", out var id) ? id.GetString() : null))]
                    : null,
                ToolCallId = m.TryGetProperty("tool_call_id", out var callId) ? callId.GetString() : null,
            }).ToArray();
            var tools = root.GetProperty("tools");
            return new Golden(root.GetProperty("template").GetString()!, messages, tools.ValueKind == JsonValueKind.Null ? null : tools.GetRawText(),
                root.GetProperty("add_generation_prompt").GetBoolean(), root.GetProperty("bos_token").GetString()!, root.GetProperty("eos_token").GetString()!,
                root.TryGetProperty("text", out var text) ? text.GetString() : null, root.TryGetProperty("error", out var error) ? error.GetString() : null);
        })];

    static string TemplateSource(string name) => name == "deepseek_v3"
        ? JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3", "tokenizer_config.json"))).RootElement.GetProperty("chat_template").GetString()!
        : File.ReadAllText(Path.Combine(TemplatesFolder, name + ".jinja"));

    [Fact]
    public void RendersEveryCaseAsJinja2Does()
    {
        var goldens = Read();
        Assert.True(goldens.Length >= 100, $"{goldens.Length} goldens");
        Assert.Equal(4, goldens.Select(g => g.Template).Distinct().Count());
        var templates = new Dictionary<string, ChatTemplate>();
        var failures = new List<string>();
        foreach (var (golden, i) in goldens.Select((g, i) => (g, i)))
        {
            if (!templates.TryGetValue(golden.Template, out var template))
                templates[golden.Template] = template = new ChatTemplate(TemplateSource(golden.Template), golden.Bos, golden.Eos);
            string label = $"case {i + 1} ({golden.Template}, {golden.Messages.Length} messages, tools {golden.Tools != null}, generation prompt {golden.AddGenerationPrompt})";
            try
            {
                string ours = template.Render(golden.Messages, golden.AddGenerationPrompt, golden.Tools);
                if (golden.Text is null)
                    failures.Add($"{label}: Jinja2 raised \"{golden.Error}\", ours rendered {JsonSerializer.Serialize(ours)}");
                else if (ours != golden.Text)
                    failures.Add($"{label}:\n  Jinja2: {JsonSerializer.Serialize(golden.Text)}\n  ours:   {JsonSerializer.Serialize(ours)}");
            }
            catch (ChatTemplateException e)
            {
                if (golden.Error is null || !e.Message.Contains(golden.Error, StringComparison.Ordinal))
                    failures.Add($"{label}: ours raised {e.Message}; Jinja2 {(golden.Error is null ? "rendered" : $"raised \"{golden.Error}\"")}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {goldens.Length} differ:\n" + string.Join("\n", failures.Take(8)));
    }

    /// <summary>DeepSeek-V3's template over the 30 renders of @huggingface/jinja (transformers.js's engine) that ChatFormat is checked against.</summary>
    [Fact]
    public void TheDeepSeekV3TemplateMatchesTheJavaScriptEngineToo()
    {
        var template = ChatTemplate.FromFolder(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3"), TokenizerFixtures.DeepSeekV3)!;
        var lines = File.ReadAllLines(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3.chat.golden.jsonl")).Where(l => l.Length > 0).ToArray();
        Assert.True(lines.Length >= 20, $"{lines.Length} goldens");
        foreach (var line in lines)
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var messages = root.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString())).ToArray();
            Assert.Equal(root.GetProperty("text").GetString(), template.Render(messages, root.GetProperty("add_generation_prompt").GetBoolean()));
        }
    }

    /// <summary>The hand-written <see cref="ChatFormat"/> and DeepSeek-V3's template agree on every conversation ChatFormat takes.</summary>
    [Fact]
    public void TheDeepSeekV3TemplateAgreesWithChatFormat()
    {
        var template = ChatTemplate.FromFolder(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3"), TokenizerFixtures.DeepSeekV3)!;
        Assert.Equal("<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>", template.BosToken);
        var format = new ChatFormat(TokenizerFixtures.DeepSeekV3);
        ChatMessage[][] conversations =
        [
            [ChatMessage.User("hi")],
            [ChatMessage.System("s"), ChatMessage.User("q"), ChatMessage.Assistant("a"), ChatMessage.System("t"), ChatMessage.User("q2")],
            [ChatMessage.Assistant("first"), ChatMessage.User("u")],
        ];
        foreach (var messages in conversations)
            foreach (bool add in new[] { true, false })
                Assert.Equal(format.Render(messages, add), template.Render(messages, add));
    }

    [Theory]
    [InlineData("{% if x %}", "the template ends before '{% endif %}'", "line 1, column 11")]
    [InlineData("a\n{% for x in %}", "expected an expression, found '%}'", "line 2, column 13")]
    [InlineData("{% include 'x' %}", "the statement '{% include %}' is not supported", "line 1, column 1")]
    [InlineData("{{ x | frobnicate }}", null, null)]
    [InlineData("{{ 'a' ", "a tag is not closed", null)]
    [InlineData("{% endfor %}", "unexpected '{% endfor %}'", null)]
    [InlineData("{% set x %}y{% endset %}", "block assignments", null)]
    public void UnsupportedOrMalformedTemplatesAreRefusedWithTheirPlace(string source, string? fragment, string? place)
    {
        if (fragment is null)
        {
            // a filter is looked up when it runs: an unknown one fails the render, naming it
            var template = new ChatTemplate(source, "", "");
            var e = Assert.Throws<ChatTemplateException>(() => template.Render([ChatMessage.User("x")]));
            Assert.Contains("the filter 'frobnicate' is not supported", e.Message, StringComparison.Ordinal);
            return;
        }
        var error = Assert.Throws<ChatTemplateException>(() => new ChatTemplate(source, "", ""));
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        if (place != null)
            Assert.Contains(place, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RenderErrorsNameTheirCause()
    {
        var undefined = new ChatTemplate("{{ messages[0].nope.deeper }}", "", "");
        var e = Assert.Throws<ChatTemplateException>(() => undefined.Render([ChatMessage.User("x")]));
        Assert.Contains("'nope' is undefined", e.Message, StringComparison.Ordinal);
        var raised = new ChatTemplate("{{ raise_exception('only user turns') }}", "", "");
        Assert.Contains("the template raised: only user turns", Assert.Throws<ChatTemplateException>(() => raised.Render([])).Message, StringComparison.Ordinal);
        var typeError = new ChatTemplate("{{ 1 + 'a' }}", "", "");
        Assert.Contains("unsupported operand types for +: an integer and a string", Assert.Throws<ChatTemplateException>(() => typeError.Render([])).Message, StringComparison.Ordinal);
        var recursive = new ChatTemplate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "", "");
        Assert.Contains("more than 64 calls deep", Assert.Throws<ChatTemplateException>(() => recursive.Render([])).Message, StringComparison.Ordinal);
        var noArguments = new ChatTemplate("{{ 'abc'.startswith() }}", "", "");
        Assert.Contains("the chat template failed", Assert.Throws<ChatTemplateException>(() => noArguments.Render([])).Message, StringComparison.Ordinal);
        var huge = new ChatTemplate("{{ range(10 ** 12) | length }}", "", "");
        Assert.Contains("more than 1,000,000 numbers", Assert.Throws<ChatTemplateException>(() => huge.Render([])).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => raised.Render([], toolsJson: "{\"not\": \"an array\"}"));
        Assert.Throws<ArgumentException>(() => raised.Render([], toolsJson: "[oops"));
    }

    [Fact]
    public void AFolderWithoutATemplateHasNone()
    {
        Assert.Null(ChatTemplate.FromFolder(Path.Combine(Support.RepositoryRoot.Path, "src", "DeepSeekKernels.Cli", "models", "dsv3-pydoc-tiny"), TokenizerFixtures.DeepSeekV3));
        Assert.Null(ChatTemplate.FromFolder(Path.GetTempPath(), TokenizerFixtures.DeepSeekV3));
    }
}

/// <summary>
/// Seeded damage to the test templates (characters deleted, repeated, swapped, or replaced by Jinja's punctuation): each
/// damaged template parses and renders, or is refused with a <see cref="ChatTemplateException"/>; never another exception.
/// </summary>
public class ChatTemplateFuzzTests
{
    [Fact]
    public void EveryDamagedTemplateRendersOrIsRefusedClearly()
    {
        string folder = Path.Combine(Support.RepositoryRoot.Path, "scripts", "chat-template-golden", "templates");
        var sources = Directory.GetFiles(folder, "*.jinja").Select(File.ReadAllText).ToList();
        sources.Add(JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Directory, "deepseek_v3", "tokenizer_config.json")))
            .RootElement.GetProperty("chat_template").GetString()!);
        ChatMessage[] conversation =
        [
            ChatMessage.System("s"), ChatMessage.User("u"), ChatMessage.AssistantCalls(new ToolCall("f", "{\"a\": 1}", "c0")),
            ChatMessage.Tool("42", "c0"), ChatMessage.Assistant("<think>x</think>done"), ChatMessage.User("again"),
        ];
        const string tools = """[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]""";
        const string pieces = "{}%#-+()[]'\".|,:=~*/ ";
        var random = new Random(20261202);
        var tally = new Support.FuzzTally("damaged chat templates");
        for (int i = 0; i < 400; i++)
        {
            var text = new System.Text.StringBuilder(sources[i % sources.Count]);
            for (int edits = random.Next(1, 4); edits > 0 && text.Length > 2; edits--)
            {
                int at = random.Next(text.Length);
                switch (random.Next(4))
                {
                    case 0: text.Remove(at, Math.Min(random.Next(1, 6), text.Length - at)); break;
                    case 1: text.Insert(at, text[at]); break;
                    case 2: (text[at], text[(at + 1) % text.Length]) = (text[(at + 1) % text.Length], text[at]); break;
                    default: text[at] = pieces[random.Next(pieces.Length)]; break;
                }
            }
            string damaged = text.ToString();
            tally.Run(i, $"template {i % sources.Count}", () =>
            {
                var template = new ChatTemplate(damaged, "<s>", "</s>");
                template.Render(conversation, addGenerationPrompt: i % 2 == 0, toolsJson: i % 3 == 0 ? tools : null);
            }, e => e is ChatTemplateException);
        }
        tally.AssertClean();
    }
}
