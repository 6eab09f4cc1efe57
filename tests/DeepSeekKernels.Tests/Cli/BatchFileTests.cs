using System.Text;
using System.Text.Json;
using DeepSeekKernels.Cli.Commands;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>
/// `dsk generate --batch-file`: parsing good files (defaults vs the line's overrides), each refusal with its
/// "FILE:LINE: ..." message, and the result writer's lines, in input order, parsed back.
/// </summary>
public class BatchFileTests
{
    const string File = "requests.jsonl";

    /// <summary>Defaults unlike every value the good file gives, so an override and a default cannot be confused.</summary>
    static readonly GenerationOptions Defaults = new()
    {
        MaxNewTokens = 64,
        StopStrings = ["\n"],
        StopAtEos = false,
        ExtraEosIds = [9],
        Sampling = new SamplingOptions { Temperature = 0.2f, TopK = 5, TopP = 0.8f, RepetitionPenalty = 1.3f, Seed = 7 },
    };

    static IReadOnlyList<BatchRequest> Parse(string text, int? vocabSize = null) => Parse(Encoding.UTF8.GetBytes(text), vocabSize);

    static IReadOnlyList<BatchRequest> Parse(byte[] bytes, int? vocabSize = null) =>
        BatchFile.Parse(new MemoryStream(bytes), File, Defaults, vocabSize);

    [Fact]
    public void AGoodFileGivesOneRequestPerLineWithDefaultsAndOverrides()
    {
        string text =
            "\uFEFF{\"prompt\": \"def add(a, b):\", \"id\": \"add\"}\r\n" +
            "\r\n" +
            "{\"prompt_ids\": [1, 2, 3], \"max_new_tokens\": 8, \"temperature\": 0.7, \"top_k\": 40, \"top_p\": 0.9, " +
            "\"repetition_penalty\": 1.1, \"seed\": -5, \"stop\": \"\\n\\n\"}\n" +
            "   \t \n" +
            "{\"stop\": [\"###\", \"END\"], \"id\": 42, \"prompt\": \"x\", \"temperature\": 0}\n" +
            "{\"prompt\": \"caf\u00e9 \U0001F600\", \"stop\": [], \"id\": 1.5e3, \"top_p\": 1}"; // no final line break
        var requests = Parse(text);
        Assert.Equal(4, requests.Count);

        var add = requests[0];
        Assert.Equal((0, 1), (add.Index, add.LineNumber));
        Assert.Equal("\"add\"", add.Id.GetRawText());
        Assert.Equal("def add(a, b):", add.Prompt);
        Assert.Null(add.PromptIds);
        Assert.Equal(Defaults, add.Options); // nothing overridden

        var ids = requests[1];
        Assert.Equal((1, 3), (ids.Index, ids.LineNumber));
        Assert.Equal("3", ids.Id.GetRawText()); // the line number
        Assert.Null(ids.Prompt);
        Assert.Equal([1, 2, 3], ids.PromptIds!);
        Assert.Equal(8, ids.Options.MaxNewTokens);
        Assert.Equal(["\n\n"], ids.Options.StopStrings);
        Assert.Equal(new SamplingOptions { Temperature = 0.7f, TopK = 40, TopP = 0.9f, RepetitionPenalty = 1.1f, Seed = -5 }, ids.Options.Sampling);
        Assert.False(ids.Options.StopAtEos); // what a line cannot say stays the caller's
        Assert.Equal([9], ids.Options.ExtraEosIds);

        var stops = requests[2];
        Assert.Equal((2, 5), (stops.Index, stops.LineNumber));
        Assert.Equal(JsonValueKind.Number, stops.Id.ValueKind);
        Assert.Equal(42, stops.Id.GetInt32());
        Assert.Equal(["###", "END"], stops.Options.StopStrings);
        Assert.Equal(Defaults.Sampling with { Temperature = 0 }, stops.Options.Sampling);
        Assert.Equal(64, stops.Options.MaxNewTokens);

        var unicode = requests[3];
        Assert.Equal(6, unicode.LineNumber);
        Assert.Equal("1.5e3", unicode.Id.GetRawText()); // echoed as written
        Assert.Equal("caf\u00e9 \U0001F600", unicode.Prompt);
        Assert.Empty(unicode.Options.StopStrings); // [] overrides the default stop strings with none
        Assert.Equal(1f, unicode.Options.Sampling.TopP);
        Assert.Equal(7, unicode.Options.Sampling.Seed);

        foreach (var request in requests)
            request.Options.Validate();
    }

    [Fact]
    public void PromptIdsBelowTheVocabularyPassAndOthersAreNamed()
    {
        Assert.Equal([0, 99], Parse("{\"prompt_ids\": [0, 99]}", vocabSize: 100)[0].PromptIds!);
        var e = Assert.Throws<UsageException>(() => Parse("{\"prompt_ids\": [0, 99, 100]}", vocabSize: 100));
        Assert.Equal($"{File}:1: \"prompt_ids\" entry 3, 100, is outside the model's vocabulary, 0..99 (vocab_size in config.json).", e.Message);
        Assert.Equal([int.MaxValue], Parse("{\"prompt_ids\": [2147483647]}")[0].PromptIds!); // no vocabulary given: any id >= 0
    }

    /// <summary>A bad file and the exact message it must get.</summary>
    public static TheoryData<string, string> BadFiles => new()
    {
        // JSON itself
        { "{\"prompt\": \"a\",}", "requests.jsonl:1: not valid JSON at byte 16 of the line (" },
        { "{\"prompt\": \"a\"}\n\n{prompt: \"b\"}", "requests.jsonl:3: not valid JSON at byte 2 of the line (" },
        { "{\"prompt\": \"a\"} {\"prompt\": \"b\"}", "requests.jsonl:1: not valid JSON at byte 17 of the line (" },
        { "{\"prompt\": \"a\"", "requests.jsonl:1: not valid JSON at byte 15 of the line (" },
        { "[1, 2]", "requests.jsonl:1: a request is a JSON object such as {\"prompt\": \"Hello\"}, not an array." },
        { "\"hello\"", "requests.jsonl:1: a request is a JSON object such as {\"prompt\": \"Hello\"}, not a string." },
        { "null", "requests.jsonl:1: a request is a JSON object such as {\"prompt\": \"Hello\"}, not null." },
        // the prompt
        { "{\"id\": 1}", "requests.jsonl:1: no prompt: give \"prompt\" (text), \"prompt_ids\" (token ids) or \"messages\" (a conversation)." },
        { "{\"prompt\": \"a\", \"prompt_ids\": [1]}", "requests.jsonl:1: give one of \"prompt\", \"prompt_ids\" and \"messages\", not several." },
        { "{\"prompt\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"b\"}]}", "requests.jsonl:1: give one of \"prompt\", \"prompt_ids\" and \"messages\", not several." },
        // a conversation
        { "{\"messages\": []}", "requests.jsonl:1: \"messages\" []: must be a non-empty array of turns, such as [{\"role\": \"user\", \"content\": \"Hello\"}]." },
        { "{\"messages\": [\"hi\"]}", "requests.jsonl:1: \"messages[0]\" is a string; a turn is an object with \"role\" and \"content\"." },
        { "{\"messages\": [{\"content\": \"hi\"}]}", "requests.jsonl:1: \"messages[0]\" has no \"role\"." },
        { "{\"messages\": [{\"role\": \"user\"}]}", "requests.jsonl:1: \"messages[0]\" has no \"content\" (a string) and no \"tool_calls\"." },
        { "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "requests.jsonl:1: \"messages[0].content\" must be a string (or null for a turn that only calls tools), not a number." },
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"mood\": 1}]}", "requests.jsonl:1: unknown field \"messages[0].mood\"; a turn has role, content, tool_calls, tool_call_id and name." },
        { "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"function\": {\"arguments\": \"{}\"}}]}]}",
            "requests.jsonl:1: \"messages[0].tool_calls[0]\" must be an object with \"function\": {\"name\": string, \"arguments\": JSON}." },
        { "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": 3}}]}]}",
            "requests.jsonl:1: \"messages[0].tool_calls[0].function.arguments\" must be a JSON string or object." },
        { "{\"prompt\": \"a\", \"tools\": []}", "requests.jsonl:1: \"tools\" goes with \"messages\": a conversation the chat template lays the tools out for." },
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"tools\": {}}", "requests.jsonl:1: \"tools\" {}: must be an array of tool definitions, such as [{\"type\": \"function\", \"function\": {...}}]." },
        { "{\"prompt\": \"\"}", "requests.jsonl:1: \"prompt\" is empty: give some text to continue." },
        { "{\"prompt\": 5}", "requests.jsonl:1: \"prompt\" 5: must be a string (the text to continue)." },
        { "{\"prompt\": [\"a\"]}", "requests.jsonl:1: \"prompt\" [\"a\"]: must be a string (the text to continue)." },
        { "{\"prompt_ids\": []}", "requests.jsonl:1: \"prompt_ids\" is empty: give at least one token id." },
        { "{\"prompt_ids\": \"1,2\"}", "requests.jsonl:1: \"prompt_ids\" \"1,2\": must be an array of token ids, such as [1, 2, 3]." },
        { "{\"prompt_ids\": [1, -2]}", "requests.jsonl:1: \"prompt_ids\" entry 2, -2, is not a token id (an integer >= 0)." },
        { "{\"prompt_ids\": [1, \"2\"]}", "requests.jsonl:1: \"prompt_ids\" entry 2, \"2\", is not a token id (an integer >= 0)." },
        { "{\"prompt_ids\": [1.5]}", "requests.jsonl:1: \"prompt_ids\" entry 1, 1.5, is not a token id (an integer >= 0)." },
        { "{\"prompt_ids\": [3000000000]}", "requests.jsonl:1: \"prompt_ids\" entry 1, 3000000000, is not a token id (an integer >= 0)." },
        // options out of range or of the wrong type
        { "{\"prompt\": \"a\", \"max_new_tokens\": 0}", "requests.jsonl:1: \"max_new_tokens\" 0: must be an integer >= 1 (tokens to generate)." },
        { "{\"prompt\": \"a\", \"max_new_tokens\": 3000000000}", "requests.jsonl:1: \"max_new_tokens\" 3000000000: must be an integer >= 1 (tokens to generate)." },
        { "{\"prompt\": \"a\", \"max_new_tokens\": \"8\"}", "requests.jsonl:1: \"max_new_tokens\" \"8\": must be an integer >= 1 (tokens to generate)." },
        { "{\"prompt\": \"a\", \"temperature\": -0.5}", "requests.jsonl:1: \"temperature\" -0.5: must be a finite number >= 0 (0 = greedy)." },
        { "{\"prompt\": \"a\", \"temperature\": \"hot\"}", "requests.jsonl:1: \"temperature\" \"hot\": must be a finite number >= 0 (0 = greedy)." },
        { "{\"prompt\": \"a\", \"temperature\": 1e39}", "requests.jsonl:1: \"temperature\" 1e39: must be a finite number >= 0 (0 = greedy)." },
        { "{\"prompt\": \"a\", \"top_k\": -1}", "requests.jsonl:1: \"top_k\" -1: must be an integer >= 0 (0 = off)." },
        { "{\"prompt\": \"a\", \"top_k\": 2.5}", "requests.jsonl:1: \"top_k\" 2.5: must be an integer >= 0 (0 = off)." },
        { "{\"prompt\": \"a\", \"top_p\": 0}", "requests.jsonl:1: \"top_p\" 0: must be a number in (0, 1] (1 = off)." },
        { "{\"prompt\": \"a\", \"top_p\": 1.01}", "requests.jsonl:1: \"top_p\" 1.01: must be a number in (0, 1] (1 = off)." },
        { "{\"prompt\": \"a\", \"repetition_penalty\": 0}", "requests.jsonl:1: \"repetition_penalty\" 0: must be a finite number > 0 (1 = off)." },
        { "{\"prompt\": \"a\", \"repetition_penalty\": true}", "requests.jsonl:1: \"repetition_penalty\" true: must be a finite number > 0 (1 = off)." },
        { "{\"prompt\": \"a\", \"seed\": 1.5}", "requests.jsonl:1: \"seed\" 1.5: must be an integer in -2147483648..2147483647." },
        { "{\"prompt\": \"a\", \"seed\": null}", "requests.jsonl:1: \"seed\" null: must be an integer in -2147483648..2147483647." },
        { "{\"prompt\": \"a\", \"stop\": \"\"}", "requests.jsonl:1: \"stop\" is an empty string: it would stop before the first token." },
        { "{\"prompt\": \"a\", \"stop\": [\"x\", \"\"]}", "requests.jsonl:1: \"stop\" entry 2 is an empty string: it would stop before the first token." },
        { "{\"prompt\": \"a\", \"stop\": [\"x\", 1]}", "requests.jsonl:1: \"stop\" entry 2, 1, is not a string." },
        { "{\"prompt\": \"a\", \"stop\": {\"x\": 1}}", "requests.jsonl:1: \"stop\" {\"x\": 1}: must be a string or an array of strings, such as [\"\\n\\n\", \"###\"]." },
        { "{\"prompt\": \"a\", \"id\": true}", "requests.jsonl:1: \"id\" true: must be a string or a number (it is echoed back with the result)." },
        { "{\"prompt\": \"a\", \"id\": [1]}", "requests.jsonl:1: \"id\" [1]: must be a string or a number (it is echoed back with the result)." },
        { "{\"prompt\": \"" + new string('x', 50) + "\", \"id\": {\"long\": \"" + new string('y', 50) + "\"}}",
            "requests.jsonl:1: \"id\" {\"long\": \"" + new string('y', 27) + "...: must be a string or a number (it is echoed back with the result)." },
        // unknown and repeated fields
        { "{\"prompt\": \"a\", \"temprature\": 0.5}", "requests.jsonl:1: unknown field \"temprature\" (did you mean \"temperature\"?)." },
        { "{\"Prompt\": \"a\"}", "requests.jsonl:1: unknown field \"Prompt\" (did you mean \"prompt\"?)." },
        { "{\"prompt\": \"a\", \"top\": 1}", "requests.jsonl:1: unknown field \"top\" (did you mean \"top_k\" or \"top_p\"?)." },
        { "{\"prompt\": \"a\", \"max_new_token\": 5}", "requests.jsonl:1: unknown field \"max_new_token\" (did you mean \"max_new_tokens\"?)." },
        { "{\"prompt\": \"a\", \"xyzzy\": 1}", "requests.jsonl:1: unknown field \"xyzzy\"; the fields are prompt, prompt_ids, messages, tools, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop, id." },
        { "{\"prompt\": \"a\", \"seed\": 1, \"seed\": 2}", "requests.jsonl:1: \"seed\" appears twice; give each field once." },
        // no requests
        { "", "requests.jsonl: no requests; give one JSON object per line, such as {\"prompt\": \"Hello\"}." },
        { "\n  \n\r\n\t\n", "requests.jsonl: no requests; give one JSON object per line, such as {\"prompt\": \"Hello\"}." },
        { "\uFEFF", "requests.jsonl: no requests; give one JSON object per line, such as {\"prompt\": \"Hello\"}." },
        // a later line: the first error is reported, with its own line number
        { "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n\n{\"prompt\": \"c\", \"top_k\": -3}\n{\"prompt\": 1}", "requests.jsonl:4: \"top_k\" -3: must be an integer >= 0 (0 = off)." },
    };

    [Theory, MemberData(nameof(BadFiles))]
    public void ABadFileIsRefusedNamingTheLineAndTheField(string text, string message)
    {
        var e = Assert.Throws<UsageException>(() => Parse(text));
        if (message.EndsWith('('))
            Assert.StartsWith(message, e.Message); // the JSON reader's own words follow
        else
            Assert.Equal(message, e.Message);
        Assert.DoesNotContain("\n", e.Message);
        Assert.DoesNotContain("LineNumber:", e.Message);
        Assert.True(CliErrors.IsUserError(e));
    }

    [Fact]
    public void ALineThatIsNotUtf8IsNamed()
    {
        byte[] bytes = [.. "{\"prompt\": \"a\"}\n{\"prompt\": \"caf"u8, 0xE9, .. "\"}\n"u8];
        var e = Assert.Throws<UsageException>(() => Parse(bytes));
        Assert.Equal($"{File}:2: not valid UTF-8 (byte 16 of the line); save the file as UTF-8.", e.Message);
    }

    [Fact]
    public void ReadNamesTheFlagForAPathThatIsNoFile()
    {
        using var folder = new TempFolder();
        string good = folder.File("good.jsonl");
        System.IO.File.WriteAllText(good, "{\"prompt\": \"a\"}\n{\"prompt_ids\": [5]}\n");
        var requests = BatchFile.Read(good, Defaults);
        Assert.Equal(2, requests.Count);

        string bad = folder.File("bad.jsonl");
        System.IO.File.WriteAllText(bad, "{\"prompt\": \"a\", \"top_p\": 2}\n");
        Assert.Equal($"{bad}:1: \"top_p\" 2: must be a number in (0, 1] (1 = off).", Assert.Throws<UsageException>(() => BatchFile.Read(bad, Defaults)).Message);

        string missing = folder.File("missing.jsonl");
        Assert.Equal($"--batch-file {missing}: no such file.", Assert.Throws<UsageException>(() => BatchFile.Read(missing, Defaults)).Message);
        Assert.Equal($"--batch-file {folder.Path}: is a folder; give a file of JSON lines, one request per line.",
            Assert.Throws<UsageException>(() => BatchFile.Read(folder.Path, Defaults)).Message);
        Assert.Equal("--batch-file \" \": give a file of JSON lines, one request per line.", Assert.Throws<UsageException>(() => BatchFile.Read(" ", Defaults)).Message);
    }

    static GenerationResult Result(int promptTokens, int[] generated, string text, FinishReason reason) =>
        new(Enumerable.Range(1, promptTokens).ToArray(), generated, text, reason, TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(7));

    [Fact]
    public void ResultsAreWrittenInInputOrderAndParseBack()
    {
        var requests = Parse(
            "{\"prompt\": \"a\", \"id\": \"first\"}\n" +
            "{\"prompt_ids\": [1, 2], \"id\": 1.5e3}\n" +
            "\n" +
            "{\"prompt\": \"c\"}\n");
        var output = new StringWriter();
        var writer = new BatchResultWriter(output, requests);

        // The engine finishes them out of order: nothing is written until the first is done.
        writer.Write(requests[2], Result(3, [7, 8], "line one\nsaid \"hi\"\t\u00e9\U0001F600", FinishReason.StopString));
        Assert.Equal("", output.ToString());
        Assert.Equal(0, writer.Written);
        writer.Write(requests[0], Result(1, [5], "x", FinishReason.Length));
        Assert.Equal(1, writer.Written);
        writer.Write(requests[1], Result(2, [], "", FinishReason.ContextFull));
        Assert.Equal(3, writer.Written);

        string[] lines = output.ToString().Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.Equal("", lines[3]); // every line ends with a line break
        Assert.Equal("{\"id\":\"first\",\"prompt_tokens\":1,\"ids\":[5],\"text\":\"x\",\"finish_reason\":\"length\"}", lines[0]);
        Assert.Equal("{\"id\":1.5e3,\"prompt_tokens\":2,\"ids\":[],\"text\":\"\",\"finish_reason\":\"context_full\"}", lines[1]);

        using var third = JsonDocument.Parse(lines[2]);
        var root = third.RootElement;
        Assert.Equal(["id", "prompt_tokens", "ids", "text", "finish_reason"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(4, root.GetProperty("id").GetInt32()); // the line number
        Assert.Equal(3, root.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal([7, 8], root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("line one\nsaid \"hi\"\t\u00e9\U0001F600", root.GetProperty("text").GetString());
        Assert.Equal("stop", root.GetProperty("finish_reason").GetString());
        Assert.Contains("\"line one\\nsaid \\\"hi\\\"\\t\u00e9\\uD83D\\uDE00\"", lines[2]); // é as itself; an emoji escaped
    }

    /// <summary>A conversation with a tool round trip: roles, contents (null for the call), calls (arguments as a string or an object) and the tools, as written.</summary>
    [Fact]
    public void AConversationWithToolsIsRead()
    {
        var request = Parse("""
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "content": "21", "tool_call_id": "c0"}], "tools": [{"type": "function", "function": {"name": "get_weather"}}], "id": "w"}
            """).Single();
        Assert.Null(request.Prompt);
        Assert.Null(request.PromptIds);
        var m = request.Messages!;
        Assert.Equal(["system", "user", "assistant", "tool"], m.Select(x => x.Role));
        Assert.Null(m[2].Content);
        Assert.Equal([new DeepSeekKernels.Tokenization.ToolCall("get_weather", "{\"city\": \"Paris\"}", "c0")], m[2].ToolCalls!);
        Assert.Equal("c0", m[3].ToolCallId);
        Assert.Equal("""[{"type": "function", "function": {"name": "get_weather"}}]""", request.ToolsJson);
    }

    /// <summary>The reply to a conversation: the text as always, plus the tool calls read out of it and the text before them.</summary>
    [Fact]
    public void AReplyWithToolCallsIsWrittenWithThem()
    {
        string text = "Checking." + DeepSeekKernels.Tokenization.DeepSeekToolCalls.CallsBegin + DeepSeekKernels.Tokenization.DeepSeekToolCalls.CallBegin
            + "function" + DeepSeekKernels.Tokenization.DeepSeekToolCalls.Separator + "get_weather\n```json\n{\"city\": \"Oslo\"}\n```"
            + DeepSeekKernels.Tokenization.DeepSeekToolCalls.CallEnd + DeepSeekKernels.Tokenization.DeepSeekToolCalls.CallsEnd;
        using var json = JsonDocument.Parse(BatchResultWriter.Line(JsonSerializer.SerializeToElement("t"), Result(4, [1, 2], text, FinishReason.EndOfSequence), parseToolCalls: true));
        var root = json.RootElement;
        Assert.Equal(text, root.GetProperty("text").GetString());
        Assert.Equal("Checking.", root.GetProperty("content").GetString());
        var call = root.GetProperty("tool_calls").EnumerateArray().Single();
        Assert.Equal("function", call.GetProperty("type").GetString());
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("{\"city\": \"Oslo\"}", call.GetProperty("function").GetProperty("arguments").GetString());
        Assert.False(root.TryGetProperty("tool_calls_incomplete", out _));
        // a plain reply has no such fields; a prompt's reply is never parsed
        using var plain = JsonDocument.Parse(BatchResultWriter.Line(JsonSerializer.SerializeToElement("p"), Result(1, [2], "hi", FinishReason.Length), parseToolCalls: true));
        Assert.False(plain.RootElement.TryGetProperty("tool_calls", out _));
        using var prompt = JsonDocument.Parse(BatchResultWriter.Line(JsonSerializer.SerializeToElement("q"), Result(4, [1, 2], text, FinishReason.EndOfSequence)));
        Assert.False(prompt.RootElement.TryGetProperty("tool_calls", out _));
    }

    [Fact]
    public void TextWithALoneSurrogateIsWrittenWithAReplacementCharacter() =>
        Assert.Equal("{\"id\":\"s\",\"prompt_tokens\":1,\"ids\":[2],\"text\":\"a\\uFFFDb\",\"finish_reason\":\"eos\"}",
            BatchResultWriter.Line(JsonSerializer.SerializeToElement("s"), Result(1, [2], "a\uD83Db", FinishReason.EndOfSequence)));

    [Fact]
    public void EachRequestIsWrittenOnceAndOnlyByItsWriter()
    {
        var requests = Parse("{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}");
        var others = Parse("{\"prompt\": \"other\"}");
        var writer = new BatchResultWriter(new StringWriter(), requests);
        writer.Write(requests[0], Result(1, [1], "x", FinishReason.EndOfSequence));
        Assert.Throws<InvalidOperationException>(() => writer.Write(requests[0], Result(1, [1], "x", FinishReason.EndOfSequence)));
        Assert.Throws<ArgumentException>(() => writer.Write(others[0], Result(1, [1], "x", FinishReason.EndOfSequence)));
        Assert.Throws<ArgumentException>(() => writer.Write(requests[1] with { Index = 2 }, Result(1, [1], "x", FinishReason.EndOfSequence)));
        writer.Write(requests[1], Result(1, [1], "x", FinishReason.EndOfSequence));
        Assert.Throws<InvalidOperationException>(() => writer.Write(requests[1], Result(1, [1], "x", FinishReason.EndOfSequence)));
    }

    [Fact]
    public void EveryFinishReasonHasItsOwnName()
    {
        Assert.Equal("length", BatchResultWriter.FinishReasonName(FinishReason.Length));
        Assert.Equal("eos", BatchResultWriter.FinishReasonName(FinishReason.EndOfSequence));
        Assert.Equal("stop", BatchResultWriter.FinishReasonName(FinishReason.StopString));
        Assert.Equal("context_full", BatchResultWriter.FinishReasonName(FinishReason.ContextFull));
        Assert.Equal("cancelled", BatchResultWriter.FinishReasonName(FinishReason.Cancelled));
        var names = Enum.GetValues<FinishReason>().Select(BatchResultWriter.FinishReasonName).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
    }
}
