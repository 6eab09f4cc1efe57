namespace DeepSeekKernels;

/// <summary>
/// The name of an expected size in a check's error message, e.g. "rows * weight.Rows = 4 * 1024": a plain string, or the
/// names and up to three factors, formatted only when a message is written. A check on every op call of a decode step
/// then allocates nothing (an interpolated string argument is built on every call, failing or not).
/// </summary>
internal readonly struct SizeText
{
    readonly string _text;
    readonly long _a, _b, _c;
    readonly int _factors;

    SizeText(string text, int factors, long a, long b, long c) => (_text, _factors, _a, _b, _c) = (text, factors, a, b, c);

    public static implicit operator SizeText(string text) => new(text, 0, 0, 0, 0);

    /// <summary>"<paramref name="names"/> = a".</summary>
    public static SizeText Of(string names, long a) => new(names, 1, a, 0, 0);

    /// <summary>"<paramref name="names"/> = a + 1" (offsets of a things).</summary>
    public static SizeText PlusOne(string names, long a) => new(names, -1, a, 0, 0);

    /// <summary>"<paramref name="names"/> = a * b".</summary>
    public static SizeText Of(string names, long a, long b) => new(names, 2, a, b, 0);

    /// <summary>"<paramref name="names"/> = a * b * c".</summary>
    public static SizeText Of(string names, long a, long b, long c) => new(names, 3, a, b, c);

    public override string ToString() => _factors switch
    {
        1 => $"{_text} = {_a}",
        -1 => $"{_text} = {_a} + 1",
        2 => $"{_text} = {_a} * {_b}",
        3 => $"{_text} = {_a} * {_b} * {_c}",
        _ => _text,
    };
}
