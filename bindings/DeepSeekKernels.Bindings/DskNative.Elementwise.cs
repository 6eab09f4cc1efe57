using System.Runtime.InteropServices;

namespace DeepSeekKernels.Bindings;

/// <summary><c>dsk_silu_and_mul_params</c>: SwiGLU's gate, y[r, i] = silu(x[r, i]) * x[r, intermediate + i].</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskSiluAndMulParams
{
    public IntPtr X;
    public IntPtr Y;
    public long Rows;
    public long Intermediate;
    public long XRowStride;
    public long YRowStride;
    public int DType;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary><c>dsk_copy_columns_params</c>: y[r, y_offset + c] = x[r, x_offset + c], bit for bit.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskCopyColumnsParams
{
    public IntPtr X;
    public IntPtr Y;
    public long Rows;
    public long Width;
    public long XOffset;
    public long YOffset;
    public long XRowStride;
    public long YRowStride;
    public int DType;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary><c>dsk_elementwise_op</c>: what <see cref="DskElementwiseParams"/> computes.</summary>
public enum DskElementwiseOp
{
    /// <summary>z = x + y.</summary>
    Add = 0,

    /// <summary>z = x * factor (y NULL).</summary>
    Scale = 1,
}

/// <summary><c>dsk_elementwise_params</c>: ADD or SCALE over n contiguous elements; z may be exactly x or y.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskElementwiseParams
{
    public IntPtr X;
    public IntPtr Y;
    public IntPtr Z;
    public long N;
    public float Factor;
    public int Op;
    public int DType;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary><c>dsk_softmax_params</c>: row softmax over contiguous rows; y may be exactly x.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DskSoftmaxParams
{
    public IntPtr X;
    public IntPtr Y;
    public long Rows;
    public long RowLength;
    public int DType;
    public int Reserved;
    public IntPtr Stream;
}

/// <summary>The small activation ops of libdeepseek_kernels.so (ABI 4).</summary>
public static partial class DskNative
{
    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_silu_and_mul")]
    private static unsafe partial DskStatus SiluAndMulNative(DskSiluAndMulParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_copy_columns")]
    private static unsafe partial DskStatus CopyColumnsNative(DskCopyColumnsParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_elementwise")]
    private static unsafe partial DskStatus ElementwiseNative(DskElementwiseParams* p);

    [LibraryImport(NativeLibraryLocator.DeepSeekKernels, EntryPoint = "dsk_softmax")]
    private static unsafe partial DskStatus SoftmaxNative(DskSoftmaxParams* p);

    /// <summary>Runs <c>dsk_silu_and_mul</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void SiluAndMul(in DskSiluAndMulParams p)
    {
        EnsureLoaded();
        DskSiluAndMulParams copy = p;
        Check(SiluAndMulNative(&copy), "dsk_silu_and_mul");
    }

    /// <summary>Runs <c>dsk_copy_columns</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void CopyColumns(in DskCopyColumnsParams p)
    {
        EnsureLoaded();
        DskCopyColumnsParams copy = p;
        Check(CopyColumnsNative(&copy), "dsk_copy_columns");
    }

    /// <summary>Runs <c>dsk_elementwise</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void Elementwise(in DskElementwiseParams p)
    {
        EnsureLoaded();
        DskElementwiseParams copy = p;
        Check(ElementwiseNative(&copy), "dsk_elementwise");
    }

    /// <summary>Runs <c>dsk_softmax</c>; throws <see cref="DskNativeException"/> on failure.</summary>
    public static unsafe void Softmax(in DskSoftmaxParams p)
    {
        EnsureLoaded();
        DskSoftmaxParams copy = p;
        Check(SoftmaxNative(&copy), "dsk_softmax");
    }
}
