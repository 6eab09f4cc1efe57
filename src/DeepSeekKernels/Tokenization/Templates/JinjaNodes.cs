namespace DeepSeekKernels.Tokenization.Templates;

// The syntax tree of a parsed template (JinjaParser), evaluated by JinjaRuntime. Position: where the node starts in the
// template, for error messages.

internal abstract record JinjaNode(int Position);

internal sealed record TextNode(string Text, int Position) : JinjaNode(Position);

internal sealed record OutputNode(JinjaExpr Expr, int Position) : JinjaNode(Position);

internal sealed record IfNode(IReadOnlyList<(JinjaExpr Condition, IReadOnlyList<JinjaNode> Body)> Branches, IReadOnlyList<JinjaNode> Else, int Position)
    : JinjaNode(Position);

/// <summary><c>{% for a[, b] in iterable [if filter] %}body{% else %}empty{% endfor %}</c>.</summary>
internal sealed record ForNode(IReadOnlyList<string> Targets, JinjaExpr Iterable, JinjaExpr? Filter, IReadOnlyList<JinjaNode> Body,
    IReadOnlyList<JinjaNode> Else, int Position) : JinjaNode(Position);

/// <summary><c>{% set name = value %}</c>, <c>{% set ns.attr = value %}</c> or <c>{% set a, b = value %}</c>.</summary>
internal sealed record SetNode(IReadOnlyList<string> Targets, string? Attribute, JinjaExpr Value, int Position) : JinjaNode(Position);

/// <summary><c>{% break %}</c> and <c>{% continue %}</c> (transformers enables Jinja's loop controls).</summary>
internal sealed record LoopControlNode(bool Break, int Position) : JinjaNode(Position);

/// <summary><c>{% macro name(params) %}body{% endmacro %}</c>.</summary>
internal sealed record MacroNode(string Name, IReadOnlyList<(string Name, JinjaExpr? Default)> Parameters, IReadOnlyList<JinjaNode> Body, int Position)
    : JinjaNode(Position);

/// <summary><c>{% generation %}</c> ... (transformers' assistant-mask marker): renders its body.</summary>
internal sealed record GroupNode(IReadOnlyList<JinjaNode> Body, int Position) : JinjaNode(Position);

internal abstract record JinjaExpr(int Position);

internal sealed record LiteralExpr(object? Value, int Position) : JinjaExpr(Position);

internal sealed record NameExpr(string Name, int Position) : JinjaExpr(Position);

internal sealed record ListExpr(IReadOnlyList<JinjaExpr> Items, int Position) : JinjaExpr(Position);

internal sealed record DictExpr(IReadOnlyList<(JinjaExpr Key, JinjaExpr Value)> Items, int Position) : JinjaExpr(Position);

/// <summary><c>obj.name</c>: an attribute, else the item of that key.</summary>
internal sealed record AttributeExpr(JinjaExpr Target, string Name, int Position) : JinjaExpr(Position);

/// <summary><c>obj[key]</c>.</summary>
internal sealed record ItemExpr(JinjaExpr Target, JinjaExpr Key, int Position) : JinjaExpr(Position);

/// <summary><c>obj[start:stop:step]</c>, each part optional.</summary>
internal sealed record SliceExpr(JinjaExpr Target, JinjaExpr? Start, JinjaExpr? Stop, JinjaExpr? Step, int Position) : JinjaExpr(Position);

internal sealed record CallExpr(JinjaExpr Target, IReadOnlyList<JinjaExpr> Args, IReadOnlyList<(string Name, JinjaExpr Value)> Kwargs, int Position)
    : JinjaExpr(Position);

internal sealed record FilterExpr(JinjaExpr Target, string Name, IReadOnlyList<JinjaExpr> Args, IReadOnlyList<(string Name, JinjaExpr Value)> Kwargs,
    int Position) : JinjaExpr(Position);

/// <summary><c>value is [not] name[(args)]</c>.</summary>
internal sealed record TestExpr(JinjaExpr Target, string Name, IReadOnlyList<JinjaExpr> Args, bool Negated, int Position) : JinjaExpr(Position);

internal sealed record UnaryExpr(string Op, JinjaExpr Operand, int Position) : JinjaExpr(Position);

/// <summary>Binary operators, and/or (short-circuit), comparisons, <c>in</c> and <c>not in</c>.</summary>
internal sealed record BinaryExpr(string Op, JinjaExpr Left, JinjaExpr Right, int Position) : JinjaExpr(Position);

/// <summary><c>a if condition else b</c> (else optional: undefined).</summary>
internal sealed record ConditionalExpr(JinjaExpr Condition, JinjaExpr Then, JinjaExpr? Else, int Position) : JinjaExpr(Position);
