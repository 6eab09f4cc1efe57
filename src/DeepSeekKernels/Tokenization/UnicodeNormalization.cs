using System.Globalization;
using System.Text;

namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Unicode canonical normalisation (NFD, NFC: UAX #15) over <see cref="UnicodeNormalizationData"/>, because
/// <see cref="string.Normalize()"/> returns its input unchanged when the app runs with InvariantGlobalization.
/// Hugging Face's "NFC" / "NFD" normalizers compute the same forms.
/// </summary>
internal static class UnicodeNormalization
{
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    sealed class Tables
    {
        public readonly Dictionary<int, int[]> Decompositions = new();
        public readonly Dictionary<int, int> CombiningClass = new();
        public readonly Dictionary<long, int> Compositions = new();
    }

    static readonly Lazy<Tables> Data = new(Parse);

    /// <summary>The canonical composition (NFC) of <paramref name="text"/>.</summary>
    public static string ToNfc(string text)
    {
        // Below U+0300 every string is already NFC: no character there decomposes differently once recomposed,
        // and none combines with what precedes it.
        if (AllBelow(text, '\u0300'))
            return text;
        var codePoints = Decompose(text);
        Compose(codePoints);
        return ToText(codePoints);
    }

    /// <summary>The canonical decomposition (NFD) of <paramref name="text"/>.</summary>
    public static string ToNfd(string text)
    {
        if (AllBelow(text, '\u00C0'))
            return text;
        return ToText(Decompose(text));
    }

    static bool AllBelow(string text, char limit)
    {
        foreach (char c in text)
        {
            if (c >= limit)
                return false;
        }
        return true;
    }

    /// <summary>Full canonical decomposition, then canonical ordering.</summary>
    static List<int> Decompose(string text)
    {
        var tables = Data.Value;
        var result = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            int cp = rune.Value;
            if (cp >= SBase && cp < SBase + SCount)
            {
                int s = cp - SBase;
                result.Add(LBase + s / NCount);
                result.Add(VBase + s % NCount / TCount);
                if (s % TCount != 0)
                    result.Add(TBase + s % TCount);
            }
            else if (tables.Decompositions.TryGetValue(cp, out var parts))
            {
                result.AddRange(parts);
            }
            else
            {
                result.Add(cp);
            }
        }

        // Canonical ordering: a stable sort by combining class of every run of non-starters.
        for (int i = 1; i < result.Count; i++)
        {
            int cc = ClassOf(tables, result[i]);
            if (cc == 0)
                continue;
            int cp = result[i];
            int j = i;
            while (j > 0 && ClassOf(tables, result[j - 1]) > cc)
            {
                result[j] = result[j - 1];
                j--;
            }
            result[j] = cp;
        }
        return result;
    }

    /// <summary>Canonical composition of decomposed, ordered code points, in place.</summary>
    static void Compose(List<int> codePoints)
    {
        var tables = Data.Value;
        int write = 0;
        int starter = -1;   // index (in the output) of the last starter
        int lastClass = 0;  // class of the last code point written
        for (int read = 0; read < codePoints.Count; read++)
        {
            int cp = codePoints[read];
            int cc = ClassOf(tables, cp);
            if (starter >= 0)
            {
                bool adjacent = write - 1 == starter;
                if ((adjacent || lastClass < cc) && TryCompose(tables, codePoints[starter], cp, out int composite))
                {
                    codePoints[starter] = composite;
                    continue;
                }
            }
            if (cc == 0)
                starter = write;
            lastClass = cc;
            codePoints[write++] = cp;
        }
        codePoints.RemoveRange(write, codePoints.Count - write);
    }

    static bool TryCompose(Tables tables, int first, int second, out int composite)
    {
        if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        {
            composite = SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
            return true;
        }
        if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0 && second > TBase && second < TBase + TCount)
        {
            composite = first + (second - TBase);
            return true;
        }
        return tables.Compositions.TryGetValue(Key(first, second), out composite);
    }

    static int ClassOf(Tables tables, int cp) => cp < 0x0300 ? 0 : tables.CombiningClass.GetValueOrDefault(cp);

    static long Key(int first, int second) => ((long)first << 21) | (uint)second;

    static string ToText(List<int> codePoints)
    {
        var builder = new StringBuilder(codePoints.Count + 4);
        foreach (int cp in codePoints)
        {
            if (cp < 0x10000)
                builder.Append((char)cp);
            else
                builder.Append(char.ConvertFromUtf32(cp));
        }
        return builder.ToString();
    }

    static Tables Parse()
    {
        var tables = new Tables();
        foreach (var entry in Entries(UnicodeNormalizationData.Decompositions))
        {
            int colon = entry.IndexOf(':');
            var parts = new List<int>(4);
            foreach (var part in entry[(colon + 1)..].Split(' '))
                parts.Add(Hex(part));
            tables.Decompositions[Hex(entry[..colon])] = parts.ToArray();
        }
        foreach (var entry in Entries(UnicodeNormalizationData.CombiningClassRanks))
        {
            int dash = entry.IndexOf('-'), colon = entry.IndexOf(':');
            int first = Hex(entry[..dash]), last = Hex(entry[(dash + 1)..colon]);
            int rank = int.Parse(entry[(colon + 1)..], CultureInfo.InvariantCulture);
            for (int cp = first; cp <= last; cp++)
                tables.CombiningClass[cp] = rank;
        }
        foreach (var entry in Entries(UnicodeNormalizationData.Compositions))
        {
            int space = entry.IndexOf(' '), colon = entry.IndexOf(':');
            tables.Compositions[Key(Hex(entry[..space]), Hex(entry[(space + 1)..colon]))] = Hex(entry[(colon + 1)..]);
        }
        return tables;
    }

    static string[] Entries(string data) => data.Split(';', StringSplitOptions.RemoveEmptyEntries);

    static int Hex(string text) => int.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
