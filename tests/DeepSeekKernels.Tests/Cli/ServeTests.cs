using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using DeepSeekKernels.Cli.Commands;
using DeepSeekKernels.Cli.Serving;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Models;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Support;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>
/// `dsk serve`'s OpenAI-compatible server, in process over HTTP on a free port with the embedded model on the CPU backend:
/// completions and chat completions generate exactly what the library generates for the same prompt (greedy and seeded
/// sampling), streamed events join to the same text and end as OpenAI's do, concurrent requests each get what they get alone,
/// a client that goes away mid-stream is cancelled, and every bad request is answered with OpenAI's error object naming
/// the field, while the server goes on answering.
/// </summary>
public sealed class ServeTests(ServeTests.Server server) : IClassFixture<ServeTests.Server>
{
    const int Context = 128;

    /// <summary>The embedded model behind a server on 127.0.0.1 (a free port), 4 requests at once.</summary>
    public sealed class Server : IDisposable
    {
        readonly CancellationTokenSource _stop = new();
        readonly Task _running;
        readonly InferenceEngine _engine;
        readonly OpenAiServer _server;
        readonly CausalLanguageModel _alone; // the library's own runs, on a second instance (a model's workspace serves one pass at a time)

        public Server()
        {
            Model = ModelLoader.Load(CheckpointFixtures.PydocTiny, Ops.CreateCpu(TestDevices.Cpu, 1), contextLength: 1024);
            _alone = ModelLoader.Load(CheckpointFixtures.PydocTiny, Ops.CreateCpu(TestDevices.Cpu, 1), contextLength: 1024);
            Tokenizer = HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
            Conversation = Conversation.For(CheckpointFixtures.PydocTiny, Tokenizer, "serve");
            _engine = new InferenceEngine(Model, Tokenizer, Context, maxBatch: 4, DeepSeekKernels.Numerics.ElementType.F32);
            _server = new OpenAiServer(_engine, Tokenizer, Conversation, "pydoc", Model.Shape.Vocab, new GenerationOptions(), null, Log);
            _server.Start("127.0.0.1", 0);
            _running = _server.RunAsync(_stop.Token);
            Client = new HttpClient { BaseAddress = _server.Address, Timeout = TimeSpan.FromMinutes(1) };
        }

        public CausalLanguageModel Model { get; }
        public HfTokenizer Tokenizer { get; }
        internal Conversation Conversation { get; }
        public HttpClient Client { get; }
        public StringWriter Log { get; } = new();

        /// <summary>What the server has logged so far.</summary>
        public string LogText()
        {
            lock (Log)
                return Log.ToString();
        }

        /// <summary>What the library generates alone for these ids.</summary>
        public GenerationResult Alone(int[] ids, GenerationOptions options)
        {
            lock (_alone)
            {
                using var generator = new TextGenerator(_alone, Tokenizer, Context);
                return generator.Generate(ids, options);
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _running.Wait(TimeSpan.FromSeconds(30));
            Client.Dispose();
            _server.Dispose();
            _engine.Dispose();
            Model.Dispose();
            _alone.Dispose();
        }
    }

    async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await server.Client.PostAsync(path, content, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>
    /// A second server on the fixture's model (whose own engine is idle meanwhile: a class's tests run one at a time), for a
    /// context or a chat template of its own; disposing it stops it.
    /// </summary>
    sealed class OwnServer : IAsyncDisposable
    {
        readonly CancellationTokenSource _stop = new();
        readonly Task _running;

        public OwnServer(Server fixture, int context, HfTokenizer tokenizer, Conversation conversation)
        {
            Engine = new InferenceEngine(fixture.Model, tokenizer, context, maxBatch: 1, DeepSeekKernels.Numerics.ElementType.F32);
            Http = new OpenAiServer(Engine, tokenizer, conversation, "pydoc", fixture.Model.Shape.Vocab, new GenerationOptions(), null, Log);
            Http.Start("127.0.0.1", 0);
            _running = Http.RunAsync(_stop.Token);
            Client = new HttpClient { BaseAddress = Http.Address };
        }

        public InferenceEngine Engine { get; }
        public OpenAiServer Http { get; }
        public HttpClient Client { get; }
        public StringWriter Log { get; } = new();

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _running;
            Client.Dispose();
            Http.Dispose();
            Engine.Dispose();
            _stop.Dispose();
        }
    }

    /// <summary>The embedded model copied to a temporary folder with a chat template of the test's; deleted on disposal.</summary>
    sealed class TemplatedModel : IDisposable
    {
        public TemplatedModel(string template)
        {
            Directory.CreateDirectory(Folder);
            CliTests.CopyEmbeddedModel(Folder);
            CliTests.SetChatTemplate(Folder, template);
            Tokenizer = HfTokenizer.FromFolder(Folder);
            Conversation = Conversation.For(Folder, Tokenizer, "serve");
        }

        public string Folder { get; } = Path.Combine(Path.GetTempPath(), "dsk-serve-" + Guid.NewGuid().ToString("N"));
        public HfTokenizer Tokenizer { get; }
        public Conversation Conversation { get; }

        public void Dispose() => Directory.Delete(Folder, recursive: true);
    }

    [Fact]
    public async Task HealthAndModelsAnswer()
    {
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal("ok", JsonDocument.Parse(await server.Client.GetStringAsync("/health", ct)).RootElement.GetProperty("status").GetString());
        var models = JsonDocument.Parse(await server.Client.GetStringAsync("/v1/models", ct)).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        var model = Assert.Single(models.GetProperty("data").EnumerateArray());
        Assert.Equal("pydoc", model.GetProperty("id").GetString());
        Assert.Equal(Context, model.GetProperty("max_model_len").GetInt32());
    }

    /// <summary>Greedy and seeded sampling: the text and usage the library gives the same ids, and the finish reason.</summary>
    [Theory]
    [InlineData("{\"prompt\": \"The list type\", \"max_tokens\": 24, \"temperature\": 0}", 0f, null)]
    [InlineData("{\"model\": \"anything\", \"prompt\": \"def add(a, b):\", \"max_tokens\": 16, \"temperature\": 0.9, \"top_k\": 20, \"seed\": 7, \"stop\": null}", 0.9f, 7)]
    public async Task ACompletionIsWhatTheLibraryGenerates(string body, float temperature, int? seed)
    {
        var request = JsonDocument.Parse(body).RootElement;
        int[] ids = server.Tokenizer.Encode(request.GetProperty("prompt").GetString()!);
        var expected = server.Alone(ids, new GenerationOptions
        {
            MaxNewTokens = request.GetProperty("max_tokens").GetInt32(),
            Sampling = SamplingOptions.Greedy with { Temperature = temperature, TopK = seed is null ? 0 : 20, Seed = seed }, // the server's defaults: dsk's
        });

        var (status, answer) = await Post("/v1/completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("text_completion", answer.GetProperty("object").GetString());
        Assert.Equal("pydoc", answer.GetProperty("model").GetString());
        var choice = Assert.Single(answer.GetProperty("choices").EnumerateArray());
        Assert.Equal(expected.Text, choice.GetProperty("text").GetString());
        Assert.Equal(OpenAiServer.FinishReasonName(expected.FinishReason), choice.GetProperty("finish_reason").GetString());
        var usage = answer.GetProperty("usage");
        Assert.Equal(ids.Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.GeneratedIds.Count, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(ids.Length + expected.GeneratedIds.Count, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task TokenIdsArePromptsToo()
    {
        int[] ids = [5, 9, 13, 2, 7];
        var expected = server.Alone(ids, new GenerationOptions { MaxNewTokens = 6 });
        var (status, answer) = await Post("/v1/completions", "{\"prompt\": [5, 9, 13, 2, 7], \"max_tokens\": 6}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(expected.Text, answer.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    /// <summary>A conversation rendered with the model's chat template (as dsk chat renders it), then generated.</summary>
    [Fact]
    public async Task AChatCompletionIsTheTemplatedConversationGenerated()
    {
        var messages = new[] { new ChatMessage("system", "You answer briefly."), new ChatMessage("user", "What is a list?") };
        int[] ids = server.Tokenizer.Encode(server.Conversation.Render(messages), addSpecialTokens: false);
        var expected = server.Alone(ids, new GenerationOptions { MaxNewTokens = 20 });

        var (status, answer) = await Post("/v1/chat/completions",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"You answer briefly.\"}, {\"role\": \"user\", \"content\": \"What is a list?\"}], \"max_completion_tokens\": 20}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("chat.completion", answer.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", answer.GetProperty("id").GetString());
        var message = answer.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("assistant", message.GetProperty("role").GetString());
        Assert.Equal(expected.Text, message.GetProperty("content").GetString());
        Assert.Equal(ids.Length, answer.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // content as an array of text parts, as some clients send it: the same conversation
        var (partsStatus, parts) = await Post("/v1/chat/completions",
            "{\"messages\": [{\"role\": \"system\", \"content\": [{\"type\": \"text\", \"text\": \"You answer briefly.\"}]}, " +
            "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What is a list?\"}]}], \"max_tokens\": 20}");
        Assert.Equal(HttpStatusCode.OK, partsStatus);
        Assert.Equal(expected.Text, parts.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    /// <summary>The events of a streamed answer: data lines of JSON, then "data: [DONE]".</summary>
    async Task<List<JsonElement>> Stream(string path, string json)
    {
        var ct = TestContext.Current.CancellationToken;
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        var events = new List<JsonElement>();
        bool done = false;
        for (string? line; (line = await reader.ReadLineAsync(ct)) != null;)
        {
            if (line.Length == 0)
                continue;
            Assert.StartsWith("data: ", line);
            Assert.False(done, "an event after data: [DONE]");
            if (line == "data: [DONE]")
                done = true;
            else
                events.Add(JsonDocument.Parse(line[6..]).RootElement.Clone());
        }
        Assert.True(done, "the stream did not end with data: [DONE]");
        return events;
    }

    [Fact]
    public async Task StreamedPiecesJoinToTheAnswerAndEndWithTheReasonAndUsage()
    {
        int[] ids = server.Tokenizer.Encode("The list type");
        var expected = server.Alone(ids, new GenerationOptions { MaxNewTokens = 30 });
        var events = await Stream("/v1/completions",
            "{\"prompt\": \"The list type\", \"max_tokens\": 30, \"stream\": true, \"stream_options\": {\"include_usage\": true}}");
        var usage = events[^1];
        Assert.Empty(usage.GetProperty("choices").EnumerateArray());
        Assert.Equal(expected.GeneratedIds.Count, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var pieces = events[..^1].Select(e => e.GetProperty("choices")[0]).ToArray();
        Assert.True(pieces.Length > 5, $"{pieces.Length} events");
        Assert.Equal(expected.Text, string.Concat(pieces.Select(p => p.GetProperty("text").GetString())));
        Assert.All(pieces[..^1], p => Assert.Equal(JsonValueKind.Null, p.GetProperty("finish_reason").ValueKind));
        Assert.Equal("length", pieces[^1].GetProperty("finish_reason").GetString());
        Assert.All(events, e => Assert.Equal(events[0].GetProperty("id").GetString(), e.GetProperty("id").GetString()));

        // chat: the first delta says the role, the others carry content, the last the finish reason (no usage unless asked)
        var chat = await Stream("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 12, \"stream\": true}");
        Assert.Equal("assistant", chat[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.All(chat, e => Assert.Equal("chat.completion.chunk", e.GetProperty("object").GetString()));
        Assert.All(chat, e => Assert.False(e.TryGetProperty("usage", out _)));
        string text = string.Concat(chat.Skip(1).Select(e => e.GetProperty("choices")[0].GetProperty("delta"))
            .Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : ""));
        var alone = server.Alone(server.Tokenizer.Encode(server.Conversation.Render([new ChatMessage("user", "Hi")]), addSpecialTokens: false),
            new GenerationOptions { MaxNewTokens = 12 });
        Assert.Equal(alone.Text, text);
    }

    /// <summary>Requests sent together run together (continuous batching) and each gets what it gets alone.</summary>
    [Fact]
    public async Task ConcurrentRequestsEachGetWhatTheyGetAlone()
    {
        string[] prompts = ["The list type", "def add(a, b):", "Return the", "import os", "class Foo", "A dictionary"];
        var expected = prompts.Select((p, i) => server.Alone(server.Tokenizer.Encode(p), new GenerationOptions
        {
            MaxNewTokens = 10 + 3 * i,
            Sampling = i % 2 == 0 ? SamplingOptions.Greedy : SamplingOptions.Greedy with { Temperature = 1.1f, Seed = i },
        }).Text).ToArray();
        var answers = await Task.WhenAll(prompts.Select((p, i) => Post("/v1/completions", JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["prompt"] = p,
            ["max_tokens"] = 10 + 3 * i,
            ["temperature"] = i % 2 == 0 ? 0 : 1.1,
            ["seed"] = i,
        }))));
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, answers[i].Status);
            Assert.Equal(expected[i], answers[i].Body.GetProperty("choices")[0].GetProperty("text").GetString());
        }
    }

    /// <summary>
    /// A client that drops the connection after the first event: the server finds out at its next writes and the engine stops
    /// the request between steps (on a server of the model's whole context of 1,024, so generation outlasts the client).
    /// </summary>
    [Fact]
    public async Task AStreamWhoseClientGoesAwayIsCancelled()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var own = new OwnServer(server, 1024, server.Tokenizer, server.Conversation);
        using (var content = new StringContent("{\"prompt\": \"The list type\", \"stream\": true, \"ignore_eos\": true}", Encoding.UTF8, "application/json"))
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content })
        using (var response = await own.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            Assert.StartsWith("data: ", await reader.ReadLineAsync(ct));
        } // the connection is dropped after the first event
        string text = "";
        for (int i = 0; i < 600 && !text.Contains("POST /v1/completions", StringComparison.Ordinal); i++)
        {
            await Task.Delay(50, ct);
            lock (own.Log)
                text = own.Log.ToString();
        }
        Assert.Contains("client gone after ", text);
        Assert.Contains("(cancelled)", text);
        int generated = int.Parse(text.Split("client gone after ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(generated, 1, 1000); // of the 1,020 the request could have run to
        Assert.Equal(0, own.Engine.Active);

        // the fixture's server, beside it, goes on
        var (status, _) = await Post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2}");
        Assert.Equal(HttpStatusCode.OK, status);
    }

    /// <summary>
    /// Tools reach the model's chat template (on a copy of the embedded model, a test template in Qwen2.5's style that lists the
    /// tools' signatures; DeepSeek-V3's own lays out only calls): the prompt counted in "usage" is the conversation rendered
    /// with the tools, and without them for "tool_choice": "none".
    /// </summary>
    [Fact]
    public async Task ToolsAreRenderedWithTheModelsTemplate()
    {
        var ct = TestContext.Current.CancellationToken;
        using var model = new TemplatedModel(File.ReadAllText(Path.Combine(RepositoryRoot.Path, "scripts", "chat-template-golden", "templates", "tool_tags.jinja")));
        Assert.True(model.Conversation.UsesModelTemplate);
        await using var own = new OwnServer(server, 512, model.Tokenizer, model.Conversation);
        const string tools = "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"The weather in a city.\", \"parameters\": {\"type\": \"object\"}}}]";
        var messages = new[] { new ChatMessage("user", "Weather in Paris?") };
        foreach (string choice in new[] { "auto", "none" })
        {
            using var body = new StringContent("{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris?\"}], \"max_tokens\": 1, " +
                $"\"tools\": {tools}, \"tool_choice\": \"{choice}\"}}", Encoding.UTF8, "application/json");
            using var response = await own.Client.PostAsync("/v1/chat/completions", body, ct);
            string text = await response.Content.ReadAsStringAsync(ct);
            Assert.True(response.IsSuccessStatusCode, text);
            string prompt = model.Conversation.Render(messages, choice == "auto" ? tools : null);
            Assert.True((choice == "auto") == prompt.Contains("get_weather", StringComparison.Ordinal), prompt);
            Assert.Equal(model.Tokenizer.Encode(prompt, addSpecialTokens: false).Length,
                JsonDocument.Parse(text).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        }
    }

    /// <summary>
    /// A reasoning model (a chat template that opens the turn with "&lt;think&gt;", as R1's; on a copy of the embedded model, which
    /// never closes it): the reply is all reasoning, answered as "reasoning_content" with "content" null, and streamed as
    /// reasoning deltas that join to the same text.
    /// </summary>
    [Fact]
    public async Task AReasoningModelsThinkingIsAnsweredApart()
    {
        var ct = TestContext.Current.CancellationToken;
        using var model = new TemplatedModel("{{ bos_token }}{% for m in messages %}<\uFF5CUser\uFF5C>{{ m['content'] }}{% endfor %}" +
            "{% if add_generation_prompt %}<\uFF5CAssistant\uFF5C><think>\n{% endif %}");
        Assert.True(model.Conversation.Reasoning);
        await using var own = new OwnServer(server, Context, model.Tokenizer, model.Conversation);
        var expected = server.Alone(model.Tokenizer.Encode(model.Conversation.Render([new ChatMessage("user", "Why?")]), addSpecialTokens: false),
            new GenerationOptions { MaxNewTokens = 16 }).Text;
        Assert.DoesNotContain("</think>", expected);

        using (var body = new StringContent("{\"messages\": [{\"role\": \"user\", \"content\": \"Why?\"}], \"max_tokens\": 16}", Encoding.UTF8, "application/json"))
        using (var response = await own.Client.PostAsync("/v1/chat/completions", body, ct))
        {
            var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("choices")[0].GetProperty("message");
            Assert.Equal(expected, message.GetProperty("reasoning_content").GetString());
            Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        }
        using (var body = new StringContent("{\"messages\": [{\"role\": \"user\", \"content\": \"Why?\"}], \"max_tokens\": 16, \"stream\": true}", Encoding.UTF8, "application/json"))
        using (var response = await own.Client.PostAsync("/v1/chat/completions", body, ct))
        {
            var deltas = (await response.Content.ReadAsStringAsync(ct)).Split('\n')
                .Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
                .Select(l => JsonDocument.Parse(l[6..]).RootElement.GetProperty("choices")[0].GetProperty("delta")).ToArray();
            Assert.All(deltas, d => Assert.False(d.TryGetProperty("content", out _)));
            Assert.Equal(expected, string.Concat(deltas.Select(d => d.TryGetProperty("reasoning_content", out var t) ? t.GetString() : "")));
        }
    }

    /// <summary>The split of replies that do close their reasoning: whole, and streamed in pieces cut at every place (the tag included).</summary>
    [Theory]
    [InlineData("Let me think. a < b</think>\n\nThe answer.", "Let me think. a < b", "The answer.")]
    [InlineData("</think>Hi", "", "Hi")]
    [InlineData("x</think>\n\n", "x", "")]
    [InlineData("thinking, cut off at </thi", "thinking, cut off at </thi", null)]
    [InlineData("no tag at all <", "no tag at all <", null)]
    public void ReasoningIsSplitFromTheAnswerWholeAndInAnyPieces(string reply, string reasoning, string? answer)
    {
        Assert.Equal((reasoning, answer), ReasoningSplitter.Split(reply));
        for (int cut = 0; cut <= reply.Length; cut++)
        {
            for (int second = cut; second <= reply.Length; second += 3)
            {
                var splitter = new ReasoningSplitter();
                var parts = new[] { reply[..cut], reply[cut..second], reply[second..] }.Select(splitter.Append).ToList();
                parts.Add(splitter.Flush());
                Assert.Equal(reasoning, string.Concat(parts.Select(p => p.Reasoning)));
                Assert.Equal(answer ?? "", string.Concat(parts.Select(p => p.Content)));
            }
        }
    }

    /// <summary>A reply in DeepSeek's tool-call layout becomes OpenAI's tool calls; a reply without calls, or with markup cut short, stays text.</summary>
    [Fact]
    public void RepliesInDeepSeeksToolCallLayoutBecomeToolCalls()
    {
        string call = DeepSeekToolCalls.CallBegin + "function" + DeepSeekToolCalls.Separator + "get_weather\n```json\n{\"city\": \"Paris\"}\n```" + DeepSeekToolCalls.CallEnd;
        var (content, calls) = OpenAiServer.Replies("Checking." + DeepSeekToolCalls.CallsBegin + call + DeepSeekToolCalls.CallsEnd);
        Assert.Equal("Checking.", content);
        var only = Assert.Single(calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (only.Name, only.Arguments));
        (content, calls) = OpenAiServer.Replies(DeepSeekToolCalls.CallsBegin + call + DeepSeekToolCalls.CallsEnd);
        Assert.Null(content);
        Assert.Single(calls);
        string cut = "Checking." + DeepSeekToolCalls.CallsBegin + DeepSeekToolCalls.CallBegin + "function";
        Assert.Equal((cut, 0), (OpenAiServer.Replies(cut).Content, OpenAiServer.Replies(cut).Calls.Count));
        Assert.Equal(("Just text.", 0), (OpenAiServer.Replies("Just text.").Content, OpenAiServer.Replies("Just text.").Calls.Count));
    }

    public static TheoryData<string, string, int, string?, string> BadRequests => new()
    {
        { "/v1/completions", "{bad", 400, null, "not valid JSON" },
        { "/v1/completions", "[1, 2]", 400, null, "a request is a JSON object, not an array" },
        { "/v1/completions", "{}", 400, null, "no \"prompt\"" },
        { "/v1/completions", "{\"promt\": \"x\"}", 400, "promt", "did you mean \"prompt\"" },
        { "/v1/completions", "{\"prompt\": \"x\", \"prompt\": \"y\"}", 400, "prompt", "appears twice" },
        { "/v1/completions", "{\"prompt\": \"\"}", 400, "prompt", "is empty" },
        { "/v1/completions", "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt", "one prompt per request" },
        { "/v1/completions", "{\"prompt\": [1, 999999]}", 400, "prompt", "outside the model's vocabulary" },
        { "/v1/completions", "{\"prompt\": \"x\", \"top_p\": 7}", 400, "top_p", "(0, 1]" },
        { "/v1/completions", "{\"prompt\": \"x\", \"temperature\": -1}", 400, "temperature", ">= 0" },
        { "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 0}", 400, "max_tokens", ">= 1" },
        { "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 500}", 400, "max_tokens", "so at most" },
        { "/v1/completions", "{\"prompt\": \"x\", \"n\": 2}", 400, "n", "one choice per request" },
        { "/v1/completions", "{\"prompt\": \"x\", \"presence_penalty\": 0.5}", 400, "presence_penalty", "must be 0" },
        { "/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 3}", 400, "logprobs", "log probabilities" },
        { "/v1/completions", "{\"prompt\": \"x\", \"echo\": true}", 400, "echo", "does not echo" },
        { "/v1/completions", "{\"prompt\": \"x\", \"suffix\": \"y\"}", 400, "suffix", "fill in the middle" },
        { "/v1/completions", "{\"prompt\": \"x\", \"stop\": \"\"}", 400, "stop", "empty string" },
        { "/v1/completions", "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", 400, "stream_options", "goes with \"stream\": true" },
        { "/v1/completions", "{\"prompt\": \"x\", \"stream\": \"yes\"}", 400, "stream", "true or false" },
        { "/v1/completions", "{\"prompt\": \"" + string.Concat(Enumerable.Repeat("list ", 200)) + "\"}", 400, "prompt", "this server's context holds 128" },
        { "/v1/chat/completions", "{\"prompt\": \"x\"}", 400, "prompt", "unknown field \"prompt\"" },
        { "/v1/chat/completions", "{\"messages\": []}", 400, "messages", "non-empty array" },
        { "/v1/chat/completions", "{\"messages\": [{\"content\": \"x\"}]}", 400, "messages[0]", "has no \"role\"" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "messages[0].content", "must be a string" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}", 400, "messages[0].content[0]", "read text only" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [], \"stream\": true}", 400, "tools", "set \"stream\": false" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": \"required\"}", 400, "tool_choice", "cannot force" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": \"function\"}]}", 400, "tools", "need the model's chat template" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_object\"}}", 400, "response_format", "no constrained" },
    };

    /// <summary>Every bad request: its status, OpenAI's error object (type, the field as "param", a message that says what is wrong).</summary>
    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task ABadRequestIsAnsweredWithAnErrorNamingTheField(string path, string body, int status, string? param, string fragment)
    {
        var (code, answer) = await Post(path, body);
        Assert.Equal(status, (int)code);
        var error = answer.GetProperty("error");
        Assert.Contains(fragment, error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        if (param is null)
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        else
            Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task UnknownRoutesWrongMethodsAndHugeBodiesAreRefused()
    {
        var ct = TestContext.Current.CancellationToken;
        using (var response = await server.Client.GetAsync("/v1/embeddings", ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Contains("POST /v1/chat/completions", await response.Content.ReadAsStringAsync(ct));
        }
        using (var response = await server.Client.GetAsync("/v1/completions", ct))
            Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        // a body announced larger than the server reads is refused before it is read (a raw request: HttpClient would fail
        // sending the rest once the server answers)
        using (var tcp = new System.Net.Sockets.TcpClient())
        {
            await tcp.ConnectAsync("127.0.0.1", server.Client.BaseAddress!.Port, ct);
            var stream = tcp.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                $"Content-Length: {OpenAiServer.MaxBodyBytes + 1}\r\n\r\n{{"), ct);
            using var reader = new StreamReader(stream);
            string? statusLine = await reader.ReadLineAsync(ct);
            Assert.StartsWith("HTTP/1.1 413", statusLine);
        }
        var (status, _) = await Post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1}");
        Assert.Equal(HttpStatusCode.OK, status);
    }
}
