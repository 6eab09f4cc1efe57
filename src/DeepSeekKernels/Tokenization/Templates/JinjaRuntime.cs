using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace DeepSeekKernels.Tokenization.Templates;

/// <summary>Jinja's undefined value: renders as "", is false, and fails any other use with the name it stands for.</summary>
internal sealed class JinjaUndefined(string name)
{
    public string Name { get; } = name;
}

/// <summary><c>namespace(...)</c>: attributes a loop body can assign (<c>{% set ns.x = ... %}</c>).</summary>
internal sealed class JinjaNamespace
{
    public Dictionary<string, object?> Values { get; } = new(StringComparer.Ordinal);
}

/// <summary>A macro or a bound method: called with positional and keyword arguments.</summary>
internal sealed class JinjaCallable(string name, Func<List<object?>, Dictionary<string, object?>, object?> call)
{
    public string Name { get; } = name;
    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => call(args, kwargs);
}

/// <summary>
/// Renders a parsed template. Values are what JSON gives a chat template: null (None), <see cref="JinjaUndefined"/>, bool,
/// long, double, string, <see cref="List{T}"/> of values and <see cref="Dictionary{TKey, TValue}"/> of string keys (insertion
/// order kept), plus namespaces and callables. Printing, truthiness, equality and <c>tojson</c> follow Python and transformers
/// (<c>tojson</c> is <c>json.dumps(ensure_ascii=False)</c>, Python's separators); string methods are Python's that chat
/// templates call (split, strip, lstrip, rstrip, startswith, endswith, upper, lower, replace, title, capitalize, count, find,
/// format is not), dict's items / keys / values / get. Globals: namespace, range, raise_exception, strftime_now.
/// </summary>
internal sealed class JinjaRuntime
{
    readonly StringBuilder _output = new();
    readonly List<Dictionary<string, object?>> _scopes = [];

    sealed class LoopControl(bool isBreak) : Exception
    {
        public bool IsBreak { get; } = isBreak;
    }

    public static string Render(IReadOnlyList<JinjaNode> template, IReadOnlyDictionary<string, object?> context)
    {
        var runtime = new JinjaRuntime();
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["namespace"] = new JinjaCallable("namespace", (args, kwargs) =>
            {
                var ns = new JinjaNamespace();
                foreach (var arg in args)
                    if (arg is Dictionary<string, object?> d)
                        foreach (var (k, v) in d)
                            ns.Values[k] = v;
                foreach (var (k, v) in kwargs)
                    ns.Values[k] = v;
                return ns;
            }),
            ["range"] = new JinjaCallable("range", (args, _) =>
            {
                long start = 0, stop, step = 1;
                if (args.Count == 1) stop = ToLong(args[0]);
                else { start = ToLong(args[0]); stop = ToLong(args[1]); if (args.Count > 2) step = ToLong(args[2]); }
                if (step == 0)
                    throw new ChatTemplateException("range: the step cannot be zero", -1);
                var list = new List<object?>();
                for (long i = start; step > 0 ? i < stop : i > stop; i += step)
                {
                    if (list.Count == MaxRange)
                        throw new ChatTemplateException($"range: more than {MaxRange:N0} numbers", -1);
                    list.Add(i);
                }
                return list;
            }),
            ["raise_exception"] = new JinjaCallable("raise_exception", (args, _) =>
                throw new ChatTemplateException($"the template raised: {(args.Count > 0 ? Str(args[0]) : "")}", -1)),
            ["strftime_now"] = new JinjaCallable("strftime_now", (args, _) => Strftime(DateTime.Now, args.Count > 0 ? Str(args[0]) : "")),
        };
        runtime._scopes.Add(globals);
        runtime._scopes.Add(new Dictionary<string, object?>(context, StringComparer.Ordinal));
        runtime.Execute(template);
        return runtime._output.ToString();
    }

    void Execute(IReadOnlyList<JinjaNode> nodes)
    {
        foreach (var node in nodes)
            Execute(node);
    }

    void Execute(JinjaNode node)
    {
        switch (node)
        {
            case TextNode text:
                _output.Append(text.Text);
                break;
            case OutputNode output:
                _output.Append(Str(Evaluate(output.Expr)));
                break;
            case IfNode ifNode:
                foreach (var (condition, body) in ifNode.Branches)
                {
                    if (Truthy(Evaluate(condition)))
                    {
                        Execute(body);
                        return;
                    }
                }
                Execute(ifNode.Else);
                break;
            case ForNode forNode:
                ExecuteFor(forNode);
                break;
            case SetNode set:
                Assign(set);
                break;
            case LoopControlNode control:
                throw new LoopControl(control.Break);
            case MacroNode macro:
                _scopes[^1][macro.Name] = new JinjaCallable(macro.Name, (args, kwargs) => CallMacro(macro, args, kwargs));
                break;
            case GroupNode group:
                Execute(group.Body);
                break;
            default:
                throw new ChatTemplateException($"cannot run {node.GetType().Name}", node.Position);
        }
    }

    /// <summary>Most numbers a range makes, and most macro calls in progress (a recursive macro must not overflow the stack).</summary>
    const int MaxRange = 1_000_000, MaxMacroDepth = 64;

    int _macroDepth;

    object? CallMacro(MacroNode macro, List<object?> args, Dictionary<string, object?> kwargs)
    {
        if (_macroDepth == MaxMacroDepth)
            throw new ChatTemplateException($"macro '{macro.Name}': more than {MaxMacroDepth} calls deep", macro.Position);
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        for (int i = 0; i < macro.Parameters.Count; i++)
        {
            var (name, fallback) = macro.Parameters[i];
            scope[name] = i < args.Count ? args[i] : kwargs.TryGetValue(name, out var v) ? v : fallback is null ? new JinjaUndefined(name) : Evaluate(fallback);
        }
        var saved = _output.Length;
        _scopes.Add(scope);
        _macroDepth++;
        try
        {
            Execute(macro.Body);
        }
        finally
        {
            _macroDepth--;
            _scopes.RemoveAt(_scopes.Count - 1);
        }
        string text = _output.ToString(saved, _output.Length - saved);
        _output.Length = saved;
        return text;
    }

    void ExecuteFor(ForNode node)
    {
        var items = Iterate(Evaluate(node.Iterable), node.Iterable.Position);
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        _scopes.Add(scope);
        try
        {
            if (node.Filter != null)
            {
                var kept = new List<object?>();
                foreach (var item in items)
                {
                    Bind(scope, node.Targets, item, node.Position);
                    if (Truthy(Evaluate(node.Filter)))
                        kept.Add(item);
                }
                items = kept;
            }
            for (int i = 0; i < items.Count; i++)
            {
                scope.Clear(); // Jinja2: what an iteration sets is gone in the next (it reads the outer value again)
                Bind(scope, node.Targets, items[i], node.Position);
                scope["loop"] = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["index"] = (long)i + 1, ["index0"] = (long)i, ["first"] = i == 0, ["last"] = i == items.Count - 1,
                    ["length"] = (long)items.Count, ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                    ["previtem"] = i > 0 ? items[i - 1] : new JinjaUndefined("loop.previtem"),
                    ["nextitem"] = i + 1 < items.Count ? items[i + 1] : new JinjaUndefined("loop.nextitem"),
                };
                try
                {
                    Execute(node.Body);
                }
                catch (LoopControl control)
                {
                    if (control.IsBreak)
                        break;
                }
            }
        }
        finally
        {
            _scopes.RemoveAt(_scopes.Count - 1);
        }
        if (items.Count == 0)
            Execute(node.Else);
    }

    static void Bind(Dictionary<string, object?> scope, IReadOnlyList<string> targets, object? item, int position)
    {
        if (targets.Count == 1)
        {
            scope[targets[0]] = item;
            return;
        }
        if (item is not List<object?> tuple || tuple.Count != targets.Count)
            throw new ChatTemplateException($"cannot unpack {TypeName(item)} into {targets.Count} names", position);
        for (int i = 0; i < targets.Count; i++)
            scope[targets[i]] = tuple[i];
    }

    void Assign(SetNode set)
    {
        var value = Evaluate(set.Value);
        if (set.Attribute is { } attribute)
        {
            if (Lookup(set.Targets[0]) is not JinjaNamespace ns)
                throw new ChatTemplateException($"'{set.Targets[0]}' is not a namespace; only a namespace's attributes can be set", set.Position);
            ns.Values[attribute] = value;
            return;
        }
        // Jinja scoping: a set inside a for loop is local to its iteration; elsewhere it sets the template's variable
        var scope = _scopes[^1];
        if (set.Targets.Count == 1)
            scope[set.Targets[0]] = value;
        else
            Bind(scope, set.Targets, value, set.Position);
    }

    object? Lookup(string name)
    {
        for (int i = _scopes.Count - 1; i >= 0; i--)
            if (_scopes[i].TryGetValue(name, out var value))
                return value;
        return new JinjaUndefined(name);
    }

    object? Evaluate(JinjaExpr expr)
    {
        switch (expr)
        {
            case LiteralExpr literal:
                return literal.Value;
            case NameExpr name:
                return Lookup(name.Name);
            case ListExpr list:
                return list.Items.Select(Evaluate).ToList();
            case DictExpr dict:
            {
                var result = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (key, value) in dict.Items)
                    result[Str(Evaluate(key))] = Evaluate(value);
                return result;
            }
            case AttributeExpr attribute:
                return GetAttribute(Evaluate(attribute.Target), attribute.Name, attribute.Position);
            case ItemExpr item:
                return GetItem(Evaluate(item.Target), Evaluate(item.Key), item.Position);
            case SliceExpr slice:
                return Slice(Evaluate(slice.Target), slice.Start is null ? null : Evaluate(slice.Start), slice.Stop is null ? null : Evaluate(slice.Stop),
                    slice.Step is null ? null : Evaluate(slice.Step), slice.Position);
            case CallExpr call:
            {
                var target = Evaluate(call.Target);
                if (target is not JinjaCallable callable)
                    throw new ChatTemplateException($"{Describe(call.Target)} ({TypeName(target)}) is not callable", call.Position);
                var args = call.Args.Select(Evaluate).ToList();
                var kwargs = call.Kwargs.ToDictionary(k => k.Name, k => Evaluate(k.Value), StringComparer.Ordinal);
                return callable.Invoke(args, kwargs);
            }
            case FilterExpr filter:
                return JinjaFilters.Apply(filter.Name, Evaluate(filter.Target), filter.Args.Select(Evaluate).ToList(),
                    filter.Kwargs.ToDictionary(k => k.Name, k => Evaluate(k.Value), StringComparer.Ordinal), filter.Position);
            case TestExpr test:
                return JinjaFilters.Test(test.Name, Evaluate(test.Target), test.Args.Select(Evaluate).ToList(), test.Position) != test.Negated;
            case UnaryExpr unary:
            {
                var operand = Evaluate(unary.Operand);
                return unary.Op switch
                {
                    "not" => !Truthy(operand),
                    "-" => operand switch
                    {
                        long l => (object)(-l), // not a switch of long and double arms: that would make every result a double
                        double d => -d,
                        _ => throw new ChatTemplateException($"cannot negate {TypeName(operand)}", unary.Position),
                    },
                    _ => operand is long or double ? operand : throw new ChatTemplateException($"cannot apply unary + to {TypeName(operand)}", unary.Position),
                };
            }
            case BinaryExpr binary:
                return EvaluateBinary(binary);
            case ConditionalExpr conditional:
                return Truthy(Evaluate(conditional.Condition)) ? Evaluate(conditional.Then)
                    : conditional.Else is null ? new JinjaUndefined("the conditional's else") : Evaluate(conditional.Else);
            default:
                throw new ChatTemplateException($"cannot evaluate {expr.GetType().Name}", expr.Position);
        }
    }

    static string Describe(JinjaExpr expr) => expr switch
    {
        NameExpr n => $"'{n.Name}'",
        AttributeExpr a => $"'.{a.Name}'",
        _ => "the value",
    };

    object? EvaluateBinary(BinaryExpr b)
    {
        if (b.Op == "and")
        {
            var left = Evaluate(b.Left);
            return Truthy(left) ? Evaluate(b.Right) : left;
        }
        if (b.Op == "or")
        {
            var left = Evaluate(b.Left);
            return Truthy(left) ? left : Evaluate(b.Right);
        }
        var l = Evaluate(b.Left);
        var r = Evaluate(b.Right);
        switch (b.Op)
        {
            case "==": return ValueEquals(l, r);
            case "!=": return !ValueEquals(l, r);
            case "in": return Contains(r, l, b.Position);
            case "not in": return !Contains(r, l, b.Position);
            case "~": return Str(l) + Str(r);
            case "<" or ">" or "<=" or ">=":
            {
                int c = Compare(l, r, b.Position);
                return b.Op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
            }
            case "+":
                if (l is string ls && r is string rs) return ls + rs;
                if (l is List<object?> ll && r is List<object?> rl) return ll.Concat(rl).ToList();
                return Arithmetic(b.Op, l, r, b.Position);
            case "*":
                if (l is string s && r is long n) return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, n)));
                return Arithmetic(b.Op, l, r, b.Position);
            default:
                return Arithmetic(b.Op, l, r, b.Position);
        }
    }

    static object Arithmetic(string op, object? l, object? r, int position)
    {
        if (l is bool lb) l = lb ? 1L : 0L;
        if (r is bool rb) r = rb ? 1L : 0L;
        if (l is long a && r is long c)
        {
            switch (op)
            {
                case "+": return a + c;
                case "-": return a - c;
                case "*": return a * c;
                case "/": return c == 0 ? throw new ChatTemplateException("division by zero", position) : (double)a / c;
                case "//": return c == 0 ? throw new ChatTemplateException("division by zero", position) : (long)Math.Floor((double)a / c);
                case "%": return c == 0 ? throw new ChatTemplateException("modulo by zero", position) : ((a % c) + c) % c;
                case "**": return (long)Math.Pow(a, c);
            }
        }
        if (l is long or double && r is long or double)
        {
            double x = Convert.ToDouble(l, CultureInfo.InvariantCulture), y = Convert.ToDouble(r, CultureInfo.InvariantCulture);
            return op switch
            {
                "+" => x + y, "-" => x - y, "*" => x * y, "/" => x / y, "//" => Math.Floor(x / y),
                "%" => x - y * Math.Floor(x / y), _ => Math.Pow(x, y),
            };
        }
        throw new ChatTemplateException($"unsupported operand types for {op}: {TypeName(l)} and {TypeName(r)}", position);
    }

    internal static object? GetAttribute(object? target, string name, int position)
    {
        switch (target)
        {
            case JinjaNamespace ns:
                return ns.Values.TryGetValue(name, out var v) ? v : new JinjaUndefined(name);
            case Dictionary<string, object?> dict:
                if (dict.TryGetValue(name, out var value))
                    return value;
                return (object?)DictMethod(dict, name) ?? new JinjaUndefined(name);
            case string s:
                return (object?)StringMethod(s, name, position) ?? new JinjaUndefined(name);
            case List<object?> list when name is "append" or "index" or "count":
                return new JinjaCallable(name, (args, _) => name switch
                {
                    "append" => throw new ChatTemplateException("lists are immutable in a chat template (append)", position),
                    "index" => (long)list.FindIndex(x => ValueEquals(x, args[0])),
                    _ => (long)list.Count(x => ValueEquals(x, args[0])),
                });
            case JinjaUndefined u:
                throw new ChatTemplateException($"'{u.Name}' is undefined (reading its '{name}')", position);
            default:
                return new JinjaUndefined(name);
        }
    }

    static JinjaCallable? DictMethod(Dictionary<string, object?> dict, string name) => name switch
    {
        "items" => new JinjaCallable(name, (_, _) => dict.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()),
        "keys" => new JinjaCallable(name, (_, _) => dict.Keys.Select(k => (object?)k).ToList()),
        "values" => new JinjaCallable(name, (_, _) => dict.Values.ToList()),
        "get" => new JinjaCallable(name, (args, _) => dict.TryGetValue(Str(args[0]), out var v) ? v : args.Count > 1 ? args[1] : null),
        _ => null,
    };

    static JinjaCallable? StringMethod(string s, string name, int position)
    {
        static string? Chars(List<object?> args) => args.Count > 0 && args[0] is string c ? c : null;
        return name switch
        {
            "split" => new JinjaCallable(name, (args, _) =>
            {
                if (args.Count == 0 || args[0] is null)
                    return s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(x => (object?)x).ToList();
                string sep = Str(args[0]);
                if (sep.Length == 0)
                    throw new ChatTemplateException("split: empty separator", position);
                int max = args.Count > 1 ? (int)ToLong(args[1]) : -1;
                var parts = max < 0 ? s.Split(sep) : s.Split(sep, max + 1);
                return parts.Select(x => (object?)x).ToList();
            }),
            "strip" => new JinjaCallable(name, (args, _) => Chars(args) is { } c ? s.Trim(c.ToCharArray()) : s.Trim()),
            "lstrip" => new JinjaCallable(name, (args, _) => Chars(args) is { } c ? s.TrimStart(c.ToCharArray()) : s.TrimStart()),
            "rstrip" => new JinjaCallable(name, (args, _) => Chars(args) is { } c ? s.TrimEnd(c.ToCharArray()) : s.TrimEnd()),
            "startswith" => new JinjaCallable(name, (args, _) => args[0] is List<object?> l ? l.Any(p => s.StartsWith(Str(p), StringComparison.Ordinal)) : s.StartsWith(Str(args[0]), StringComparison.Ordinal)),
            "endswith" => new JinjaCallable(name, (args, _) => args[0] is List<object?> l ? l.Any(p => s.EndsWith(Str(p), StringComparison.Ordinal)) : s.EndsWith(Str(args[0]), StringComparison.Ordinal)),
            "upper" => new JinjaCallable(name, (_, _) => s.ToUpperInvariant()),
            "lower" => new JinjaCallable(name, (_, _) => s.ToLowerInvariant()),
            "title" => new JinjaCallable(name, (_, _) => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant())),
            "capitalize" => new JinjaCallable(name, (_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
            "replace" => new JinjaCallable(name, (args, _) => Str(args[0]).Length == 0 ? s : s.Replace(Str(args[0]), Str(args[1]), StringComparison.Ordinal)),
            "count" => new JinjaCallable(name, (args, _) => (long)CountOccurrences(s, Str(args[0]))),
            "find" => new JinjaCallable(name, (args, _) => (long)s.IndexOf(Str(args[0]), StringComparison.Ordinal)),
            _ => null,
        };
    }

    static int CountOccurrences(string s, string part)
    {
        if (part.Length == 0)
            return s.Length + 1;
        int count = 0;
        for (int i = s.IndexOf(part, StringComparison.Ordinal); i >= 0; i = s.IndexOf(part, i + part.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    static object? GetItem(object? target, object? key, int position)
    {
        switch (target)
        {
            case Dictionary<string, object?> dict:
                return key is string k && dict.TryGetValue(k, out var v) ? v : new JinjaUndefined(Str(key));
            case JinjaNamespace ns:
                return key is string nk && ns.Values.TryGetValue(nk, out var nv) ? nv : new JinjaUndefined(Str(key));
            case List<object?> list when key is long index:
            {
                long i = index < 0 ? list.Count + index : index;
                return i >= 0 && i < list.Count ? list[(int)i] : new JinjaUndefined($"[{index}]");
            }
            case string s when key is long index:
            {
                var points = CodePoints(s);
                long i = index < 0 ? points.Length + index : index;
                return i >= 0 && i < points.Length ? points[(int)i] : new JinjaUndefined($"[{index}]");
            }
            case JinjaUndefined u:
                throw new ChatTemplateException($"'{u.Name}' is undefined (reading [{Str(key)}] of it)", position);
            default:
                return key is string name ? GetAttribute(target, name, position) : new JinjaUndefined($"[{Str(key)}]");
        }
    }

    static object? Slice(object? target, object? start, object? stop, object? step, int position)
    {
        long stepValue = step is null ? 1 : ToLong(step);
        if (stepValue == 0)
            throw new ChatTemplateException("slice step cannot be zero", position);
        string[]? points = target is string text ? CodePoints(text) : null;
        int length = target switch
        {
            string => points!.Length,
            List<object?> l => l.Count,
            _ => throw new ChatTemplateException($"cannot slice {TypeName(target)}", position),
        };
        long Clamp(object? value, long fallback)
        {
            if (value is null)
                return fallback;
            long v = ToLong(value);
            if (v < 0) v += length;
            return stepValue > 0 ? Math.Clamp(v, 0, length) : Math.Clamp(v, -1, length - 1);
        }
        long from = Clamp(start, stepValue > 0 ? 0 : length - 1), to = Clamp(stop, stepValue > 0 ? length : -1);
        var indices = new List<int>();
        for (long i = from; stepValue > 0 ? i < to : i > to; i += stepValue)
            indices.Add((int)i);
        return points != null
            ? string.Concat(indices.Select(i => points[i]))
            : indices.Select(i => ((List<object?>)target!)[i]).ToList();
    }

    static bool Contains(object? container, object? item, int position) => container switch
    {
        string s => item is string part ? s.Contains(part, StringComparison.Ordinal)
            : throw new ChatTemplateException($"'in <string>' requires a string, not {TypeName(item)}", position),
        List<object?> list => list.Any(x => ValueEquals(x, item)),
        Dictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        JinjaNamespace ns => item is string nk && ns.Values.ContainsKey(nk),
        JinjaUndefined u => throw new ChatTemplateException($"'{u.Name}' is undefined (testing 'in' it)", position),
        _ => throw new ChatTemplateException($"cannot test 'in' {TypeName(container)}", position),
    };

    /// <summary>A string's characters as Python sees them: code points, a surrogate pair being one.</summary>
    internal static string[] CodePoints(string s) => [.. s.EnumerateRunes().Select(r => r.ToString())];

    internal static List<object?> Iterate(object? value, int position) => value switch
    {
        List<object?> list => list,
        Dictionary<string, object?> dict => dict.Keys.Select(k => (object?)k).ToList(),
        string s => CodePoints(s).Select(c => (object?)c).ToList(),
        JinjaUndefined => [], // Jinja iterates an undefined value as empty
        _ => throw new ChatTemplateException($"{TypeName(value)} is not iterable", position),
    };

    internal static bool Truthy(object? value) => value switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    internal static bool ValueEquals(object? a, object? b)
    {
        if (a is JinjaUndefined || b is JinjaUndefined)
            return a is JinjaUndefined && b is JinjaUndefined;
        if (a is null || b is null)
            return a is null && b is null;
        if (a is bool ab) a = ab ? 1L : 0L;
        if (b is bool bb) b = bb ? 1L : 0L;
        if (a is long or double && b is long or double)
            return Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture);
        if (a is List<object?> la && b is List<object?> lb)
            return la.Count == lb.Count && la.Zip(lb).All(p => ValueEquals(p.First, p.Second));
        if (a is Dictionary<string, object?> da && b is Dictionary<string, object?> db)
            return da.Count == db.Count && da.All(kv => db.TryGetValue(kv.Key, out var v) && ValueEquals(kv.Value, v));
        return a.Equals(b);
    }

    static int Compare(object? a, object? b, int position)
    {
        if (a is long or double or bool && b is long or double or bool)
            return Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture));
        if (a is string sa && b is string sb)
            return string.CompareOrdinal(sa, sb);
        throw new ChatTemplateException($"cannot compare {TypeName(a)} with {TypeName(b)}", position);
    }

    internal static long ToLong(object? value) => value switch
    {
        long l => l,
        double d => (long)d,
        bool b => b ? 1 : 0,
        string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) => p,
        _ => throw new ChatTemplateException($"expected an integer, got {TypeName(value)}", -1),
    };

    internal static string TypeName(object? value) => value switch
    {
        null => "None",
        JinjaUndefined u => $"undefined '{u.Name}'",
        bool => "a boolean",
        long => "an integer",
        double => "a float",
        string => "a string",
        List<object?> => "a list",
        Dictionary<string, object?> => "a dict",
        JinjaNamespace => "a namespace",
        _ => "a callable",
    };

    /// <summary>A value as Python's <c>str()</c> prints it (the undefined value as "").</summary>
    internal static string Str(object? value) => value switch
    {
        null => "None",
        JinjaUndefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => PythonFloat(d),
        _ => Repr(value),
    };

    static string PythonFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        return r.Contains('.', StringComparison.Ordinal) || r.Contains('E', StringComparison.Ordinal) ? r.Replace("E", "e", StringComparison.Ordinal) : r + ".0";
    }

    /// <summary>Python's <c>repr()</c> of a value (lists and dicts print their items this way).</summary>
    static string Repr(object? value) => value switch
    {
        string s => "'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "'",
        List<object?> list => "[" + string.Join(", ", list.Select(Repr)) + "]",
        Dictionary<string, object?> dict => "{" + string.Join(", ", dict.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        JinjaNamespace => "<Namespace>",
        JinjaCallable c => $"<function {c.Name}>",
        _ => Str(value),
    };

    /// <summary>transformers' <c>tojson</c>: <c>json.dumps(value, ensure_ascii=False, indent=indent)</c>.</summary>
    internal static string ToJson(object? value, int? indent)
    {
        var text = new StringBuilder();
        WriteJson(text, value, indent, 0);
        return text.ToString();
    }

    static readonly JsonSerializerOptions StringOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static void WriteJson(StringBuilder text, object? value, int? indent, int depth)
    {
        switch (value)
        {
            case null or JinjaUndefined: text.Append("null"); break;
            case bool b: text.Append(b ? "true" : "false"); break;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: text.Append(double.IsFinite(d) ? PythonFloat(d) : double.IsNaN(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity"); break;
            case string s: text.Append(JsonString(s)); break;
            case List<object?> list:
                WriteItems(text, '[', ']', list, indent, depth, (item, d) => WriteJson(text, item, indent, d));
                break;
            case Dictionary<string, object?> dict:
                WriteItems(text, '{', '}', dict.ToList(), indent, depth, (kv, d) =>
                {
                    text.Append(JsonString(kv.Key)).Append(": ");
                    WriteJson(text, kv.Value, indent, d);
                });
                break;
            case JinjaNamespace ns:
                WriteJson(text, ns.Values, indent, depth);
                break;
            default:
                throw new ChatTemplateException($"tojson: {TypeName(value)} is not JSON", -1);
        }
    }

    static void WriteItems<T>(StringBuilder text, char open, char close, IList<T> items, int? indent, int depth, Action<T, int> write)
    {
        text.Append(open);
        if (items.Count == 0)
        {
            text.Append(close);
            return;
        }
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
                text.Append(indent is null ? ", " : ",");
            if (indent is int n)
                text.Append('\n').Append(' ', n * (depth + 1));
            write(items[i], depth + 1);
        }
        if (indent is int m)
            text.Append('\n').Append(' ', m * depth);
        text.Append(close);
    }

    /// <summary>A JSON string as Python's json.dumps(ensure_ascii=False) writes it: only ", \ and control characters escaped.</summary>
    static string JsonString(string s)
    {
        var text = new StringBuilder("\"");
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                default:
                    if (c < 0x20)
                        text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        text.Append(c);
                    break;
            }
        }
        return text.Append('"').ToString();
    }

    /// <summary>strftime for the directives chat templates use (%d %b %B %Y %m %H %M %S %A %a %y %j %%).</summary>
    static string Strftime(DateTime t, string format)
    {
        var text = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                text.Append(format[i]);
                continue;
            }
            char d = format[++i];
            text.Append(d switch
            {
                'd' => t.ToString("dd", CultureInfo.InvariantCulture),
                'b' => t.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => t.ToString("MMMM", CultureInfo.InvariantCulture),
                'Y' => t.ToString("yyyy", CultureInfo.InvariantCulture),
                'y' => t.ToString("yy", CultureInfo.InvariantCulture),
                'm' => t.ToString("MM", CultureInfo.InvariantCulture),
                'H' => t.ToString("HH", CultureInfo.InvariantCulture),
                'M' => t.ToString("mm", CultureInfo.InvariantCulture),
                'S' => t.ToString("ss", CultureInfo.InvariantCulture),
                'A' => t.ToString("dddd", CultureInfo.InvariantCulture),
                'a' => t.ToString("ddd", CultureInfo.InvariantCulture),
                'j' => t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + d,
            });
        }
        return text.ToString();
    }
}
