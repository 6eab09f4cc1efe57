using static System.FormattableString;

namespace DeepSeekKernels.Planning;

/// <summary>
/// Size arithmetic that never wraps: parameter counts, element counts and byte counts are computed in checked
/// 64-bit arithmetic, and an overflow becomes an <see cref="OverflowException"/> whose message says which
/// quantity overflowed and what it was made of (a config may hold any int up to 2^31 - 1, and a plan any batch).
/// </summary>
internal static class SizeMath
{
    /// <summary>
    /// The product of <paramref name="factors"/>, or an <see cref="OverflowException"/>:
    /// "<paramref name="quantity"/> (a x b x ...) is 2^63 <paramref name="unit"/> or more".
    /// </summary>
    public static long Product(string quantity, string unit, params ReadOnlySpan<long> factors)
    {
        long product = 1;
        try
        {
            foreach (long factor in factors)
                product = checked(product * factor);
        }
        catch (OverflowException e)
        {
            var text = new string[factors.Length];
            for (int i = 0; i < factors.Length; i++)
                text[i] = Invariant($"{factors[i]:N0}");
            throw TooLarge($"{quantity} ({string.Join(" x ", text)})", unit, e);
        }
        return product;
    }

    /// <summary>
    /// The sum of <paramref name="terms"/>, or an <see cref="OverflowException"/>:
    /// "<paramref name="quantity"/> is 2^63 <paramref name="unit"/> or more".
    /// </summary>
    public static long Sum(string quantity, string unit, IEnumerable<long> terms)
    {
        long sum = 0;
        foreach (long term in terms) // a term that overflows itself throws its own message
        {
            try
            {
                sum = checked(sum + term);
            }
            catch (OverflowException e)
            {
                throw TooLarge(quantity, unit, e);
            }
        }
        return sum;
    }

    /// <summary>"<paramref name="quantity"/> is 2^63 <paramref name="unit"/> or more" (no unit for a plain count).</summary>
    public static OverflowException TooLarge(string quantity, string unit, Exception? innerException = null) =>
        new($"{quantity} is 2^63{(unit.Length > 0 ? " " + unit : "")} or more", innerException);

    /// <summary>Bytes in binary units with one decimal: "512 B", "68.6 KiB", "1.5 GiB".</summary>
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if (bytes < 1024)
            return Invariant($"{bytes} B");
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return Invariant($"{value:0.0} {units[unit]}");
    }
}
