using System.Runtime.InteropServices;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// Takes pages of a file's memory mapping out of this process's page tables (Linux: madvise MADV_DONTNEED). On a file
/// mapping that only drops the page-table entries: the data stays in the page cache and a later read maps it again, so
/// the pages leave the process's resident set and nothing is lost. Never call it on anonymous memory, where DONTNEED
/// discards the data. Advisory: a no-op elsewhere, and a failure leaves the pages mapped.
/// </summary>
internal static partial class MappedPages
{
    const int MadviseDontNeed = 4; // Linux

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);

    /// <summary>Releases the whole pages inside the address range [begin, end) (partial pages at its ends stay mapped).</summary>
    public static void Release(long begin, long end)
    {
        if (!OperatingSystem.IsLinux())
            return;
        long page = Environment.SystemPageSize;
        long first = (begin + page - 1) / page * page, last = end / page * page;
        if (last > first)
            _ = Madvise((nint)first, (nuint)(last - first), MadviseDontNeed);
    }
}
