using System.CommandLine;
using System.Text.Json;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>`dsk tokenize`: the ids of each input line, as one comma-separated line each (needs only the tokenizer files).</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model("Folder with tokenizer.json (and tokenizer_config.json). Default: the embedded dsv3-pydoc-tiny.");
        var jsonLines = new Option<bool>("--json-lines") { Description = "Each input line is a JSON string (so any text, newlines included, fits on one line)." };
        var noSpecial = new Option<bool>("--no-special-tokens") { Description = "Do not add BOS (or whatever the tokenizer adds)." };
        var input = new Option<string?>("--input", "-i") { Description = "Read lines from this file instead of standard input." };
        var command = new Command("tokenize", "Print the token ids of each input line as one comma-separated line.") { model, jsonLines, noSpecial, input };
        command.SetAction(parse => CliErrors.Run("tokenize", () =>
            Run(parse.GetValue(model), parse.GetValue(jsonLines), !parse.GetValue(noSpecial), parse.GetValue(input))));
        return command;
    }

    static int Run(string? folder, bool jsonLines, bool addSpecial, string? inputFile)
    {
        var tokenizer = HfTokenizer.FromFolder(folder ?? CommonOptions.EmbeddedModel);
        using var reader = inputFile != null ? new StreamReader(inputFile) : new StreamReader(Console.OpenStandardInput());
        int lineNumber = 0;
        for (string? line; (line = reader.ReadLine()) != null;)
        {
            lineNumber++;
            string text = line;
            if (jsonLines)
            {
                try
                {
                    text = JsonSerializer.Deserialize<string>(line) ?? throw new FormatException("it is null");
                }
                catch (Exception e) when (e is JsonException or FormatException)
                {
                    string where = e is JsonException { BytePositionInLine: { } at } ? $"not readable from byte {at + 1}" : e.Message;
                    throw new FormatException($"--json-lines: line {lineNumber} is not a JSON string such as \"two\\nlines\" ({where}).");
                }
            }
            Console.Out.WriteLine(string.Join(",", tokenizer.Encode(text, addSpecial)));
        }
        return 0;
    }
}
