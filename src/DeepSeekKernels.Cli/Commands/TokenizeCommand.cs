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
        var strict = new Option<bool>("--strict-utf8") { Description = "Refuse input that is not valid UTF-8 (by default its invalid bytes are read as U+FFFD, with a warning)." };
        var command = new Command("tokenize", "Print the token ids of each input line as one comma-separated line.") { model, jsonLines, noSpecial, input, strict };
        command.SetAction(parse =>
            Run(parse.GetValue(model), parse.GetValue(jsonLines), !parse.GetValue(noSpecial), parse.GetValue(input), parse.GetValue(strict)));
        return command;
    }

    static int Run(string? modelFlag, bool jsonLines, bool addSpecial, string? inputFile, bool strictUtf8)
    {
        var tokenizer = HfTokenizer.FromFolder(CommonOptions.ModelFolder(modelFlag));
        using var stream = inputFile != null ? OpenInput(inputFile) : Console.OpenStandardInput();
        var reader = new Utf8LineReader(stream);
        for (string? line; (line = reader.ReadLine(out int invalidByte)) != null;)
        {
            int lineNumber = reader.LineNumber;
            if (invalidByte > 0)
            {
                string where = $"line {lineNumber} is not valid UTF-8 (byte {invalidByte} of the line)";
                if (strictUtf8)
                    throw new UsageException($"--strict-utf8: {where}.");
                CliErrors.Warning("tokenize", $"{where}; its invalid bytes were read as U+FFFD (--strict-utf8 refuses such input).");
            }
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
                    throw new UsageException($"--json-lines: line {lineNumber} is not a JSON string such as \"two\\nlines\" ({where}).");
                }
            }
            Console.Out.WriteLine(string.Join(",", tokenizer.Encode(text, addSpecial)));
        }
        return 0;
    }

    /// <summary>The --input file, or a <see cref="UsageException"/> naming the flag when it is a folder, missing or unreadable.</summary>
    static FileStream OpenInput(string path)
    {
        if (path.Trim().Length == 0)
            throw new UsageException($"--input \"{path}\": give a file of lines (or leave --input out to read standard input).");
        if (Directory.Exists(path))
            throw new UsageException($"--input {path}: is a folder; give a file of lines.");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string why = e switch
            {
                FileNotFoundException or DirectoryNotFoundException => "no such file",
                UnauthorizedAccessException => "not allowed to read it",
                _ => CliErrors.OneLine(e),
            };
            throw new UsageException($"--input {path}: {why}.", e);
        }
    }
}
