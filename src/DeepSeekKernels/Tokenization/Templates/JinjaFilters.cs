using System.Globalization;

namespace DeepSeekKernels.Tokenization.Templates;

/// <summary>
/// The filters and tests chat templates use, as Jinja2 (and transformers, for <c>tojson</c>) define them. An unknown name is
/// refused with a <see cref="ChatTemplateException"/> naming it, never ignored.
/// </summary>
internal static class JinjaFilters
{
    public static object? Apply(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs, int position)
    {
        object? Arg(int i, string keyword, object? fallback) => i < args.Count ? args[i] : kwargs.TryGetValue(keyword, out var v) ? v : fallback;
        switch (name)
        {
            case "tojson":
                return JinjaRuntime.ToJson(value, Arg(0, "indent", null) is { } indent and not JinjaUndefined ? (int)JinjaRuntime.ToLong(indent) : null);
            case "length" or "count":
                return value switch
                {
                    string s => (long)JinjaRuntime.CodePoints(s).Length,
                    List<object?> l => (long)l.Count,
                    Dictionary<string, object?> d => (long)d.Count,
                    JinjaUndefined => 0L,
                    _ => throw new ChatTemplateException($"length: {JinjaRuntime.TypeName(value)} has no length", position),
                };
            case "string":
                return JinjaRuntime.Str(value);
            case "trim":
                return Arg(0, "chars", null) is string chars ? JinjaRuntime.Str(value).Trim(chars.ToCharArray()) : JinjaRuntime.Str(value).Trim();
            case "upper":
                return JinjaRuntime.Str(value).ToUpperInvariant();
            case "lower":
                return JinjaRuntime.Str(value).ToLowerInvariant();
            case "capitalize":
            {
                string s = JinjaRuntime.Str(value);
                return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            }
            case "title":
                return CultureInfo.InvariantCulture.TextInfo.ToTitleCase(JinjaRuntime.Str(value).ToLowerInvariant());
            case "replace":
                return JinjaRuntime.Str(value).Replace(JinjaRuntime.Str(args[0]), JinjaRuntime.Str(args[1]), StringComparison.Ordinal);
            case "join":
            {
                string separator = JinjaRuntime.Str(Arg(0, "d", ""));
                var items = JinjaRuntime.Iterate(value, position);
                if (Arg(1, "attribute", null) is string attribute)
                    items = [.. items.Select(i => JinjaRuntime.GetAttribute(i, attribute, position))];
                return string.Join(separator, items.Select(JinjaRuntime.Str));
            }
            case "first":
                return JinjaRuntime.Iterate(value, position) is { Count: > 0 } first ? first[0] : new JinjaUndefined("first");
            case "last":
                return JinjaRuntime.Iterate(value, position) is { Count: > 0 } last ? last[^1] : new JinjaUndefined("last");
            case "list":
                return JinjaRuntime.Iterate(value, position).ToList();
            case "reverse":
                return value is string rs ? string.Concat(JinjaRuntime.CodePoints(rs).Reverse()) : Enumerable.Reverse(JinjaRuntime.Iterate(value, position)).ToList();
            case "items":
                return value is Dictionary<string, object?> dict
                    ? dict.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                    : throw new ChatTemplateException($"items: {JinjaRuntime.TypeName(value)} is not a dict", position);
            case "default" or "d":
            {
                bool boolean = JinjaRuntime.Truthy(Arg(1, "boolean", false));
                return value is JinjaUndefined || (boolean && !JinjaRuntime.Truthy(value)) ? Arg(0, "default_value", "") : value;
            }
            case "safe":
                return value;
            case "int":
                return value switch
                {
                    long l => l,
                    double d => (long)d,
                    bool b => b ? 1L : 0L,
                    string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) => p,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => (long)p,
                    _ => Arg(0, "default", 0L),
                };
            case "float":
                return value switch
                {
                    long l => (double)l,
                    double d => d,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
                    _ => Arg(0, "default", 0.0),
                };
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    _ => throw new ChatTemplateException($"abs: {JinjaRuntime.TypeName(value)} is not a number", position),
                };
            case "selectattr" or "rejectattr":
            {
                string attribute = JinjaRuntime.Str(args[0]);
                bool select = name == "selectattr";
                return JinjaRuntime.Iterate(value, position).Where(item =>
                {
                    var v = JinjaRuntime.GetAttribute(item, attribute, position);
                    bool pass = args.Count > 1 ? Test(JinjaRuntime.Str(args[1]), v, [.. args.Skip(2)], position) : JinjaRuntime.Truthy(v);
                    return pass == select;
                }).ToList();
            }
            case "map":
            {
                if (kwargs.TryGetValue("attribute", out var attr) && attr is string attribute)
                    return JinjaRuntime.Iterate(value, position).Select(i => JinjaRuntime.GetAttribute(i, attribute, position)).ToList();
                if (args.Count > 0 && args[0] is string filter)
                    return JinjaRuntime.Iterate(value, position).Select(i => Apply(filter, i, [.. args.Skip(1)], [], position)).ToList();
                throw new ChatTemplateException("map: give attribute= or a filter name", position);
            }
            default:
                throw new ChatTemplateException($"the filter '{name}' is not supported", position);
        }
    }

    public static bool Test(string name, object? value, List<object?> args, int position) => name switch
    {
        "defined" => value is not JinjaUndefined,
        "undefined" => value is JinjaUndefined,
        "none" => value is null,
        "string" => value is string,
        "number" => value is long or double,
        "integer" => value is long,
        "float" => value is double,
        "boolean" => value is bool,
        "true" => value is true,
        "false" => value is false,
        "mapping" => value is Dictionary<string, object?> or JinjaNamespace,
        "iterable" => value is string or List<object?> or Dictionary<string, object?>,
        "sequence" => value is string or List<object?> or Dictionary<string, object?>,
        "callable" => value is JinjaCallable,
        "even" => JinjaRuntime.ToLong(value) % 2 == 0,
        "odd" => JinjaRuntime.ToLong(value) % 2 != 0,
        "divisibleby" => JinjaRuntime.ToLong(value) % JinjaRuntime.ToLong(args[0]) == 0,
        "equalto" or "eq" or "==" or "sameas" => JinjaRuntime.ValueEquals(value, args[0]),
        "ne" or "!=" => !JinjaRuntime.ValueEquals(value, args[0]),
        "in" => args[0] switch
        {
            List<object?> l => l.Any(x => JinjaRuntime.ValueEquals(x, value)),
            string s => value is string part && s.Contains(part, StringComparison.Ordinal),
            Dictionary<string, object?> d => value is string key && d.ContainsKey(key),
            _ => false,
        },
        _ => throw new ChatTemplateException($"the test '{name}' is not supported", position),
    };
}
