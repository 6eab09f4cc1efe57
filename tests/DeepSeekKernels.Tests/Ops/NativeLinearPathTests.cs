using DeepSeekKernels.Native;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Conformance;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The native backend's own routes for Linear and HeadwiseLinear, which the conformance classes (f32 activations, one
/// element type for x and y) do not reach: dense bf16 x bf16 without a bias through cuBLASLt (bf16 or f32 out, strided
/// rows: a plan is made), everything else through dsk_linear, and x and y of different element types (lm_head and the MoE
/// router write f32 logits from bf16 rows: dsk_linear's x_dtype and y_dtype), strided rows included.
/// Every output sits in a NaN-poisoned wider buffer: the block must match the float64 oracle, the rest stay NaN. GPU only.
/// </summary>
[Collection(nameof(DeviceCollection)), NeedsCudaGpu]
public class NativeLinearPathTests
{
    public static TheoryData<string, ElementType, ElementType, bool, bool> Cases() => new()
    {
        // weight form, x type, y type, strided rows, bias
        { "bf16", ElementType.BF16, ElementType.BF16, false, false }, // cuBLASLt
        { "bf16", ElementType.BF16, ElementType.BF16, true, false },  // cuBLASLt with lda, ldc
        { "bf16", ElementType.BF16, ElementType.F32, true, false },   // cuBLASLt, f32 out
        { "bf16", ElementType.BF16, ElementType.BF16, true, true },   // a bias: dsk_linear
        { "fp8", ElementType.BF16, ElementType.F32, true, false },    // bf16 x, f32 y, strided
        { "int4", ElementType.BF16, ElementType.F32, false, true },
        { "f32", ElementType.BF16, ElementType.F32, false, false },   // an f32 router weight under bf16 activations
        { "f32", ElementType.F32, ElementType.BF16, true, true },     // f32 x rounded into strided bf16 rows
        { "int4", ElementType.BF16, ElementType.BF16, true, false },
    };

    [DeviceTheory, MemberData(nameof(Cases))]
    public void LinearMatchesFloat64OnEveryRoute(string form, ElementType xType, ElementType yType, bool strided, bool withBias)
    {
        var runtime = TestDevices.RequireNative();
        var ops = Ops.Create(runtime, Backend.Native);
        const int rows = 5, outFeatures = 40;
        int inFeatures = form == "int4" ? 96 : 72;
        int xStride = strided ? inFeatures + 8 : inFeatures, yStride = strided ? outFeatures + 8 : outFeatures;
        int xStart = strided ? 3 : 0, yStart = strided ? 5 : 0;
        using var weight = new TestWeight(form, 1, outFeatures, inFeatures, seed: 3, blockRows: 16, blockCols: 32, runtime: runtime);
        var x = Bf16Values(RandomValues(rows * inFeatures, 4)); // representable in both element types
        var bias = withBias ? RandomValues(outFeatures, 5) : new float[outFeatures];
        using var keep = new Owned();
        var xs = keep.Wide(runtime, xType, x, rows, inFeatures, xStride, xStart);
        var (yBuffer, ys) = keep.Poisoned(runtime, yType, rows, outFeatures, yStride, yStart);
        var db = keep.Add(runtime.Upload<float>(bias));
        int plans = DenseGemmCublasLt.For(runtime).PlanCount;

        ops.Linear(xs, weight.Matrix, withBias ? db.View : default, ys);
        runtime.Synchronize();

        var (expected, scale) = Float64Linear(x, weight.Values, bias, rows, inFeatures, outFeatures);
        double tolerance = yType == ElementType.BF16 ? ConformanceTolerance.Bf16 : form == "bf16" || form == "f32" ? ConformanceTolerance.F32 : ConformanceTolerance.DequantisedWeight;
        CheckBlock(expected, scale, yBuffer(), rows, yStride, yStart, outFeatures, $"Linear {form} {xType.Name()} -> {yType.Name()}", tolerance);
        // each cuBLASLt case has its own plan key (shape, strides, output type), so its first run makes a plan (or records
        // that cuBLASLt has none for it, and dsk_linear ran): the call was routed there; the others never ask
        bool cublas = form == "bf16" && xType == ElementType.BF16 && !withBias;
        Assert.True(cublas == DenseGemmCublasLt.For(runtime).PlanCount > plans,
            cublas ? "dense bf16 x bf16 without a bias did not go to cuBLASLt" : "a call cuBLASLt cannot run made a cuBLASLt plan");
    }

    [DeviceTheory, InlineData(false), InlineData(true)]
    public void HeadwiseLinearWithDifferentInputAndOutputTypesGoesHeadByHead(bool transpose)
    {
        var runtime = TestDevices.RequireNative();
        var ops = Ops.Create(runtime, Backend.Native);
        const int tokens = 3, heads = 4, rows = 9, cols = 32;
        int inDim = transpose ? rows : cols, outDim = transpose ? cols : rows;
        using var weight = new TestWeight("bf16", heads, rows, cols, seed: 7, runtime: runtime);
        var x = Bf16Values(RandomValues(tokens * heads * inDim, 8));
        using var keep = new Owned();
        var dx = keep.Add(runtime.Upload<BFloat16>(x.Select(BFloat16.FromSingle).ToArray()));
        var dy = keep.Add(runtime.Upload<float>(Nan(tokens * heads * outDim + 7)));
        ops.HeadwiseLinear(dx.View, weight.Matrix, dy.View.Slice(0, tokens * heads * outDim), transpose);
        runtime.Synchronize();
        var (expected, scale) = Float64Headwise(weight.Values, x, tokens, heads, rows, cols, transpose);
        var actual = dy.ToArray();
        Close(expected, scale, actual.AsSpan(0, expected.Length), $"HeadwiseLinear bf16 -> f32{(transpose ? " transposed" : "")}", ConformanceTolerance.F32);
        AllNaN(actual.AsSpan(expected.Length), "guard after the output");
    }

    static float[] Bf16Values(float[] values) => values.Select(v => BFloat16.FromSingle(v).ToSingle()).ToArray();

    /// <summary>The block [rows, width] at column start of a [rows, stride] buffer matches; every other element is still NaN.</summary>
    static void CheckBlock(double[] expected, double[] scale, float[] buffer, int rows, int stride, int start, int width, string what, double tolerance)
    {
        var block = new float[rows * width];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < stride; c++)
            {
                float v = buffer[r * stride + c];
                if (c >= start && c < start + width)
                    block[r * width + c - start] = v;
                else
                    Assert.True(float.IsNaN(v), $"{what}: element [{r}, {c}] outside the output was written ({v})");
            }
        Close(expected, scale, block, what, tolerance, ConformanceTolerance.Absolute);
    }

    /// <summary>Buffers of one test, disposed together.</summary>
    sealed class Owned : IDisposable
    {
        readonly List<IDisposable> _items = [];

        public T Add<T>(T item) where T : IDisposable
        {
            _items.Add(item);
            return item;
        }

        /// <summary>[rows, cols] values in columns [start, start + cols) of a NaN-padded [rows, stride] buffer of <paramref name="type"/>.</summary>
        public DeviceTensor Wide(DeviceRuntime runtime, ElementType type, float[] values, int rows, int cols, int stride, int start)
        {
            var wide = Nan(rows * stride);
            for (int r = 0; r < rows; r++)
                Array.Copy(values, r * cols, wide, r * stride + start, cols);
            DeviceTensor t = type == ElementType.BF16
                ? Add(runtime.Upload<BFloat16>(wide.Select(BFloat16.FromSingle).ToArray())).AsTensor(rows, stride)
                : Add(runtime.Upload<float>(wide)).AsTensor(rows, stride);
            return t.Columns(start, cols);
        }

        /// <summary>A NaN [rows, stride] buffer of <paramref name="type"/>, its [rows, width] block at column start, and a reader of the whole buffer as floats.</summary>
        public (Func<float[]> Read, DeviceTensor Block) Poisoned(DeviceRuntime runtime, ElementType type, int rows, int width, int stride, int start)
        {
            if (type == ElementType.BF16)
            {
                var b = Add(runtime.Upload<BFloat16>(Enumerable.Repeat(BFloat16.NaN, rows * stride).ToArray()));
                return (() => b.ToArray().Select(v => v.ToSingle()).ToArray(), b.AsTensor(rows, stride).Columns(start, width));
            }
            var f = Add(runtime.Upload<float>(Nan(rows * stride)));
            return (f.ToArray, f.AsTensor(rows, stride).Columns(start, width));
        }

        public void Dispose() => _items.ForEach(i => i.Dispose());
    }
}
