using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Rotary position embedding in place through the hand-CUDA kernel (dsk_rope, kernels/rope.cu) on the runtime's stream:
/// f32 or bf16 heads, half-split or interleaved pairs, the table's f32 cos/sin (attention factor folded in). The positions
/// are device data: one outside the table leaves its token as it was and is recorded in the runtime's error word under
/// <see cref="DeviceErrorSite.RopePositions"/>, which the next synchronisation throws as a <see cref="DeviceIndexException"/>.
/// </summary>
internal static class RopeNative
{
    /// <summary>x [tokens, heads, headStride] (flat, contiguous), rotated in place at positions [tokens].</summary>
    public static void Run(DeviceRuntime runtime, DeviceTensor x, DeviceView<int> positions, RopeTable table, int tokens, int heads,
        int headStride, int ropeOffset, RopeLayout layout)
    {
        var p = new DskRopeParams
        {
            X = x.Pointer,
            Positions = positions.Pointer,
            Cos = table.Cos.Pointer,
            Sin = table.Sin.Pointer,
            ErrorWord = runtime.Errors.Word.View.Pointer,
            Tokens = tokens,
            Heads = heads,
            HeadStride = headStride,
            XRowStride = (long)heads * headStride,
            RopeOffset = ropeOffset,
            RotaryDim = table.RotaryDim,
            MaxPositions = table.MaxPositions,
            XDType = (int)x.ElementType,
            Layout = (int)(layout == RopeLayout.Interleaved ? DskRopeLayout.Interleaved : DskRopeLayout.HalfSplit),
            ErrorSite = DeviceErrorSite.RopePositions.Id,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.Rope(p);
    }
}
