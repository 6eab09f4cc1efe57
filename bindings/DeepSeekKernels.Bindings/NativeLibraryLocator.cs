using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary>
/// Finds the native libraries the bindings call, and says where it looked when one is missing.
/// Every <c>LibraryImport</c> in this assembly names a logical library (<see cref="DeepSeekKernels"/>,
/// <see cref="CudaDriver"/>, ...); the resolver maps it to candidate files in a fixed order.
/// </summary>
public static class NativeLibraryLocator
{
    /// <summary>Logical name of our own kernels, libdeepseek_kernels.so.</summary>
    public const string DeepSeekKernels = "deepseek_kernels";
    /// <summary>Logical name of the CUDA driver API, libcuda.so.1.</summary>
    public const string CudaDriver = "dsk_cuda";
    /// <summary>Logical name of cuBLAS.</summary>
    public const string Cublas = "dsk_cublas";
    /// <summary>Logical name of cuBLASLt.</summary>
    public const string CublasLt = "dsk_cublaslt";
    /// <summary>Logical name of NVML, libnvidia-ml.so.1.</summary>
    public const string Nvml = "dsk_nvml";

    /// <summary>Environment variable naming our kernels' file, or a folder that holds it.</summary>
    public const string NativeLibraryVariable = "DSK_NATIVE_LIBRARY";

    const string KernelsFile = "libdeepseek_kernels.so";

    static readonly object Gate = new();
    static readonly Dictionary<string, LoadResult> Results = new();

    /// <summary>What one attempt to find a library found.</summary>
    public sealed record LoadResult(string LogicalName, IntPtr Handle, string? LoadedFrom, IReadOnlyList<string> Tried)
    {
        /// <summary>True when the library was loaded.</summary>
        public bool Loaded => Handle != IntPtr.Zero;

        /// <summary>A message that lists every place tried, for errors and diagnostics.</summary>
        public string Describe() => Loaded
            ? $"{LogicalName}: loaded from {LoadedFrom}"
            : $"{FileDescription(LogicalName)} was not found. Looked in:{Environment.NewLine}  "
              + string.Join(Environment.NewLine + "  ", Tried)
              + (LogicalName == DeepSeekKernels
                  ? $"{Environment.NewLine}Build it with `cmake -S . -B build/native && cmake --build build/native` "
                    + $"(needs a CUDA toolkit), or set {NativeLibraryVariable} to the file or its folder."
                  : "");
    }

#pragma warning disable CA2255 // a module initializer is the documented place for a DllImport resolver
    [ModuleInitializer]
    internal static void Register() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLocator).Assembly, Resolve);
#pragma warning restore CA2255

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var result = Load(name);
        // Returning zero lets the runtime try its own probing; callers check Load() first to get our message.
        return result.Handle;
    }

    /// <summary>Loads (once) and returns the library behind a logical name.</summary>
    public static LoadResult Load(string logicalName)
    {
        lock (Gate)
        {
            if (Results.TryGetValue(logicalName, out var cached))
                return cached;
            var result = Probe(logicalName, Candidates(logicalName,
                Environment.GetEnvironmentVariable(NativeLibraryVariable), AppContext.BaseDirectory));
            Results[logicalName] = result;
            return result;
        }
    }

    /// <summary>Loads the library or throws a <see cref="DllNotFoundException"/> that lists where it looked.</summary>
    public static IntPtr Require(string logicalName)
    {
        var result = Load(logicalName);
        return result.Loaded ? result.Handle : throw new DllNotFoundException(result.Describe());
    }

    /// <summary>
    /// The files tried for a logical name, in order. For our kernels: <paramref name="environmentValue"/>
    /// (a file or a folder), the app folder, its <c>runtimes/linux-x64/native/</c>, a <c>build/native/</c>
    /// folder in the app folder or any folder above it (a source checkout), then the system search path.
    /// Entries without a '/' are bare names handed to the system loader (LD_LIBRARY_PATH, ldconfig).
    /// </summary>
    public static IReadOnlyList<string> Candidates(string logicalName, string? environmentValue, string baseDirectory)
    {
        switch (logicalName)
        {
            case DeepSeekKernels:
                var list = new List<string>();
                if (!string.IsNullOrWhiteSpace(environmentValue))
                    list.Add(Directory.Exists(environmentValue) ? Path.Combine(environmentValue, KernelsFile) : environmentValue);
                list.Add(Path.Combine(baseDirectory, KernelsFile));
                list.Add(Path.Combine(baseDirectory, "runtimes", "linux-x64", "native", KernelsFile));
                for (var dir = new DirectoryInfo(baseDirectory); dir != null; dir = dir.Parent)
                    list.Add(Path.Combine(dir.FullName, "build", "native", KernelsFile));
                list.Add(KernelsFile);
                return list;
            case CudaDriver:
                return ["libcuda.so.1", "libcuda.so"];
            case Cublas:
                return WithToolkitFolder(["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"]);
            case CublasLt:
                return WithToolkitFolder(["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"]);
            case Nvml:
                return ["libnvidia-ml.so.1", "libnvidia-ml.so"];
            default:
                return [logicalName];
        }
    }

    /// <summary>The toolkit's libraries: the bare names (system search path) first, then the same names in the
    /// default toolkit folder, where an installed toolkit leaves them when nothing adds it to ldconfig.</summary>
    static string[] WithToolkitFolder(string[] names) =>
        [.. names, .. names.Select(n => Path.Combine("/usr/local/cuda/lib64", n))];

    /// <summary>Tries each candidate in order; the first that loads wins.</summary>
    public static LoadResult Probe(string logicalName, IReadOnlyList<string> candidates)
    {
        var tried = new List<string>();
        foreach (var candidate in candidates)
        {
            bool isPath = candidate.Contains('/');
            if (isPath && !File.Exists(candidate))
            {
                tried.Add($"{candidate} (no such file)");
                continue;
            }
            if (NativeLibrary.TryLoad(candidate, out var handle))
                return new LoadResult(logicalName, handle, candidate, tried);
            tried.Add(isPath
                ? $"{candidate} (exists but failed to load: {LoadErrorOf(candidate)})"
                : $"{candidate} (not on the system search path: LD_LIBRARY_PATH, ldconfig)");
        }
        return new LoadResult(logicalName, IntPtr.Zero, null, tried);
    }

    static string LoadErrorOf(string path)
    {
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(path));
            return "loaded on retry";
        }
        catch (Exception e)
        {
            return e.Message;
        }
    }

    static string FileDescription(string logicalName) => logicalName switch
    {
        DeepSeekKernels => KernelsFile + " (the native kernels)",
        CudaDriver => "The CUDA driver (libcuda.so.1)",
        Cublas => "cuBLAS (libcublas.so)",
        CublasLt => "cuBLASLt (libcublasLt.so)",
        Nvml => "NVML (libnvidia-ml.so.1)",
        _ => logicalName,
    };
}
