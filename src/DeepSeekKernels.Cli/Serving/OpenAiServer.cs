using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

using System.Text.Encodings.Web;
using System.Text.Json;
using System.Threading.Channels;
using DeepSeekKernels.Cli.Commands;
using DeepSeekKernels.Generation;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Serving;

/// <summary>
/// `dsk serve`'s HTTP front: OpenAI's API as vLLM, SGLang and llama.cpp's servers answer it, over
/// <see cref="HttpListener"/> (in the base library: nothing more to ship). GET /health, GET /v1/models,
/// POST /v1/completions (a text prompt or token ids) and POST /v1/chat/completions (a conversation rendered with the model's
/// chat template, with tools; DeepSeek's tool-call markup in the reply parsed into "tool_calls"; a reasoning model's thinking
/// as "reasoning_content"), each answered whole or as
/// server-sent events ("stream": true; a chunk per piece of text, then the finish reason, usage when
/// "stream_options": {"include_usage": true}, and "data: [DONE]"). Requests run together on the
/// <see cref="InferenceEngine"/> (continuous batching; each generates what it would alone). A bad request is answered
/// 400 with OpenAI's error object naming the field; a streamed request whose client goes away is cancelled.
/// </summary>
internal sealed class OpenAiServer : IDisposable
{
    /// <summary>The largest request body read (a conversation, its tools); larger is answered 413.</summary>
    public const int MaxBodyBytes = 8 << 20;

    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    readonly InferenceEngine _engine;
    readonly HfTokenizer? _tokenizer;
    readonly Conversation? _conversation;
    readonly GenerationOptions _defaults;
    readonly int? _defaultMaxTokens;
    readonly int _vocab;
    readonly TextWriter _log;
    readonly HttpListener _listener = new();
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    int _nextId;

    /// <param name="engine">The model's engine.</param>
    /// <param name="tokenizer">The model's tokenizer, or null (then only token-id prompts are answered).</param>
    /// <param name="conversation">The chat renderer, or null (no tokenizer: chat is answered 400).</param>
    /// <param name="modelName">The name /v1/models lists and the answers carry.</param>
    /// <param name="vocab">The model's vocabulary size (token-id prompts are checked against it).</param>
    /// <param name="defaults">Options a request leaves out (the command's sampling flags; its MaxNewTokens is not read).</param>
    /// <param name="defaultMaxTokens">The max_tokens of a request that gives none; null: the rest of its context, as OpenAI's servers do.</param>
    /// <param name="log">Where a line per request goes.</param>
    public OpenAiServer(InferenceEngine engine, HfTokenizer? tokenizer, Conversation? conversation, string modelName, int vocab,
        GenerationOptions defaults, int? defaultMaxTokens, TextWriter log)
    {
        (_engine, _tokenizer, _conversation, ModelName, _vocab, _defaults, _defaultMaxTokens, _log) =
            (engine, tokenizer, conversation, modelName, vocab, defaults, defaultMaxTokens, log);
    }

    /// <summary>The name the answers carry.</summary>
    public string ModelName { get; }

    /// <summary>
    /// The model's chat template opens its turn with "&lt;think&gt;" (DeepSeek-R1 and its distills): a chat reply's reasoning is
    /// answered apart, as "reasoning_content" (DeepSeek's API and vLLM's deepseek_r1 parser do the same).
    /// </summary>
    public bool Reasoning => _conversation?.Reasoning ?? false;

    /// <summary>The address it listens on, once started.</summary>
    public Uri? Address { get; private set; }

    /// <summary>
    /// Listens on <paramref name="host"/>:<paramref name="port"/> (port 0: a free one, chosen here; host 0.0.0.0 or *: every
    /// interface). A port that cannot be taken is a <see cref="UsageException"/> naming it.
    /// </summary>
    public void Start(string host, int port)
    {
        if (port is < 0 or > 65535)
            throw new UsageException($"--port {port} is outside 0..65535 (0: a free port).");
        if (port == 0)
            port = FreePort(host);
        string prefixHost = host is "0.0.0.0" or "*" or "+" ? "*" : host.Contains(':') && !host.StartsWith('[') ? $"[{host}]" : host;
        _listener.Prefixes.Add($"http://{prefixHost}:{port}/");
        // HttpListener matches the Host header too: the loopback address answers to both of its names
        if (prefixHost is "127.0.0.1" or "localhost")
            _listener.Prefixes.Add($"http://{(prefixHost == "localhost" ? "127.0.0.1" : "localhost")}:{port}/");
        try
        {
            _listener.Start();
        }
        catch (HttpListenerException e)
        {
            throw new UsageException($"--host {host} --port {port}: cannot listen there ({e.Message}); is another server on that port?", e);
        }
        Address = new Uri($"http://{(prefixHost == "*" ? "127.0.0.1" : prefixHost)}:{port}/");
    }

    static int FreePort(string host)
    {
        var address = host is "0.0.0.0" or "*" or "+" or "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(host.Trim('[', ']'), out var parsed) ? parsed : IPAddress.Loopback;
        var probe = new TcpListener(address, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    /// <summary>Answers requests until <paramref name="stop"/> fires, each on its own task.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        using var registration = stop.Register(() => _listener.Stop());
        var running = new List<Task>();
        while (!stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception) when (stop.IsCancellationRequested || !_listener.IsListening)
            {
                break;
            }
            running.RemoveAll(t => t.IsCompleted);
            running.Add(Task.Run(() => HandleAsync(context)));
        }
        await Task.WhenAll(running).ConfigureAwait(false);
    }

    async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var clock = Stopwatch.StartNew();
        string path = request.Url?.AbsolutePath.TrimEnd('/') ?? "";
        string outcome;
        try
        {
            outcome = (request.HttpMethod, path) switch
            {
                ("GET", "/health") => await WriteJsonAsync(response, 200, json => { json.WriteStartObject(); json.WriteString("status", "ok"); json.WriteEndObject(); }),
                ("GET", "/v1/models") => await WriteJsonAsync(response, 200, WriteModels),
                ("POST", "/v1/completions") => await CompleteAsync(context, chat: false),
                ("POST", "/v1/chat/completions") => await CompleteAsync(context, chat: true),
                (_, "/health" or "/v1/models" or "/v1/completions" or "/v1/chat/completions") =>
                    throw new ApiException(405, $"{request.HttpMethod} {path}: use {(path.EndsWith("completions", StringComparison.Ordinal) ? "POST" : "GET")}."),
                _ => throw new ApiException(404, $"No route {request.HttpMethod} {path}; this server answers GET /health, GET /v1/models, " +
                    "POST /v1/completions and POST /v1/chat/completions.", type: "not_found_error"),
            };
        }
        catch (ApiException e)
        {
            outcome = await TryWriteErrorAsync(response, e.Status, e.Message, e.Type, e.Param);
        }
        catch (Exception e) when (e is not (HttpListenerException or IOException or ObjectDisposedException))
        {
            outcome = await TryWriteErrorAsync(response, 500, $"{e.GetType().Name}: {CliErrors.OneLine(e)}", "server_error", null);
        }
        catch (Exception e)
        {
            outcome = $"client gone ({e.GetType().Name})";
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }
        lock (_log)
            _log.WriteLine($"dsk serve: {request.HttpMethod} {path} {outcome} ({clock.Elapsed.TotalSeconds:F2} s)");
    }

    void WriteModels(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteStartArray("data");
        json.WriteStartObject();
        json.WriteString("id", ModelName);
        json.WriteString("object", "model");
        json.WriteNumber("created", _created);
        json.WriteString("owned_by", "dsk");
        json.WriteNumber("max_model_len", _engine.Context);
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>A completion or chat completion: the body read and checked, the prompt made, the request run and answered.</summary>
    async Task<string> CompleteAsync(HttpListenerContext context, bool chat)
    {
        var body = await ReadBodyAsync(context.Request);
        var r = OpenAiRequest.Parse(body, chat, _defaults, _vocab);
        int[] ids = PromptIds(r);
        int contextLength = _engine.Context;
        if (ids.Length >= contextLength)
            throw new ApiException(400, $"The prompt has {ids.Length} tokens; this server's context holds {contextLength} (dsk serve --context), " +
                "and one is needed to generate: shorten the prompt.", chat ? "messages" : "prompt");
        int room = contextLength - ids.Length;
        if (r.MaxTokens is int asked && asked > room)
            throw new ApiException(400, $"\"max_tokens\" {asked}: the prompt has {ids.Length} tokens and the context {contextLength}, " +
                $"so at most {room} can be generated.", "max_tokens");
        var options = r.Options with { MaxNewTokens = r.MaxTokens ?? Math.Min(room, _defaultMaxTokens ?? room) };
        string id = $"{(chat ? "chatcmpl" : "cmpl")}-{Interlocked.Increment(ref _nextId)}";
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        GenerationResult result;
        if (!r.Stream)
        {
            result = await Run(ids, options, null, CancellationToken.None);
            // a reasoning model's reply: the reasoning apart from the answer; tool calls only where tools were offered
            var (reasoning, answer) = chat && Reasoning ? ReasoningSplitter.Split(result.Text) : (null, result.Text);
            var (content, calls) = r.ToolsJson != null && answer != null ? Replies(answer) : (answer, []);
            await WriteJsonAsync(context.Response, 200, json =>
            {
                StartAnswer(json, id, chat ? "chat.completion" : "text_completion", created, openChoice: true);
                if (chat)
                {
                    json.WriteStartObject("message");
                    json.WriteString("role", "assistant");
                    if (reasoning != null)
                        json.WriteString("reasoning_content", reasoning);
                    if (content is null)
                        json.WriteNull("content");
                    else
                        json.WriteString("content", content);
                    if (calls.Count > 0)
                        WriteToolCalls(json, id, calls);
                    json.WriteEndObject();
                }
                else
                {
                    json.WriteString("text", result.Text);
                    json.WriteNull("logprobs");
                }
                json.WriteString("finish_reason", calls.Count > 0 ? "tool_calls" : FinishReasonName(result.FinishReason));
                json.WriteEndObject();
                json.WriteEndArray();
                WriteUsage(json, result);
                json.WriteEndObject();
            });
            return $"200, {Summary(result)}";
        }

        // streamed: the engine's thread puts pieces in a channel, this task writes them as events
        var pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var gone = new CancellationTokenSource();
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers["Cache-Control"] = "no-cache";
        response.SendChunked = true;
        var run = Run(ids, options, token =>
        {
            if (token.Text.Length > 0)
                pieces.Writer.TryWrite(token.Text);
        }, gone.Token);
        _ = run.ContinueWith(_ => pieces.Writer.TryComplete(), TaskScheduler.Default);
        var stream = response.OutputStream;
        try
        {
            if (chat)
                await WriteEventAsync(stream, json => Chunk(json, id, created, chat, delta: json => json.WriteString("role", "assistant"), null));
            var splitter = chat && Reasoning ? new ReasoningSplitter() : null;
            await foreach (string piece in pieces.Reader.ReadAllAsync())
            {
                var (thought, text) = splitter?.Append(piece) ?? ("", piece);
                await WritePieceAsync(stream, id, created, chat, thought, text);
            }
            if (splitter != null)
                await WritePieceAsync(stream, id, created, chat, splitter.Flush().Reasoning, "");
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
        {
            gone.Cancel(); // the client went away: the engine stops the request between steps
            result = await run;
            return $"client gone after {result.GeneratedIds.Count} tokens ({(result.FinishReason == FinishReason.Cancelled ? "cancelled" : "it had finished")})";
        }
        result = await run;
        await WriteEventAsync(stream, json => Chunk(json, id, created, chat, delta: null, FinishReasonName(result.FinishReason)));
        if (r.IncludeUsage)
        {
            await WriteEventAsync(stream, json =>
            {
                StartAnswer(json, id, chat ? "chat.completion.chunk" : "text_completion", created);
                json.WriteStartArray("choices");
                json.WriteEndArray();
                WriteUsage(json, result);
                json.WriteEndObject();
            });
        }
        await stream.WriteAsync("data: [DONE]\n\n"u8.ToArray());
        await stream.FlushAsync();
        return $"200 streamed, {Summary(result)}";
    }

    /// <summary>A streamed piece: a reasoning delta and a content (or text) delta, each where it is not empty.</summary>
    async Task WritePieceAsync(Stream stream, string id, long created, bool chat, string reasoning, string text)
    {
        if (reasoning.Length > 0)
            await WriteEventAsync(stream, json => Chunk(json, id, created, chat, delta: json => json.WriteString("reasoning_content", reasoning), null));
        if (text.Length > 0)
            await WriteEventAsync(stream, json => Chunk(json, id, created, chat, delta: json => json.WriteString(chat ? "content" : "text", text), null));
    }

    /// <summary>The request on the engine; the scheduler's refusal of a prompt is a 400.</summary>
    async Task<GenerationResult> Run(int[] ids, GenerationOptions options, Action<GeneratedToken>? onToken, CancellationToken cancellation)
    {
        try
        {
            return await _engine.Submit(ids, options, onToken, cancellation);
        }
        catch (ArgumentException e)
        {
            throw new ApiException(400, CliErrors.OneLine(e));
        }
        catch (NonFiniteLogitsException e)
        {
            throw new ApiException(500, CliErrors.OneLine(e));
        }
    }

    int[] PromptIds(OpenAiRequest r)
    {
        if (r.PromptIds is { } ids)
            return ids;
        if (_tokenizer is null)
            throw new ApiException(400, "The model has no tokenizer.json: send the prompt as token ids (\"prompt\": [1, 2, 3]) to /v1/completions.",
                r.Chat ? "messages" : "prompt");
        if (r.Messages is { } messages)
        {
            try
            {
                return _tokenizer.Encode(_conversation!.Render(messages, r.ToolsJson, "messages"), addSpecialTokens: false);
            }
            catch (UsageException e)
            {
                throw new ApiException(400, e.Message, r.ToolsJson != null && e.Message.Contains("\"tools\"", StringComparison.Ordinal) ? "tools" : "messages");
            }
        }
        return _tokenizer.Encode(r.Prompt!);
    }

    /// <summary>The reply's text and tool calls (DeepSeek's markup parsed; markup cut short stays text).</summary>
    internal static (string? Content, IReadOnlyList<ToolCall> Calls) Replies(string text)
    {
        var (content, calls, complete) = DeepSeekToolCalls.Parse(text);
        if (!complete || calls.Count == 0)
            return (text, []);
        return (content.Length > 0 ? content : null, calls);
    }

    static void WriteToolCalls(Utf8JsonWriter json, string id, IReadOnlyList<ToolCall> calls)
    {
        json.WriteStartArray("tool_calls");
        for (int i = 0; i < calls.Count; i++)
        {
            json.WriteStartObject();
            json.WriteString("id", calls[i].Id ?? $"call_{id}_{i}");
            json.WriteString("type", calls[i].Type);
            json.WriteStartObject("function");
            json.WriteString("name", calls[i].Name);
            json.WriteString("arguments", calls[i].Arguments);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }

    /// <summary>
    /// Opens an answer or a chunk: {"id", "object", "created", "model", and with <paramref name="openChoice"/> "choices": [{"index": 0,
    /// (the caller writes the rest and closes what is open).
    /// </summary>
    void StartAnswer(Utf8JsonWriter json, string id, string objectName, long created, bool openChoice = false)
    {
        json.WriteStartObject();
        json.WriteString("id", id);
        json.WriteString("object", objectName);
        json.WriteNumber("created", created);
        json.WriteString("model", ModelName);
        if (!openChoice)
            return;
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
    }

    void Chunk(Utf8JsonWriter json, string id, long created, bool chat, Action<Utf8JsonWriter>? delta, string? finishReason)
    {
        StartAnswer(json, id, chat ? "chat.completion.chunk" : "text_completion", created, openChoice: true);
        if (chat)
        {
            json.WriteStartObject("delta");
            delta?.Invoke(json);
            json.WriteEndObject();
        }
        else if (delta != null)
        {
            delta(json);
        }
        else
        {
            json.WriteString("text", "");
        }
        if (finishReason is null)
            json.WriteNull("finish_reason");
        else
            json.WriteString("finish_reason", finishReason);
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
    }

    static void WriteUsage(Utf8JsonWriter json, GenerationResult result)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", result.PromptIds.Count);
        json.WriteNumber("completion_tokens", result.GeneratedIds.Count);
        json.WriteNumber("total_tokens", result.PromptIds.Count + result.GeneratedIds.Count);
        json.WriteEndObject();
    }

    /// <summary>OpenAI's finish reasons: "stop" (end of sequence or a stop string), "length" (max_tokens or the context).</summary>
    public static string FinishReasonName(FinishReason reason) => reason switch
    {
        FinishReason.EndOfSequence or FinishReason.StopString or FinishReason.Cancelled => "stop",
        _ => "length",
    };

    static string Summary(GenerationResult r) =>
        $"{r.PromptIds.Count} prompt + {r.GeneratedIds.Count} generated tokens ({BatchResultWriter.FinishReasonName(r.FinishReason)})";

    static async Task<byte[]> ReadBodyAsync(HttpListenerRequest request)
    {
        if (request.ContentLength64 > MaxBodyBytes)
            throw new ApiException(413, $"The body has {request.ContentLength64:N0} bytes; this server reads at most {MaxBodyBytes:N0}.");
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        for (int read; (read = await request.InputStream.ReadAsync(chunk)) > 0;)
        {
            if (buffer.Length + read > MaxBodyBytes)
                throw new ApiException(413, $"The body is over {MaxBodyBytes:N0} bytes, the most this server reads.");
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0)
            throw new ApiException(400, "The body is empty: send a JSON object.");
        return buffer.ToArray();
    }

    static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
            write(json);
        return buffer.ToArray();
    }

    static async Task<string> WriteJsonAsync(HttpListenerResponse response, int status, Action<Utf8JsonWriter> write)
    {
        var bytes = Json(write);
        response.StatusCode = status;
        response.ContentType = "application/json; charset=utf-8";
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes);
        return status.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    static async Task WriteEventAsync(Stream stream, Action<Utf8JsonWriter> write)
    {
        var bytes = Json(write);
        var line = new byte[bytes.Length + 8];
        "data: "u8.CopyTo(line);
        bytes.CopyTo(line, 6);
        line[^2] = (byte)'\n';
        line[^1] = (byte)'\n';
        await stream.WriteAsync(line);
        await stream.FlushAsync();
    }

    /// <summary>OpenAI's error object; a response already started (a stream) cannot take it, and the client is told by the cut.</summary>
    static async Task<string> TryWriteErrorAsync(HttpListenerResponse response, int status, string message, string type, string? param)
    {
        try
        {
            await WriteJsonAsync(response, status, json =>
            {
                json.WriteStartObject();
                json.WriteStartObject("error");
                json.WriteString("message", message);
                json.WriteString("type", type);
                if (param is null)
                    json.WriteNull("param");
                else
                    json.WriteString("param", param);
                json.WriteNumber("code", status);
                json.WriteEndObject();
                json.WriteEndObject();
            });
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            return $"{status} (not sent: {e.GetType().Name}): {message}";
        }
        return $"{status}: {message}";
    }

    public void Dispose() => ((IDisposable)_listener).Dispose();
}
