using System.Text;
using DeepSeekKernels.Checkpoints;
using DeepSeekKernels.Cli.Commands;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>The CLI's parts in-process: error classification, option suggestions, UTF-8 lines, terminal width.</summary>
public class CliPartsTests
{
    [Fact]
    public void AnUnexpectedExceptionIsABugWithExitCode2AndNoTraceUnlessVerbose()
    {
        Exception bug;
        try
        {
            throw new NullReferenceException("Object reference not set to an instance of an object.");
        }
        catch (Exception e)
        {
            bug = e;
        }
        var quiet = new StringWriter();
        Assert.Equal(CliErrors.Bug, CliErrors.Report(bug, "dsk generate", verbose: false, quiet));
        string line = Assert.Single(quiet.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("dsk generate: internal error: NullReferenceException: Object reference not set", line);
        Assert.Contains("--verbose or DSK_VERBOSE=1", line);
        Assert.DoesNotContain("   at ", quiet.ToString());

        var loud = new StringWriter();
        Assert.Equal(CliErrors.Bug, CliErrors.Report(bug, "dsk generate", verbose: true, loud));
        Assert.Contains("   at ", loud.ToString());
    }

    public static TheoryData<string> UserErrors() => [nameof(UsageException), nameof(CheckpointException), nameof(TokenizerException),
        nameof(FileNotFoundException), nameof(UnauthorizedAccessException), nameof(IOException), nameof(DeepSeekKernels.Runtime.NoCudaDeviceException)];

    [Theory, MemberData(nameof(UserErrors))]
    public void AUsersErrorIsOneLineWithExitCode1(string type)
    {
        Exception e = type switch
        {
            nameof(UsageException) => new UsageException("--top-k -1: top-k must be >= 0."),
            nameof(CheckpointException) => new CheckpointException("/m/config.json: not valid JSON"),
            nameof(TokenizerException) => new TokenizerException("/m/tokenizer.json is not valid JSON\n(second line)", "/m/tokenizer.json"),
            nameof(FileNotFoundException) => new FileNotFoundException("Could not find file '/m/x'."),
            nameof(UnauthorizedAccessException) => new UnauthorizedAccessException("Access to the path '/m' is denied."),
            nameof(IOException) => new IOException("Not a directory"),
            _ => new DeepSeekKernels.Runtime.NoCudaDeviceException("No CUDA GPU was found."),
        };
        var error = new StringWriter();
        Assert.Equal(CliErrors.UserError, CliErrors.Report(e, "dsk info", verbose: false, error));
        string line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("dsk info: error: ", line);
        Assert.DoesNotContain(e.GetType().Name, line);
    }

    [Theory]
    [InlineData(typeof(ArgumentException))]
    [InlineData(typeof(InvalidOperationException))]
    [InlineData(typeof(IndexOutOfRangeException))]
    [InlineData(typeof(FormatException))]
    [InlineData(typeof(OverflowException))]
    public void ExceptionsTheCliDidNotTranslateAreBugs(Type type) =>
        Assert.False(CliErrors.IsUserError((Exception)Activator.CreateInstance(type, "x")!));

    [Theory]
    [InlineData("--tempreature", "--temperature")]
    [InlineData("--temprature", "--temperature")]
    [InlineData("--temp", "--temperature")]
    [InlineData("--top", "--top-k or --top-p")] // a prefix of both
    [InlineData("--seeds", "--seed")]
    [InlineData("--max-new", "--max-new-tokens")]
    [InlineData("-x", null)]
    [InlineData("--zzzzzzzz", null)]
    public void TheNearestOptionIsAGoodGuessOrNone(string word, string? expected)
    {
        string[] options = ["--temperature", "-t", "--top-k", "--top-p", "--seed", "--max-new-tokens", "-n", "--stop", "--context", "--model", "-m"];
        Assert.Equal(expected, UnknownOptions.Nearest(word, options));
    }

    [Theory]
    [InlineData("-5", false)]
    [InlineData("-0.5", false)]
    [InlineData("-1e3", false)]
    [InlineData("-", false)]
    [InlineData("-x", true)]
    [InlineData("--x", true)]
    [InlineData("--", true)]
    public void NegativeNumbersDoNotLookLikeOptions(string word, bool option) =>
        Assert.Equal(option, UnknownOptions.LooksLikeAnOption(word));

    [Fact]
    public void LinesAreSplitOnLfAndCrLfAndTheByteOrderMarkIsDropped()
    {
        var reader = new Utf8LineReader(new MemoryStream([.. "\uFEFFone\r\ntwo\n\nthree"u8]));
        var lines = new List<string>();
        for (string? line; (line = reader.ReadLine(out int invalid)) != null;)
        {
            Assert.Equal(0, invalid);
            lines.Add(line);
        }
        Assert.Equal(["one", "two", "", "three"], lines);
    }

    [Fact]
    public void AnInvalidByteIsLocatedInItsLine()
    {
        var reader = new Utf8LineReader(new MemoryStream([.. "caf\u00e9\n"u8, 0x61, 0x62, 0xC3, 0x28, (byte)'\n', 0xF0, 0x9F, 0x98]));
        Assert.Equal("caf\u00e9", reader.ReadLine(out int first));
        Assert.Equal(0, first);
        Assert.Equal("ab\uFFFD(", reader.ReadLine(out int second));
        Assert.Equal(3, second);
        Assert.Equal(2, reader.LineNumber);
        _ = reader.ReadLine(out int third); // a truncated 4-byte sequence at the end of the stream
        Assert.Equal(1, third);
        Assert.Null(reader.ReadLine(out _));
    }

    [Fact]
    public void LinesLongerThanTheBufferAreWhole()
    {
        string longLine = new('x', 200_000);
        var reader = new Utf8LineReader(new MemoryStream(Encoding.UTF8.GetBytes(longLine + "\nshort\n")));
        Assert.Equal(longLine, reader.ReadLine(out _));
        Assert.Equal("short", reader.ReadLine(out _));
        Assert.Null(reader.ReadLine(out _));
    }

    [Theory]
    [InlineData("100", 100)]
    [InlineData(" 80 ", 80)]
    [InlineData("39", TerminalWidth.Default)]
    [InlineData("-100", TerminalWidth.Default)]
    [InlineData("abc", TerminalWidth.Default)]
    [InlineData(null, TerminalWidth.Default)]
    public void ColumnsIsUsedWhenItIsAWidth(string? columns, int width) =>
        Assert.Equal(width, TerminalWidth.ForRedirectedOutput(columns));
}
