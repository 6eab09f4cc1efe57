using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// The small activation ops through the hand-CUDA kernels (kernels/silu_and_mul.cu, copy_columns.cu, elementwise.cu,
/// softmax.cu) on the runtime's stream. The op API hands over contiguous f32 or bf16 tensors (rows of the sizes it
/// names), all of one element type (the C ABI takes one dtype per call); the row strides are the row lengths.
/// </summary>
internal static class ElementwiseNative
{
    /// <summary>y[r, yOffset + c] = x[r, xOffset + c] over x [rows, xColumns] and y [rows, yColumns].</summary>
    public static void CopyColumns(DeviceRuntime runtime, DeviceTensor x, int xColumns, int xOffset, DeviceTensor y, int yColumns,
        int yOffset, int width, int rows)
    {
        var p = new DskCopyColumnsParams
        {
            X = x.Pointer,
            Y = y.Pointer,
            Rows = rows,
            Width = width,
            XOffset = xOffset,
            YOffset = yOffset,
            XRowStride = xColumns,
            YRowStride = yColumns,
            DType = DType(x, y),
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.CopyColumns(p);
    }

    /// <summary>y [rows, intermediate] = silu(gate) * up over x [rows, 2 * intermediate] = [gate | up].</summary>
    public static void SiluAndMul(DeviceRuntime runtime, DeviceTensor x, DeviceTensor y, int rows, int intermediate)
    {
        var p = new DskSiluAndMulParams
        {
            X = x.Pointer,
            Y = y.Pointer,
            Rows = rows,
            Intermediate = intermediate,
            XRowStride = 2L * intermediate,
            YRowStride = intermediate,
            DType = DType(x, y),
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.SiluAndMul(p);
    }

    /// <summary>Row softmax of x [rows, rowLength] into y (which may be exactly x).</summary>
    public static void Softmax(DeviceRuntime runtime, DeviceTensor x, DeviceTensor y, int rows, int rowLength)
    {
        var p = new DskSoftmaxParams
        {
            X = x.Pointer,
            Y = y.Pointer,
            Rows = rows,
            RowLength = rowLength,
            DType = DType(x, y),
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.Softmax(p);
    }

    /// <summary>z = x + y (z may be exactly x or y).</summary>
    public static void Add(DeviceRuntime runtime, DeviceTensor x, DeviceTensor y, DeviceTensor z) =>
        Run(runtime, x, y, z, DskElementwiseOp.Add, 0f, DType(x, y, z));

    /// <summary>y = x * factor (y may be exactly x).</summary>
    public static void Scale(DeviceRuntime runtime, DeviceTensor x, float factor, DeviceTensor y) =>
        Run(runtime, x, default, y, DskElementwiseOp.Scale, factor, DType(x, y));

    static void Run(DeviceRuntime runtime, DeviceTensor x, DeviceTensor y, DeviceTensor z, DskElementwiseOp op, float factor, int dtype)
    {
        var p = new DskElementwiseParams
        {
            X = x.Pointer,
            Y = y.IsNull ? IntPtr.Zero : y.Pointer,
            Z = z.Pointer,
            N = z.Length,
            Factor = factor,
            Op = (int)op,
            DType = dtype,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.Elementwise(p);
    }

    /// <summary>The one dtype of the operands (the op API gives them one element type).</summary>
    static int DType(params ReadOnlySpan<DeviceTensor> operands)
    {
        var type = operands[0].ElementType;
        foreach (var t in operands)
            if (t.ElementType != type)
                throw new NotSupportedException($"The native small ops take operands of one element type, not {type.Name()} with {t.ElementType.Name()}.");
        return (int)type;
    }
}
