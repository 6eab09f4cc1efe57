using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>
/// `dsk serve` as a user runs it: it says where it listens, answers a chat completion over HTTP with the embedded model,
/// logs the request, and on SIGTERM stops in order with exit code 0; bad flags are refused before anything loads.
/// </summary>
public sealed class ServeCliTests
{
    [Fact]
    public async Task ServeAnswersOverHttpAndStopsOnSigterm()
    {
        var ct = TestContext.Current.CancellationToken;
        using var process = DskProcess.Start(null, "serve", "--port", "0", "--context", "256", "--max-batch", "2");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var errors = new StringBuilder();
        string? address = null;
        try
        {
            // the first lines on stderr: loaded ..., then "dsk serve: listening on http://127.0.0.1:PORT/ ..."
            var reading = Task.Run(async () =>
            {
                for (string? line; (line = await process.StandardError.ReadLineAsync(ct)) != null;)
                {
                    lock (errors)
                        errors.AppendLine(line);
                    if (address is null && line.StartsWith("dsk serve: listening on ", StringComparison.Ordinal))
                        address = line["dsk serve: listening on ".Length..].Split(' ')[0];
                }
            }, ct);
            for (int i = 0; i < 600 && address is null && !process.HasExited; i++)
                await Task.Delay(50, ct);
            Assert.True(address != null, $"no 'listening on' line; stderr: {errors}");

            using var client = new HttpClient { BaseAddress = new Uri(address!), Timeout = TimeSpan.FromMinutes(1) };
            using var body = new StringContent("{\"messages\": [{\"role\": \"user\", \"content\": \"What is a tuple?\"}], \"max_tokens\": 8}",
                Encoding.UTF8, "application/json");
            using var response = await client.PostAsync("/v1/chat/completions", body, ct);
            string text = await response.Content.ReadAsStringAsync(ct);
            Assert.True(response.IsSuccessStatusCode, text);
            var answer = JsonDocument.Parse(text).RootElement;
            Assert.Equal("dsv3-pydoc-tiny", answer.GetProperty("model").GetString());
            Assert.Equal(8, answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync(ct);
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), "dsk serve did not stop on SIGTERM");
            await reading;
            Assert.Equal(0, process.ExitCode);
            string log = errors.ToString();
            Assert.Contains("dsk serve: POST /v1/chat/completions 200,", log);
            Assert.Contains("+ 8 generated tokens (length)", log);
            Assert.Contains("dsk serve: stopped after", log);
            Assert.Equal("", await stdout);
        }
        finally
        {
            if (!process.HasExited)
                process.Kill();
        }
    }

    [Theory]
    [InlineData("--port", "70000", "--port 70000 is outside 0..65535")]
    [InlineData("--max-batch", "0", "--max-batch must be at least 1")]
    [InlineData("--context", "5000", "--context 5000 is outside 1..1024")]
    [InlineData("--max-new-tokens", "0", "--max-new-tokens 0")]
    public void BadFlagsAreRefusedBeforeLoading(string flag, string value, string expected)
    {
        var r = DskProcess.Run(null, "serve", flag, value);
        DskProcess.AssertRefused(r, "dsk serve", expected);
        Assert.DoesNotContain("loaded ", r.Error);
    }
}
