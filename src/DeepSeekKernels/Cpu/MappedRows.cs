namespace DeepSeekKernels.Cpu;

/// <summary>
/// Sparse rows of a weight read in place from a memory-mapped checkpoint (an embedding table) take their pages out of this
/// process's page tables again once read. Linux maps the neighbours of a faulting file page that are in the page cache
/// ("fault-around"): touching the 640 rows of a 512 + 128 token bench in llama031's 65 MB bf16 embedding table mapped
/// 59.7 MB of it (RssFile, measured with a C probe on the same file; MADV_RANDOM does not stop it), which is most of the
/// excess of the bench's peak RSS over the weights. MADV_DONTNEED on a shared file mapping only drops the page-table
/// entries: the data stays in the page cache and a later read faults it back in. Only buffers in a file's mapping
/// (<see cref="Runtime.DeviceBuffer{T}.IsFileMapping"/>) are ever released; on anonymous memory DONTNEED would discard data.
/// </summary>
internal static class MappedRows
{
    /// <summary>The span released around a row (fault-around maps within one page-table page: 2 MiB on x86-64 and arm64).</summary>
    const long Window = 2L << 20;

    /// <summary>Whether rows of <paramref name="view"/> are released after reading: a buffer in a file's mapping, on Linux.</summary>
    public static bool Applies<T>(Runtime.DeviceView<T> view) where T : unmanaged =>
        OperatingSystem.IsLinux() && view.Buffer is { IsFileMapping: true };

    /// <summary>
    /// Drops the page-table entries of the whole pages of [tableStart, tableStart + tableBytes) within the 2 MiB-aligned
    /// window around [row, row + rowBytes) (<see cref="Runtime.MappedPages.Release"/>).
    /// </summary>
    public static void Release(nint tableStart, long tableBytes, nint row, long rowBytes) =>
        Runtime.MappedPages.Release(Math.Max(tableStart, AlignDown(row, Window)),
            Math.Min(tableStart + tableBytes, AlignUp(row + rowBytes, Window)));

    static long AlignDown(long value, long alignment) => value / alignment * alignment;

    static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;
}
