using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.RmsNorm;

/// <summary>
/// Every backend against the reference: written once, run per backend by the subclasses at the bottom.
/// Outputs start poisoned (NaN) so an unwritten element fails; device outputs sit inside a larger buffer
/// whose guard elements must stay untouched; the fused residual output must match bit for bit (it is one
/// exactly rounded add on every backend).
/// </summary>
[Collection(nameof(DeviceCollection))]
public abstract class RmsNormBackendTests
{
    const float Eps = 1e-6f;
    const int Guard = 37; // elements of poison on each side of a device output

    /// <summary>The ops under test; skips the test where the backend cannot run.</summary>
    protected abstract Ops CreateOps();

    public static TheoryData<int, int, string, string> Cases()
    {
        var data = new TheoryData<int, int, string, string>();
        (int Cols, int Rows)[] shapes = [(1, 5), (7, 3), (8, 17), (64, 4), (320, 3), (200, 260), (1000, 2), (4096 + 3, 3), (7168, 2), (40_000, 2), (70_001, 2)];
        foreach (var (cols, rows) in shapes)
            foreach (string xType in new[] { "f32", "bf16" })
                foreach (string wType in new[] { "f32", "bf16" })
                    data.Add(cols, rows, xType, wType);
        return data;
    }

    [DeviceTheory, MemberData(nameof(Cases))]
    public void RmsNormMatchesReference(int cols, int rows, string xType, string wType) =>
        Dispatch(xType, wType, new PlainCase(this, cols, rows));

    [DeviceTheory, MemberData(nameof(Cases))]
    public void AddRmsNormMatchesReference(int cols, int rows, string xType, string wType) =>
        Dispatch(xType, wType, new FusedCase(this, cols, rows));

    [DeviceTheory]
    [InlineData("f32"), InlineData("bf16")]
    public void InPlaceGivesTheSameResults(string xType) => Dispatch(xType, "bf16", new InPlaceCase(this, 4096 + 8, 3));

    /// <summary>
    /// The strided form (MLA's latent part of each kv_a row, normed in place): rows of a column block of a wider buffer,
    /// each equal bit for bit to the same row normed contiguously by this backend; the columns around the block are
    /// untouched. A backend whose RMSNorm reads dense rows only must refuse it strictly, writing nothing.
    /// </summary>
    [Fact]
    public void StridedRowsInPlaceEqualContiguousRows()
    {
        var ops = CreateOps();
        var runtime = ops.Runtime!;
        const int rows = 5, latent = 64, row = 80; // [rows, 64 latent | 16 rope]
        var all = TestData.Activations(rows * row, 21);
        var w = TestData.Weights(latent, 22);
        using var buffer = runtime.Upload<float>(all);
        using var dw = runtime.Upload<float>(w);
        var block = buffer.AsTensor(rows, row).Columns(0, latent);
        var signature = new OpSignature(nameof(Ops.RmsNorm), ElementType.F32) { Weight = ElementType.F32, StridedRows = true };
        if (!ops.Supports(signature))
        {
            Assert.Throws<OpNotSupportedException>(() => ops.RmsNorm(block, dw.View, block, latent, Eps));
            Assert.Equal(all, buffer.ToArray());
            return;
        }
        var dense = new float[rows * latent];
        for (int r = 0; r < rows; r++)
            Array.Copy(all, r * row, dense, r * latent, latent);
        using var contiguous = runtime.Upload<float>(dense);
        ops.RmsNorm(contiguous.View, dw.View, contiguous.View, latent, Eps);
        ops.RmsNorm(block, dw.View, block, latent, Eps);
        var expected = contiguous.ToArray();
        var actual = buffer.ToArray();
        for (int r = 0; r < rows; r++)
        {
            Compare.Exact<float>(expected.AsSpan(r * latent, latent), actual.AsSpan(r * row, latent), $"row {r}");
            Compare.Exact<float>(all.AsSpan(r * row + latent, row - latent), actual.AsSpan(r * row + latent, row - latent), $"row {r}'s rope part");
        }
    }

    [Fact]
    public void NaNAndInfinityBehaveAsTheReference()
    {
        var ops = CreateOps();
        const int cols = 72;
        var x = TestData.Activations(3 * cols, 11);
        x[5] = float.NaN;
        x[cols + 70] = float.NegativeInfinity;
        var residual = TestData.Activations(3 * cols, 12);
        residual[2 * cols + 1] = float.PositiveInfinity;
        var w = TestData.Weights(cols, 13);

        var expected = new float[x.Length];
        Ops.Reference.RmsNorm<float, float>(x, w, expected, cols, Eps);
        var actual = TestData.Poison<float>(x.Length);
        ops.RmsNorm<float, float>(x, w, actual, cols, Eps);
        Compare.Close<float>(expected, actual, "y");

        var expectedR = new float[x.Length];
        var actualR = TestData.Poison<float>(x.Length);
        Ops.Reference.AddRmsNorm<float, float>(x, residual, w, expectedR, expected, cols, Eps);
        ops.AddRmsNorm<float, float>(x, residual, w, actualR, actual, cols, Eps);
        Compare.Exact<float>(expectedR, actualR, "r");
        Compare.Close<float>(expected, actual, "y");
    }

    interface ITypedCase
    {
        void Run<T, TW>() where T : unmanaged where TW : unmanaged;
    }

    static void Dispatch(string xType, string wType, ITypedCase test)
    {
        switch (xType, wType)
        {
            case ("f32", "f32"): test.Run<float, float>(); break;
            case ("f32", "bf16"): test.Run<float, BFloat16>(); break;
            case ("bf16", "f32"): test.Run<BFloat16, float>(); break;
            case ("bf16", "bf16"): test.Run<BFloat16, BFloat16>(); break;
            default: throw new ArgumentException($"{xType}/{wType}");
        }
    }

    sealed record PlainCase(RmsNormBackendTests Tests, int Cols, int Rows) : ITypedCase
    {
        public void Run<T, TW>() where T : unmanaged where TW : unmanaged
        {
            var ops = Tests.CreateOps();
            var x = TestData.As<T>(TestData.Activations(Rows * Cols, Cols));
            var w = TestData.As<TW>(TestData.Weights(Cols, Cols + 1));
            var expected = new T[x.Length];
            Ops.Reference.RmsNorm<T, TW>(x, w, expected, Cols, Eps);

            var host = TestData.Poison<T>(x.Length);
            ops.RmsNorm<T, TW>(x, w, host, Cols, Eps);
            Compare.Close<T>(expected, host, "host y");

            if (ops.Runtime is not { } runtime)
                return;
            using var dx = runtime.Upload<T>(x);
            using var dw = runtime.Upload<TW>(w);
            using var dy = runtime.Upload<T>(TestData.Poison<T>(x.Length + 2 * Guard));
            ops.RmsNorm(dx.View, dw.View, dy.Slice(Guard, x.Length), Cols, Eps);
            CheckGuarded(expected, dy.ToArray(), "device y");
        }
    }

    sealed record FusedCase(RmsNormBackendTests Tests, int Cols, int Rows) : ITypedCase
    {
        public void Run<T, TW>() where T : unmanaged where TW : unmanaged
        {
            var ops = Tests.CreateOps();
            var x = TestData.As<T>(TestData.Activations(Rows * Cols, Cols));
            var residual = TestData.As<T>(TestData.Activations(Rows * Cols, Cols + 3));
            var w = TestData.As<TW>(TestData.Weights(Cols, Cols + 1));
            var expectedR = new T[x.Length];
            var expectedY = new T[x.Length];
            Ops.Reference.AddRmsNorm<T, TW>(x, residual, w, expectedR, expectedY, Cols, Eps);

            var hostR = TestData.Poison<T>(x.Length);
            var hostY = TestData.Poison<T>(x.Length);
            ops.AddRmsNorm<T, TW>(x, residual, w, hostR, hostY, Cols, Eps);
            Compare.Exact<T>(expectedR, hostR, "host r");
            Compare.Close<T>(expectedY, hostY, "host y");

            if (ops.Runtime is not { } runtime)
                return;
            using var dx = runtime.Upload<T>(x);
            using var dres = runtime.Upload<T>(residual);
            using var dw = runtime.Upload<TW>(w);
            using var dr = runtime.Upload<T>(TestData.Poison<T>(x.Length + 2 * Guard));
            using var dy = runtime.Upload<T>(TestData.Poison<T>(x.Length + 2 * Guard));
            ops.AddRmsNorm(dx.View, dres.View, dw.View, dr.Slice(Guard, x.Length), dy.Slice(Guard, x.Length), Cols, Eps);
            var r = dr.ToArray();
            Compare.Exact<T>(expectedR, r.AsSpan(Guard, x.Length), "device r");
            CheckGuarded(expectedR, r, "device r");
            CheckGuarded(expectedY, dy.ToArray(), "device y");
        }
    }

    sealed record InPlaceCase(RmsNormBackendTests Tests, int Cols, int Rows) : ITypedCase
    {
        public void Run<T, TW>() where T : unmanaged where TW : unmanaged
        {
            var ops = Tests.CreateOps();
            var x = TestData.As<T>(TestData.Activations(Rows * Cols, 21));
            var residual = TestData.As<T>(TestData.Activations(Rows * Cols, 22));
            var w = TestData.As<TW>(TestData.Weights(Cols, 23));
            var expected = new T[x.Length];
            var expectedR = new T[x.Length];
            var expectedY = new T[x.Length];
            Ops.Reference.RmsNorm<T, TW>(x, w, expected, Cols, Eps);
            Ops.Reference.AddRmsNorm<T, TW>(x, residual, w, expectedR, expectedY, Cols, Eps);

            // y over x
            var inPlace = x.ToArray();
            ops.RmsNorm<T, TW>(inPlace, w, inPlace, Cols, Eps);
            Compare.Close<T>(expected, inPlace, "y over x");

            // r over residual, y over x (the usual layer loop)
            var a = x.ToArray();
            var b = residual.ToArray();
            ops.AddRmsNorm<T, TW>(a, b, w, b, a, Cols, Eps);
            Compare.Exact<T>(expectedR, b, "r over residual");
            Compare.Close<T>(expectedY, a, "y over x");

            // r over x, y over residual
            a = x.ToArray();
            b = residual.ToArray();
            ops.AddRmsNorm<T, TW>(a, b, w, a, b, Cols, Eps);
            Compare.Exact<T>(expectedR, a, "r over x");
            Compare.Close<T>(expectedY, b, "y over residual");

            if (ops.Runtime is not { } runtime)
                return;
            using var dx = runtime.Upload<T>(x);
            using var dres = runtime.Upload<T>(residual);
            using var dw = runtime.Upload<TW>(w);
            ops.AddRmsNorm(dx.View, dres.View, dw.View, dres.View, dx.View, Cols, Eps);
            Compare.Exact<T>(expectedR, dres.ToArray(), "device r over residual");
            Compare.Close<T>(expectedY, dx.ToArray(), "device y over x");
        }
    }

    /// <summary>The middle of <paramref name="padded"/> must match; the guard elements around it must still be poison.</summary>
    static void CheckGuarded<T>(T[] expected, T[] padded, string what) where T : unmanaged
    {
        Compare.Close<T>(expected, padded.AsSpan(Guard, expected.Length), what);
        var poison = TestData.Poison<T>(Guard);
        Compare.Exact<T>(poison, padded.AsSpan(0, Guard), what + " guard before");
        Compare.Exact<T>(poison, padded.AsSpan(Guard + expected.Length, Guard), what + " guard after");
    }
}

/// <summary>The reference on device views of ILGPU's CPU accelerator (the runner's CPU path).</summary>
public sealed class RmsNormReferenceOnDeviceTests : RmsNormBackendTests
{
    protected override Ops CreateOps() => Ops.Create(TestDevices.Cpu, Backend.Reference);
}

/// <summary>The ILGPU kernels on ILGPU's CPU accelerator (runs everywhere, CI included).</summary>
public sealed class RmsNormIlgpuCpuTests : RmsNormBackendTests
{
    protected override Ops CreateOps() => Ops.Create(TestDevices.Cpu, Backend.Ilgpu);
}

/// <summary>The CPU backend.</summary>
public sealed class RmsNormCpuTests : RmsNormBackendTests
{
    protected override Ops CreateOps() => Ops.CreateCpu(TestDevices.Cpu, 3);
}

/// <summary>The ILGPU kernels on a CUDA GPU.</summary>
[NeedsCudaGpu]
public sealed class RmsNormIlgpuCudaTests : RmsNormBackendTests
{
    protected override Ops CreateOps() => Ops.Create(TestDevices.RequireCuda(), Backend.Ilgpu);
}

/// <summary>The hand-CUDA kernels on a CUDA GPU.</summary>
[NeedsCudaGpu]
public sealed class RmsNormNativeTests : RmsNormBackendTests
{
    protected override Ops CreateOps() => Ops.Create(TestDevices.RequireNative(), Backend.Native);
}
