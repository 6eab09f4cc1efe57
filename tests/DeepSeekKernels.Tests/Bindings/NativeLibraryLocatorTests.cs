using DeepSeekKernels.Bindings;

namespace DeepSeekKernels.Tests.Bindings;

public class NativeLibraryLocatorTests
{
    [Fact]
    public void KernelsAreLookedForInTheDocumentedOrder()
    {
        var candidates = NativeLibraryLocator.Candidates(NativeLibraryLocator.DeepSeekKernels, "/opt/dsk/libdeepseek_kernels.so", "/app/bin");
        Assert.Equal("/opt/dsk/libdeepseek_kernels.so", candidates[0]);
        Assert.Equal("/app/bin/libdeepseek_kernels.so", candidates[1]);
        Assert.Equal("/app/bin/runtimes/linux-x64/native/libdeepseek_kernels.so", candidates[2]);
        Assert.Contains("/app/bin/build/native/libdeepseek_kernels.so", candidates);
        Assert.Contains("/app/build/native/libdeepseek_kernels.so", candidates);
        Assert.Equal("libdeepseek_kernels.so", candidates[^1]); // the system search path last
    }

    [Fact]
    public void TheVariableMayNameAFolder()
    {
        var folder = Directory.CreateTempSubdirectory("dsk-locator").FullName;
        var candidates = NativeLibraryLocator.Candidates(NativeLibraryLocator.DeepSeekKernels, folder, "/app/bin");
        Assert.Equal(Path.Combine(folder, "libdeepseek_kernels.so"), candidates[0]);
    }

    [Fact]
    public void AMissingLibraryIsReportedWithEveryPlaceTried()
    {
        var folder = Directory.CreateTempSubdirectory("dsk-locator").FullName;
        var candidates = NativeLibraryLocator.Candidates(NativeLibraryLocator.DeepSeekKernels, folder, folder);
        var result = NativeLibraryLocator.Probe(NativeLibraryLocator.DeepSeekKernels, candidates.Take(3).Append("libdsk_surely_absent.so").ToList());
        Assert.False(result.Loaded);
        string message = result.Describe();
        Assert.Contains("libdeepseek_kernels.so (the native kernels) was not found", message);
        Assert.Contains(Path.Combine(folder, "libdeepseek_kernels.so") + " (no such file)", message);
        Assert.Contains(Path.Combine(folder, "runtimes", "linux-x64", "native", "libdeepseek_kernels.so") + " (no such file)", message);
        Assert.Contains("libdsk_surely_absent.so (not on the system search path", message);
        Assert.Contains(NativeLibraryLocator.NativeLibraryVariable, message);
    }

    [Fact]
    public void AFileThatIsNotALibraryIsReportedAsSuch()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("dsk-locator").FullName, "libdeepseek_kernels.so");
        File.WriteAllText(file, "not an ELF file");
        var result = NativeLibraryLocator.Probe(NativeLibraryLocator.DeepSeekKernels, [file]);
        Assert.False(result.Loaded);
        Assert.Contains(file + " (exists but failed to load", result.Describe());
    }

    [Fact]
    public void TheDriverAndLibrariesHaveVersionedNames()
    {
        Assert.Equal("libcuda.so.1", NativeLibraryLocator.Candidates(NativeLibraryLocator.CudaDriver, null, "/")[0]);
        Assert.Contains("libcublas.so.13", NativeLibraryLocator.Candidates(NativeLibraryLocator.Cublas, null, "/"));
        Assert.Contains("/usr/local/cuda/lib64/libcublasLt.so.13", NativeLibraryLocator.Candidates(NativeLibraryLocator.CublasLt, null, "/"));
        Assert.Equal("libnvidia-ml.so.1", NativeLibraryLocator.Candidates(NativeLibraryLocator.Nvml, null, "/")[0]);
    }

    [Fact]
    public void TheBuiltLibraryLoadsFromEachDocumentedPlace()
    {
        Assert.SkipUnless(DskNative.TryLoad(out string reason), "The native kernels were not built here (no CUDA toolkit / nvcc): " + reason.Split('\n')[0].Trim() + " (build them with cmake, or set DSK_NATIVE_LIBRARY)");
        string built = DskNative.LoadedFrom!;
        string root = Directory.CreateTempSubdirectory("dsk-locator").FullName;
        string app = Path.Combine(root, "app", "bin");
        string native = Path.Combine(app, "runtimes", "linux-x64", "native");
        string checkout = Path.Combine(root, "build", "native");
        string custom = Path.Combine(root, "custom");
        foreach (var dir in new[] { native, checkout, custom })
            Directory.CreateDirectory(dir);

        // a NuGet-style runtimes/ folder beside the app
        File.Copy(built, Path.Combine(native, "libdeepseek_kernels.so"));
        var fromRuntimes = NativeLibraryLocator.Probe(NativeLibraryLocator.DeepSeekKernels,
            NativeLibraryLocator.Candidates(NativeLibraryLocator.DeepSeekKernels, null, app));
        Assert.Equal(Path.Combine(native, "libdeepseek_kernels.so"), fromRuntimes.LoadedFrom);

        // a build folder of a source checkout above the app
        File.Delete(Path.Combine(native, "libdeepseek_kernels.so"));
        File.Copy(built, Path.Combine(checkout, "libdeepseek_kernels.so"));
        var fromBuild = NativeLibraryLocator.Probe(NativeLibraryLocator.DeepSeekKernels,
            NativeLibraryLocator.Candidates(NativeLibraryLocator.DeepSeekKernels, null, app));
        Assert.Equal(Path.Combine(checkout, "libdeepseek_kernels.so"), fromBuild.LoadedFrom);

        // the environment variable wins over both
        File.Copy(built, Path.Combine(custom, "libdeepseek_kernels.so"));
        var fromVariable = NativeLibraryLocator.Probe(NativeLibraryLocator.DeepSeekKernels,
            NativeLibraryLocator.Candidates(NativeLibraryLocator.DeepSeekKernels, custom, app));
        Assert.Equal(Path.Combine(custom, "libdeepseek_kernels.so"), fromVariable.LoadedFrom);
    }
}
