using System.Globalization;

namespace DeepSeekKernels.Runtime;

/// <summary>
/// Host memory this process can still take without the kernel's OOM killer stepping in, where it can be read (Linux):
/// MemAvailable from /proc/meminfo (free memory plus the page cache and slabs the kernel can reclaim), capped by the
/// control group's limit (cgroup v2 memory.max - memory.current, or v1 memory.limit_in_bytes - memory.usage_in_bytes) as
/// containers set it. What ILGPU's CPU accelerator allocates is ordinary host memory that Linux overcommits: an allocation
/// past this figure usually succeeds and the process is killed later, when the pages are touched; so the runtime and the
/// model loader check against it first (<see cref="DeviceRuntime.FreeMemoryBytes"/>).
/// </summary>
public static class HostMemory
{
    /// <summary>The bytes available to this process, or null where neither /proc/meminfo nor a cgroup limit can be read.</summary>
    public static long? AvailableBytes()
    {
        if (!OperatingSystem.IsLinux())
            return null;
        return Available(Read("/proc/meminfo"),
            Read("/sys/fs/cgroup/memory.max") ?? Read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            Read("/sys/fs/cgroup/memory.current") ?? Read("/sys/fs/cgroup/memory/memory.usage_in_bytes"));
    }

    /// <summary>
    /// The smaller of MemAvailable (in <paramref name="meminfo"/>, kB) and the cgroup's limit minus its usage; "max" (or a
    /// v1 limit near 2^63, meaning none) is no limit; null when neither figure is there.
    /// </summary>
    internal static long? Available(string? meminfo, string? cgroupLimit, string? cgroupUsage)
    {
        long? available = null;
        foreach (var line in (meminfo ?? "").Split('\n'))
        {
            if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                continue;
            var parts = line["MemAvailable:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 1 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb) && kb < long.MaxValue / 1024)
                available = kb * 1024;
        }
        if (long.TryParse(cgroupLimit?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long limit) && limit < 1L << 60
            && long.TryParse(cgroupUsage?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long usage))
        {
            long left = Math.Max(0, limit - usage);
            available = available is long a ? Math.Min(a, left) : left;
        }
        return available;
    }

    static string? Read(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
