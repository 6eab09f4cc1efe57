using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The argument checks the device-view ops share. Every op checks in one fixed order: element types (mostly fixed
/// by the signatures), then its operands in parameter order (objects not null, device views not default and on
/// the right runtime), sizes and configuration, lengths, then overlaps; the first failure throws, naming the op
/// and the parameter, and nothing is written.
/// </summary>
internal static class OpChecks
{
    public static void AtLeast1(string op, string name, int value)
    {
        if (value < 1)
            ThrowHelper.OutOfRange(op, name, value, $"{name} must be at least 1 (got {value}).");
    }

    public static void NotNegative(string op, string name, int value)
    {
        if (value < 0)
            ThrowHelper.OutOfRange(op, name, value, $"{name} must not be negative (got {value}).");
    }

    public static void Finite(string op, string name, float value)
    {
        if (!float.IsFinite(value))
            ThrowHelper.OutOfRange(op, name, value, $"{name} must be finite (got {value}).");
    }

    /// <summary>
    /// Rows of <paramref name="rowElements"/> elements in a view of <paramref name="length"/>: at least one row,
    /// a whole number of rows, at most int.MaxValue rows.
    /// </summary>
    public static int Rows(string op, string name, long length, long rowElements, SizeText rowShape)
    {
        if (length == 0)
            ThrowHelper.Argument(op, name, $"{name} is empty: it needs at least one row of {rowShape} = {rowElements} elements.");
        if (length % rowElements != 0)
            ThrowHelper.Argument(op, name, $"{name} has {length} elements, not a whole number of rows of {rowShape} = {rowElements}.");
        long rows = length / rowElements;
        if (rows > int.MaxValue)
            ThrowHelper.Argument(op, name, $"{name} has {rows} rows; at most {int.MaxValue} are supported.");
        return (int)rows;
    }

    /// <summary>An input of an exact length.</summary>
    public static void Length(string op, string name, long length, long expected, string shape)
    {
        if (length != expected)
            ThrowHelper.Argument(op, name, $"{name} has {length} elements; it needs {shape} = {expected}.");
    }

    /// <summary>A view at least <paramref name="needed"/> long (outputs, caches): only the first elements are used.</summary>
    public static void LongEnough(string op, string name, long length, long needed, SizeText shape)
    {
        if (length < needed)
            ThrowHelper.Argument(op, name, $"{name} is too short: {length} elements for {shape} = {needed}.");
    }

    /// <summary>An output that must not share any memory with an input (tensors: by allocation byte range).</summary>
    public static void Disjoint(string op, string outputName, DeviceTensor output, string otherName, DeviceTensor other) =>
        TensorChecks.Disjoint(op, outputName, output, otherName, other);

    /// <summary>An output that may be exactly an input (in place) but not overlap it otherwise (tensors).</summary>
    public static void ExactOrDisjoint(string op, string outputName, DeviceTensor output, string inputName, DeviceTensor input) =>
        TensorChecks.ExactOrDisjoint(op, outputName, output, inputName, input);

    /// <summary>An output that must not share any memory with an input (or another output).</summary>
    public static void Disjoint<TA, TB>(string op, string outputName, DeviceView<TA> output, string otherName, DeviceView<TB> other)
        where TA : unmanaged where TB : unmanaged
    {
        if (Overlaps.Of(output, other) != Overlap.None)
            ThrowHelper.Argument(op, outputName, $"{outputName} overlaps {otherName}; {op} needs them in separate memory.");
    }

    /// <summary>An output that may be exactly an input (in place) but not overlap it otherwise.</summary>
    public static void ExactOrDisjoint<TA, TB>(string op, string outputName, DeviceView<TA> output, string inputName, DeviceView<TB> input)
        where TA : unmanaged where TB : unmanaged
    {
        if (Overlaps.Of(output, input) == Overlap.Partial
            || (Overlaps.Of(output, input) == Overlap.Exact && output.Length != input.Length))
            ThrowHelper.Argument(op, outputName, $"{outputName} partially overlaps {inputName}; an output may share an input's memory only exactly (in place).");
    }
}
