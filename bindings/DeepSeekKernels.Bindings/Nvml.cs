using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>NVML readings: device name, memory in use and utilisation, for benchmark reports and VRAM planning.</summary>
public static partial class Nvml
{
    const string Lib = NativeLibraryLocator.Nvml;

    [StructLayout(LayoutKind.Sequential)]
    struct MemoryRaw { public ulong Total, Free, Used; }

    [StructLayout(LayoutKind.Sequential)]
    struct UtilizationRaw { public uint Gpu, Memory; }

    [LibraryImport(Lib, EntryPoint = "nvmlInit_v2")] private static partial int Init();
    [LibraryImport(Lib, EntryPoint = "nvmlShutdown")] private static partial int Shutdown();
    [LibraryImport(Lib, EntryPoint = "nvmlErrorString")] private static partial IntPtr ErrorString(int result);
    [LibraryImport(Lib, EntryPoint = "nvmlDeviceGetCount_v2")] private static partial int DeviceGetCount(out uint count);
    [LibraryImport(Lib, EntryPoint = "nvmlDeviceGetHandleByIndex_v2")] private static partial int DeviceGetHandleByIndex(uint index, out IntPtr device);
    [LibraryImport(Lib, EntryPoint = "nvmlDeviceGetName")] private static unsafe partial int DeviceGetName(IntPtr device, byte* name, uint length);
    [LibraryImport(Lib, EntryPoint = "nvmlDeviceGetMemoryInfo")] private static partial int DeviceGetMemoryInfo(IntPtr device, out MemoryRaw memory);
    [LibraryImport(Lib, EntryPoint = "nvmlDeviceGetUtilizationRates")] private static partial int DeviceGetUtilizationRates(IntPtr device, out UtilizationRaw utilization);

    /// <summary>One reading of one GPU.</summary>
    public sealed record DeviceReading(int Index, string Name, long MemoryTotal, long MemoryUsed, int GpuUtilizationPercent, int MemoryUtilizationPercent);

    static void Check(int result, string operation)
    {
        if (result != 0)
            throw new InvalidOperationException($"{operation}: NVML error {result} ({Marshal.PtrToStringUTF8(ErrorString(result))})");
    }

    /// <summary>Reads every GPU NVML sees. Throws <see cref="DllNotFoundException"/> where NVML is missing.</summary>
    public static unsafe IReadOnlyList<DeviceReading> ReadAll()
    {
        NativeLibraryLocator.Require(Lib);
        Check(Init(), "nvmlInit");
        try
        {
            Check(DeviceGetCount(out uint count), "nvmlDeviceGetCount");
            var list = new List<DeviceReading>();
            byte* name = stackalloc byte[96];
            for (uint i = 0; i < count; i++)
            {
                Check(DeviceGetHandleByIndex(i, out var device), "nvmlDeviceGetHandleByIndex");
                Check(DeviceGetName(device, name, 96), "nvmlDeviceGetName");
                Check(DeviceGetMemoryInfo(device, out var memory), "nvmlDeviceGetMemoryInfo");
                Check(DeviceGetUtilizationRates(device, out var use), "nvmlDeviceGetUtilizationRates");
                list.Add(new DeviceReading((int)i, Marshal.PtrToStringUTF8((IntPtr)name) ?? "",
                    (long)memory.Total, (long)memory.Used, (int)use.Gpu, (int)use.Memory));
            }
            return list;
        }
        finally
        {
            Shutdown();
        }
    }
}
