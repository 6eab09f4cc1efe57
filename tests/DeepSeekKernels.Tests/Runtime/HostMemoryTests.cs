using System.Runtime.Versioning;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>
/// The host memory a CPU run may take (<see cref="HostMemory"/>): MemAvailable and a cgroup's limit parsed as Linux writes them,
/// the CPU accelerator's <see cref="DeviceRuntime.FreeMemoryBytes"/> from them, and an allocation past it refused with a
/// <see cref="DeviceMemoryException"/> naming both figures instead of being granted by overcommit and killed later.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostMemoryTests
{
    const string MemInfo = "MemTotal:       24000000 kB\nMemFree:        20000000 kB\nMemAvailable:   22000000 kB\nBuffers:  0 kB\n";

    [Fact]
    public void MemAvailableIsReadInBytes() =>
        Assert.Equal(22000000L * 1024, HostMemory.Available(MemInfo, null, null));

    [Fact]
    public void ACgroupLimitCapsItLessItsUsage()
    {
        Assert.Equal(6_000_000_000L - 1_000_000_000L, HostMemory.Available(MemInfo, "6000000000\n", "1000000000\n"));
        Assert.Equal(0, HostMemory.Available(MemInfo, "1000\n", "5000\n")); // over its limit already
        Assert.Equal(22000000L * 1024, HostMemory.Available(MemInfo, "max\n", "1000000000\n")); // v2: no limit
        Assert.Equal(22000000L * 1024, HostMemory.Available(MemInfo, "9223372036854771712\n", "1000000000\n")); // v1: no limit
        Assert.Equal(400L, HostMemory.Available(null, "500", "100")); // no meminfo: the cgroup alone
    }

    [Fact]
    public void NothingReadableIsUnknown()
    {
        Assert.Null(HostMemory.Available(null, null, null));
        Assert.Null(HostMemory.Available("MemTotal: 1 kB\n", "max", "7"));
        Assert.Null(HostMemory.Available("MemAvailable: lots kB\n", null, null));
    }

    [Fact, SupportedOSPlatform("linux")]
    public void TheCpuAcceleratorReportsTheHostsAvailableMemory()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "MemAvailable is Linux's");
        long? free = TestDevices.Cpu.FreeMemoryBytes;
        Assert.NotNull(free);
        Assert.InRange(free!.Value, 1, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
    }

    [Fact, SupportedOSPlatform("linux")]
    public void AnAllocationPastTheAvailableMemoryIsRefusedNamingBothFigures()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "MemAvailable is Linux's");
        var runtime = TestDevices.Cpu;
        long available = runtime.FreeMemoryBytes!.Value;
        // past what is available, but within what overcommit would have granted (less than RAM + swap on this machine)
        long bytes = available + (1L << 30);
        var e = Assert.Throws<DeviceMemoryException>(() => runtime.CreateArena(bytes));
        Assert.Contains($"Allocating {bytes:N0} bytes (an arena) on {runtime.DeviceName} refused: the host has", e.Message);
        Assert.Contains("nothing was allocated", e.Message);
        var f = Assert.Throws<DeviceMemoryException>(() => runtime.Allocate<float>(bytes / 4 + 1));
        Assert.Contains("Single x", f.Message);
        // small allocations are not checked (nor refused)
        using var small = runtime.CreateArena(DeviceRuntime.HostCheckBytes - 1);
    }
}
