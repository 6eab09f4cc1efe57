using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// The C ABI header (kernels/include/deepseek_kernels.h) as the binding tests read it: its text, the fields of a params
/// struct in declaration order as the C# mirror names them, and the C# mirror's fields in layout order.
/// </summary>
internal static class AbiHeader
{
    /// <summary>The header's text.</summary>
    public static string Text => File.ReadAllText(Path.Combine(RepositoryRoot.Path, "kernels", "include", "deepseek_kernels.h"));

    /// <summary>The fields of <c>typedef struct NAME { ... } NAME;</c> in the header, in order, as C# names (snake_case to PascalCase, dtype to DType).</summary>
    public static string[] Fields(string name)
    {
        var body = Regex.Match(Text, @"typedef struct " + name + @" \{(.*?)\} " + name + ";", RegexOptions.Singleline);
        Assert.True(body.Success, name + " not found in the header");
        var text = Regex.Replace(body.Groups[1].Value, @"/\*.*?\*/", "", RegexOptions.Singleline);
        return text.Split(';').Select(d => d.Trim()).Where(d => d.Length > 0)
            .Select(d => Regex.Match(d, @"(\w+)$").Groups[1].Value)
            .Select(f => string.Concat(f.Split('_').Select(part => part == "dtype" ? "DType" : char.ToUpperInvariant(part[0]) + part[1..])))
            .ToArray();
    }

    /// <summary>The byte offset of <paramref name="field"/> in the C# mirror <typeparamref name="T"/>.</summary>
    public static int Offset<T>(string field) => (int)Marshal.OffsetOf<T>(field);

    /// <summary>The public instance fields of the C# mirror <typeparamref name="T"/>, in layout order.</summary>
    public static string[] CSharpFields<T>() =>
        typeof(T).GetFields(BindingFlags.Public | BindingFlags.Instance).OrderBy(f => Marshal.OffsetOf<T>(f.Name)).Select(f => f.Name).ToArray();
}
