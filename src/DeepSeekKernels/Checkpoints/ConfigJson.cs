using System.Globalization;
using System.Text.Json;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// Typed reads of one JSON object of a config.json, tolerant as Python writes it: unknown keys ignored, null
/// read as absent, integers accepted when written as floats (4096.0). Wrong types are errors that name the
/// source file and the key with its path (<c>rope_scaling.factor</c>).
/// </summary>
internal readonly struct ConfigJson
{
    readonly JsonElement _object;

    public ConfigJson(JsonElement obj, string source, string prefix)
    {
        _object = obj;
        Source = source;
        Prefix = prefix;
    }

    /// <summary>The file (or name) the JSON came from.</summary>
    public string Source { get; }

    /// <summary>The key path of this object, with a trailing dot ("rope_scaling."), or empty at the root.</summary>
    public string Prefix { get; }

    /// <summary>The full key path of <paramref name="key"/>.</summary>
    public string KeyPath(string key) => Prefix + key;

    /// <summary>True when <paramref name="key"/> is present and not null.</summary>
    public bool Has(string key) => TryGet(key, out _);

    public string? String(string key)
    {
        if (!TryGet(key, out var value))
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw Error(key, $"must be a string, got {value.GetRawText()}");
        return value.GetString();
    }

    public bool? Bool(string key)
    {
        if (!TryGet(key, out var value))
            return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(key, $"must be true or false, got {value.GetRawText()}"),
        };
    }

    public double? Double(string key)
    {
        if (!TryGet(key, out var value))
            return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || !double.IsFinite(number))
            throw Error(key, $"must be a finite number, got {value.GetRawText()}");
        return number;
    }

    public int? Int(string key) => TryGet(key, out var value) ? ToInt(key, value) : null;

    /// <summary>An integer that must be present and positive.</summary>
    public int RequiredPositive(string key)
    {
        int value = Int(key) ?? throw Error(key, "is missing");
        return CheckPositive(key, value);
    }

    /// <summary>An integer, <paramref name="fallback"/> when absent, that must be positive.</summary>
    public int Positive(string key, int fallback) => CheckPositive(key, Int(key) ?? fallback);

    /// <summary>An integer, <paramref name="fallback"/> when absent, that must be zero or more.</summary>
    public int NonNegative(string key, int fallback)
    {
        int value = Int(key) ?? fallback;
        if (value < 0)
            throw Error(key, $"must be zero or more, got {value}");
        return value;
    }

    int CheckPositive(string key, int value)
    {
        if (value <= 0)
            throw Error(key, $"must be positive, got {value}");
        return value;
    }

    /// <summary>An integer or a list of integers (eos_token_id); null when absent.</summary>
    public IReadOnlyList<int>? IntOrIntList(string key)
    {
        if (!TryGet(key, out var value))
            return null;
        if (value.ValueKind != JsonValueKind.Array)
            return [ToInt(key, value)];
        var list = new List<int>(value.GetArrayLength());
        foreach (var item in value.EnumerateArray())
            list.Add(ToInt(key, item));
        return list.AsReadOnly();
    }

    /// <summary>The object at <paramref name="key"/>; null when absent or null.</summary>
    public ConfigJson? Object(string key)
    {
        if (!TryGet(key, out var value))
            return null;
        if (value.ValueKind != JsonValueKind.Object)
            throw Error(key, $"must be an object, got {value.GetRawText()}");
        return new ConfigJson(value, Source, Prefix + key + ".");
    }

    /// <summary>The raw element at <paramref name="key"/>, when present and not null.</summary>
    public bool TryGet(string key, out JsonElement value) =>
        _object.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

    /// <summary>"source: 'prefix.key' message".</summary>
    public CheckpointException Error(string key, string message) =>
        new($"{Source}: '{KeyPath(key)}' {message}", Source, null);

    /// <summary>An <see cref="UnsupportedModelException"/> for <paramref name="key"/> = <paramref name="value"/>.</summary>
    public UnsupportedModelException Unsupported(string key, string value, string supported) =>
        new($"{Source}: {KeyPath(key)} '{value}' is not supported (supported: {supported})", Source, KeyPath(key), value);

    int ToInt(string key, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Number)
        {
            if (value.TryGetInt32(out int i))
                return i;
            if (value.TryGetDouble(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
                return (int)d;
        }
        throw Error(key, $"must be an integer (32-bit), got {value.GetRawText()}");
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Source}:{Prefix}");
}
