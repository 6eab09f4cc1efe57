using System.Globalization;

namespace DeepSeekKernels.Tokenization.Templates;

/// <summary>
/// Parses <see cref="JinjaLexer"/>'s tokens into <see cref="JinjaNode"/>s: Jinja2's statements that chat templates use (if /
/// elif / else, for with else and an inline filter, set of names and namespace attributes, break / continue, macro,
/// generation) and its expression grammar with Jinja2's precedence (conditional, or, and, not, comparisons and
/// <c>in</c>, + -, ~, * / // %, **, unary -, then postfix attribute / item / slice / call, filters and <c>is</c> tests).
/// Anything else is refused with a <see cref="ChatTemplateException"/> that names it and its position.
/// </summary>
internal sealed class JinjaParser
{
    readonly List<JinjaToken> _tokens;
    int _at;

    JinjaParser(List<JinjaToken> tokens) => _tokens = tokens;

    public static IReadOnlyList<JinjaNode> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.ParseBody([], out string? end);
        if (end != null)
            throw new ChatTemplateException($"'{{% {end} %}}' has no block to end", parser.Peek.Position);
        return body;
    }

    JinjaToken Peek => _tokens[_at];

    JinjaToken Next() => _tokens[_at++];

    bool IsOp(string op) => Peek.Kind == JinjaTokenKind.Operator && Peek.Value == op;

    bool IsName(string name) => Peek.Kind == JinjaTokenKind.Name && Peek.Value == name;

    bool AcceptOp(string op)
    {
        if (!IsOp(op))
            return false;
        _at++;
        return true;
    }

    bool AcceptName(string name)
    {
        if (!IsName(name))
            return false;
        _at++;
        return true;
    }

    void ExpectOp(string op)
    {
        if (!AcceptOp(op))
            throw Unexpected($"'{op}'");
    }

    string ExpectName()
    {
        if (Peek.Kind != JinjaTokenKind.Name)
            throw Unexpected("a name");
        return Next().Value;
    }

    void Expect(JinjaTokenKind kind, string what)
    {
        if (Peek.Kind != kind)
            throw Unexpected(what);
        _at++;
    }

    ChatTemplateException Unexpected(string expected) => new(
        $"expected {expected}, found {(Peek.Kind == JinjaTokenKind.End ? "the end of the template" : $"'{Peek.Value}'")}", Peek.Position);

    /// <summary>Nodes up to a block tag named in <paramref name="ends"/> (consumed up to its name, which is returned), or the end.</summary>
    List<JinjaNode> ParseBody(string[] ends, out string? end)
    {
        var nodes = new List<JinjaNode>();
        while (true)
        {
            var token = Peek;
            switch (token.Kind)
            {
                case JinjaTokenKind.End:
                    end = null;
                    if (ends.Length > 0)
                        throw new ChatTemplateException($"the template ends before '{{% {ends[^1]} %}}'", token.Position);
                    return nodes;
                case JinjaTokenKind.Text:
                    _at++;
                    nodes.Add(new TextNode(token.Value, token.Position));
                    break;
                case JinjaTokenKind.VariableStart:
                    _at++;
                    var expr = ParseExpression();
                    Expect(JinjaTokenKind.VariableEnd, "'}}'");
                    nodes.Add(new OutputNode(expr, token.Position));
                    break;
                case JinjaTokenKind.BlockStart:
                    _at++;
                    if (Peek.Kind == JinjaTokenKind.Name && (ends.Contains(Peek.Value) || Peek.Value.StartsWith("end", StringComparison.Ordinal) || Peek.Value is "elif" or "else"))
                    {
                        if (!ends.Contains(Peek.Value))
                            throw new ChatTemplateException($"unexpected '{{% {Peek.Value} %}}'", Peek.Position);
                        end = Next().Value;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(token.Position));
                    break;
                default:
                    throw Unexpected("text or a tag");
            }
        }
    }

    JinjaNode ParseStatement(int position)
    {
        string keyword = ExpectName();
        switch (keyword)
        {
            case "if":
            {
                var branches = new List<(JinjaExpr, IReadOnlyList<JinjaNode>)>();
                var condition = ParseExpression();
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                while (true)
                {
                    var body = ParseBody(["elif", "else", "endif"], out string? end);
                    branches.Add((condition, body));
                    if (end == "elif")
                    {
                        condition = ParseExpression();
                        Expect(JinjaTokenKind.BlockEnd, "'%}'");
                        continue;
                    }
                    IReadOnlyList<JinjaNode> elseBody = [];
                    if (end == "else")
                    {
                        Expect(JinjaTokenKind.BlockEnd, "'%}'");
                        elseBody = ParseBody(["endif"], out _);
                    }
                    Expect(JinjaTokenKind.BlockEnd, "'%}'");
                    return new IfNode(branches, elseBody, position);
                }
            }
            case "for":
            {
                var targets = new List<string> { ExpectName() };
                while (AcceptOp(","))
                    targets.Add(ExpectName());
                if (!AcceptName("in"))
                    throw Unexpected("'in'");
                var iterable = ParseExpression(allowConditional: false);
                JinjaExpr? filter = AcceptName("if") ? ParseExpression(allowConditional: false) : null;
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                var body = ParseBody(["else", "endfor"], out string? end);
                IReadOnlyList<JinjaNode> elseBody = [];
                if (end == "else")
                {
                    Expect(JinjaTokenKind.BlockEnd, "'%}'");
                    elseBody = ParseBody(["endfor"], out _);
                }
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                return new ForNode(targets, iterable, filter, body, elseBody, position);
            }
            case "set":
            {
                var targets = new List<string> { ExpectName() };
                string? attribute = null;
                if (AcceptOp("."))
                    attribute = ExpectName();
                else
                    while (AcceptOp(","))
                        targets.Add(ExpectName());
                if (!IsOp("="))
                    throw new ChatTemplateException("block assignments ({% set x %}...{% endset %}) are not supported", Peek.Position);
                _at++;
                var value = ParseTuple();
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                return new SetNode(targets, attribute, value, position);
            }
            case "break":
            case "continue":
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                return new LoopControlNode(keyword == "break", position);
            case "macro":
            {
                string name = ExpectName();
                ExpectOp("(");
                var parameters = new List<(string, JinjaExpr?)>();
                while (!AcceptOp(")"))
                {
                    if (parameters.Count > 0)
                        ExpectOp(",");
                    string parameter = ExpectName();
                    parameters.Add((parameter, AcceptOp("=") ? ParseExpression() : null));
                }
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                var body = ParseBody(["endmacro"], out _);
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                return new MacroNode(name, parameters, body, position);
            }
            case "generation":
            {
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                var body = ParseBody(["endgeneration"], out _);
                Expect(JinjaTokenKind.BlockEnd, "'%}'");
                return new GroupNode(body, position);
            }
            default:
                throw new ChatTemplateException($"the statement '{{% {keyword} %}}' is not supported", position);
        }
    }

    /// <summary><c>a, b</c> without brackets (a tuple, as a list) or one expression.</summary>
    JinjaExpr ParseTuple()
    {
        var first = ParseExpression();
        if (!IsOp(","))
            return first;
        var items = new List<JinjaExpr> { first };
        while (AcceptOp(","))
            items.Add(ParseExpression());
        return new ListExpr(items, first.Position);
    }

    JinjaExpr ParseExpression(bool allowConditional = true)
    {
        var expr = ParseOr();
        if (allowConditional && IsName("if"))
        {
            _at++;
            var condition = ParseOr();
            JinjaExpr? otherwise = AcceptName("else") ? ParseExpression() : null;
            return new ConditionalExpr(condition, expr, otherwise, expr.Position);
        }
        return expr;
    }

    JinjaExpr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            int position = Next().Position;
            left = new BinaryExpr("or", left, ParseAnd(), position);
        }
        return left;
    }

    JinjaExpr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            int position = Next().Position;
            left = new BinaryExpr("and", left, ParseNot(), position);
        }
        return left;
    }

    JinjaExpr ParseNot()
    {
        if (IsName("not"))
        {
            int position = Next().Position;
            return new UnaryExpr("not", ParseNot(), position);
        }
        return ParseCompare();
    }

    JinjaExpr ParseCompare()
    {
        var left = ParseAdditive();
        while (true)
        {
            int position = Peek.Position;
            if (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                string op = Next().Value;
                left = new BinaryExpr(op, left, ParseAdditive(), position);
            }
            else if (IsName("in"))
            {
                _at++;
                left = new BinaryExpr("in", left, ParseAdditive(), position);
            }
            else if (IsName("not") && _tokens[_at + 1] is { Kind: JinjaTokenKind.Name, Value: "in" })
            {
                _at += 2;
                left = new BinaryExpr("not in", left, ParseAdditive(), position);
            }
            else
            {
                return left;
            }
        }
    }

    JinjaExpr ParseAdditive()
    {
        var left = ParseConcat();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "+" or "-")
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, ParseConcat(), op.Position);
        }
        return left;
    }

    JinjaExpr ParseConcat()
    {
        var left = ParseMultiplicative();
        while (IsOp("~"))
        {
            int position = Next().Position;
            left = new BinaryExpr("~", left, ParseMultiplicative(), position);
        }
        return left;
    }

    JinjaExpr ParseMultiplicative()
    {
        var left = ParsePower();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, ParsePower(), op.Position);
        }
        return left;
    }

    JinjaExpr ParsePower()
    {
        var left = ParseUnary();
        while (IsOp("**"))
        {
            int position = Next().Position;
            left = new BinaryExpr("**", left, ParseUnary(), position);
        }
        return left;
    }

    /// <summary>Unary minus and plus bind tighter than filters and tests, as in Jinja2: <c>-1.5 | abs</c> is 1.5.</summary>
    JinjaExpr ParseUnary(bool withFilters = true)
    {
        JinjaExpr expr;
        if (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "-" or "+")
        {
            var op = Next();
            expr = new UnaryExpr(op.Value, ParseUnary(withFilters: false), op.Position);
        }
        else
        {
            expr = ParsePostfix(ParsePrimary());
        }
        return withFilters ? ParseFilters(expr) : expr;
    }

    JinjaExpr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case JinjaTokenKind.String:
            {
                string value = token.Value;
                while (Peek.Kind == JinjaTokenKind.String) // adjacent literals concatenate, as in Python
                    value += Next().Value;
                return new LiteralExpr(value, token.Position);
            }
            case JinjaTokenKind.Integer:
                return new LiteralExpr(long.Parse(token.Value, CultureInfo.InvariantCulture), token.Position);
            case JinjaTokenKind.Float:
                return new LiteralExpr(double.Parse(token.Value, CultureInfo.InvariantCulture), token.Position);
            case JinjaTokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, token.Position),
                    "false" or "False" => new LiteralExpr(false, token.Position),
                    "none" or "None" => new LiteralExpr(null, token.Position),
                    _ => new NameExpr(token.Value, token.Position),
                };
            case JinjaTokenKind.Operator when token.Value == "(":
            {
                if (AcceptOp(")"))
                    return new ListExpr([], token.Position);
                var inner = ParseExpression();
                if (IsOp(","))
                {
                    var items = new List<JinjaExpr> { inner };
                    while (AcceptOp(",") && !IsOp(")"))
                        items.Add(ParseExpression());
                    inner = new ListExpr(items, token.Position);
                }
                ExpectOp(")");
                return inner;
            }
            case JinjaTokenKind.Operator when token.Value == "[":
            {
                var items = new List<JinjaExpr>();
                while (!AcceptOp("]"))
                {
                    if (items.Count > 0)
                    {
                        ExpectOp(",");
                        if (AcceptOp("]"))
                            break;
                    }
                    items.Add(ParseExpression());
                }
                return new ListExpr(items, token.Position);
            }
            case JinjaTokenKind.Operator when token.Value == "{":
            {
                var items = new List<(JinjaExpr, JinjaExpr)>();
                while (!AcceptOp("}"))
                {
                    if (items.Count > 0)
                    {
                        ExpectOp(",");
                        if (AcceptOp("}"))
                            break;
                    }
                    var key = ParseExpression();
                    ExpectOp(":");
                    items.Add((key, ParseExpression()));
                }
                return new DictExpr(items, token.Position);
            }
            default:
                _at--;
                throw Unexpected("an expression");
        }
    }

    JinjaExpr ParsePostfix(JinjaExpr expr)
    {
        while (true)
        {
            int position = Peek.Position;
            if (AcceptOp("."))
            {
                var name = Next();
                if (name.Kind is not (JinjaTokenKind.Name or JinjaTokenKind.Integer))
                {
                    _at--;
                    throw Unexpected("an attribute name");
                }
                expr = new AttributeExpr(expr, name.Value, position);
            }
            else if (AcceptOp("["))
            {
                JinjaExpr? start = IsOp(":") ? null : ParseExpression();
                if (AcceptOp(":"))
                {
                    JinjaExpr? stop = IsOp(":") || IsOp("]") ? null : ParseExpression();
                    JinjaExpr? step = AcceptOp(":") && !IsOp("]") ? ParseExpression() : null;
                    ExpectOp("]");
                    expr = new SliceExpr(expr, start, stop, step, position);
                }
                else
                {
                    ExpectOp("]");
                    expr = new ItemExpr(expr, start!, position);
                }
            }
            else if (IsOp("("))
            {
                var (args, kwargs) = ParseArguments();
                expr = new CallExpr(expr, args, kwargs, position);
            }
            else
            {
                return expr;
            }
        }
    }

    (List<JinjaExpr> Args, List<(string, JinjaExpr)> Kwargs) ParseArguments()
    {
        ExpectOp("(");
        var args = new List<JinjaExpr>();
        var kwargs = new List<(string, JinjaExpr)>();
        while (!AcceptOp(")"))
        {
            if (args.Count + kwargs.Count > 0)
            {
                ExpectOp(",");
                if (AcceptOp(")"))
                    break;
            }
            if (Peek.Kind == JinjaTokenKind.Name && _tokens[_at + 1] is { Kind: JinjaTokenKind.Operator, Value: "=" })
            {
                string name = Next().Value;
                _at++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                args.Add(ParseExpression());
            }
        }
        return (args, kwargs);
    }

    JinjaExpr ParseFilters(JinjaExpr expr)
    {
        while (true)
        {
            int position = Peek.Position;
            if (AcceptOp("|"))
            {
                string name = ExpectName();
                var (args, kwargs) = IsOp("(") ? ParseArguments() : ([], []);
                expr = new FilterExpr(expr, name, args, kwargs, position);
            }
            else if (AcceptName("is"))
            {
                bool negated = AcceptName("not");
                var nameToken = Next();
                string name = nameToken.Kind == JinjaTokenKind.Name ? nameToken.Value
                    : nameToken.Kind == JinjaTokenKind.Operator && nameToken.Value is "==" or "!=" or "<" or ">" or "<=" or ">=" ? nameToken.Value
                    : throw new ChatTemplateException($"expected a test name after 'is', found '{nameToken.Value}'", nameToken.Position);
                var args = new List<JinjaExpr>();
                if (IsOp("("))
                    args = ParseArguments().Args;
                else if (Peek.Kind is JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float
                    || (Peek.Kind == JinjaTokenKind.Name && Peek.Value is not ("and" or "or" or "if" or "else" or "in" or "not" or "is")))
                    args.Add(ParsePostfix(ParsePrimary())); // `x is divisibleby 3`, `x is sameas none`
                expr = new TestExpr(expr, name, args, negated, position);
            }
            else
            {
                return expr;
            }
        }
    }
}
