namespace DeepSeekKernels.Tests.Checkpoints;

/// <summary>
/// Seeded random damage to a JSON text, for the fuzz tests of the files a model folder holds: a character
/// changed to one that matters to JSON, characters removed, the text cut short, or one value (after a ':')
/// replaced by a JSON value of another type.
/// </summary>
public static class JsonDamage
{
    const string JsonCharacters = "{}[],:\"0123456789-.etnfx ";
    static readonly string[] Replacements = ["null", "true", "\"x\"", "[]", "{}", "-1", "0", "1e40", "2.5", "99999999999", "[1,2]", "\"\""];

    /// <summary>The damaged text and what was done to it (for a failure's message).</summary>
    public static (string Text, string What) Apply(string valid, Random random)
    {
        switch (random.Next(5))
        {
            case 0:
            {
                int at = random.Next(valid.Length);
                char c = JsonCharacters[random.Next(JsonCharacters.Length)];
                return (valid[..at] + c + valid[(at + 1)..], $"char {at} -> '{c}'");
            }
            case 1:
            {
                int at = random.Next(valid.Length);
                return (valid[..at], $"cut to {at} chars");
            }
            case 2:
            {
                int at = random.Next(valid.Length), n = Math.Min(random.Next(1, 6), valid.Length - at);
                return (valid[..at] + valid[(at + n)..], $"{n} chars removed at {at}");
            }
            default:
            {
                var colons = Enumerable.Range(0, valid.Length).Where(p => valid[p] == ':').ToArray();
                int start = colons[random.Next(colons.Length)] + 1;
                int end = ValueEnd(valid, start);
                string value = Replacements[random.Next(Replacements.Length)];
                return (valid[..start] + " " + value + valid[end..], $"value at {start} -> {value}");
            }
        }
    }

    /// <summary>Where the JSON value starting at <paramref name="start"/> ends (the ',' or closing bracket after it).</summary>
    static int ValueEnd(string text, int start)
    {
        int depth = 0;
        bool inString = false;
        for (int end = start; end < text.Length; end++)
        {
            char c = text[end];
            if (inString)
            {
                if (c == '\\') end++;
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') inString = true;
            else if (c is '[' or '{') depth++;
            else if (c is ']' or '}')
            {
                if (depth == 0) return end;
                depth--;
            }
            else if (c == ',' && depth == 0) return end;
        }
        return text.Length;
    }
}
