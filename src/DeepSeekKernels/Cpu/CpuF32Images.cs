using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// bf16 activations as float32 images in per-thread scratch, for the CPU backend's ops that run the reference's float32
/// host code: what the reference backend's host images do (the tensor's extent widened exactly, the op's float32
/// arithmetic, every element rounded once on the way back, so the results are the reference's bit for bit) without a new
/// array per call (a bf16 decode step allocated 9-55 KB a token in those images). A float32 tensor is used in place.
/// <para>
/// Each call of an op takes its images in numbered slots (0 .. <see cref="Slots"/> - 1) of the calling thread; an op
/// must not hold a slot across a call of another op on the same thread (ops do not nest). The buffers are pinned, kept
/// and only grown, so a warm step allocates nothing; a worker of the pool may read an image through its address while the
/// calling thread waits for it.
/// </para>
/// </summary>
internal static unsafe class CpuF32Images
{
    /// <summary>Images one op call may hold at once (Add's x, y and z).</summary>
    public const int Slots = 3;

    [ThreadStatic] static float[]?[]? t_images;

    /// <summary>
    /// The address of <paramref name="tensor"/>'s elements as float32: its own for f32; for bf16 the extent from its
    /// first to its last element widened into slot <paramref name="slot"/> (element [0, ...] at the returned address,
    /// strides as the tensor's).
    /// </summary>
    public static nint Widen(DeviceTensor tensor, int slot)
    {
        if (tensor.ElementType == ElementType.F32)
            return tensor.Pointer;
        CheckBf16(tensor);
        int count = Extent(tensor);
        var image = Image(slot, count);
        BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>((void*)tensor.Pointer, count), image.AsSpan(0, count));
        return Address(image);
    }

    /// <summary>
    /// As <see cref="Widen"/>, reusing <paramref name="input"/>'s image (already widened in <paramref name="inputSlot"/>)
    /// when <paramref name="output"/> is exactly that tensor (an op in place); the slot to <see cref="Narrow"/> it from.
    /// </summary>
    public static (nint Address, int Slot) WidenOrSame(DeviceTensor output, int slot, DeviceTensor input, int inputSlot, nint inputAddress) =>
        TensorChecks.Of(output, input) == Overlap.Exact ? (inputAddress, inputSlot) : (Widen(output, slot), slot);

    /// <summary>Slot <paramref name="slot"/>'s image rounded back into bf16 <paramref name="tensor"/> (nothing for f32).</summary>
    public static void Narrow(DeviceTensor tensor, int slot)
    {
        if (tensor.ElementType == ElementType.F32)
            return;
        int count = Extent(tensor);
        BFloat16Conversions.FromSingle(t_images![slot].AsSpan(0, count), new Span<BFloat16>((void*)tensor.Pointer, count));
    }

    static void CheckBf16(DeviceTensor tensor)
    {
        if (tensor.ElementType != ElementType.BF16)
            throw new NotSupportedException($"The CPU backend's float32 images are of f32 or bf16 tensors, not {tensor.ElementType.Name()}.");
    }

    /// <summary>Elements from the tensor's first to its last (the reference's host image of it).</summary>
    static int Extent(DeviceTensor tensor) => tensor.ElementCount == 0 ? 0 : checked((int)(tensor.LastElement - tensor.Offset + 1));

    static float[] Image(int slot, int count)
    {
        var images = t_images ??= new float[Slots][];
        var image = images[slot];
        if (image == null || image.Length < count)
            images[slot] = image = GC.AllocateUninitializedArray<float>(Math.Max(Math.Max(count, 64), (int)Math.Min((image?.Length ?? 0) * 2L, Array.MaxLength)), pinned: true);
        return image;
    }

    static nint Address(float[] image) => (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(image));
}
