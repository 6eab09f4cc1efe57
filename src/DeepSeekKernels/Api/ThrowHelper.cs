using System.Diagnostics.CodeAnalysis;

namespace DeepSeekKernels;

/// <summary>Throw helpers for argument validation; every message starts with the op's name.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void Argument(string op, string parameter, string message) =>
        throw new ArgumentException($"{op}: {message}", parameter);

    [DoesNotReturn]
    public static void OutOfRange(string op, string parameter, object? value, string message) =>
        throw new ArgumentOutOfRangeException(parameter, value, $"{op}: {message}");

    [DoesNotReturn]
    public static void ArgumentNull(string op, string parameter) =>
        throw new ArgumentNullException(parameter, $"{op}: {parameter} is null.");

    [DoesNotReturn]
    public static void NotSupported(string op, string message) =>
        throw new NotSupportedException($"{op}: {message}");
}
