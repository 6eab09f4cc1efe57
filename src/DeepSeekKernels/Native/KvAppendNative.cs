using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// KV append (vLLM's reshape_and_cache) through the hand-CUDA kernel (dsk_kv_append, kernels/kv_append.cu) on the runtime's
/// stream: key rows (and value rows) of f32 or bf16, rows strided, into f32 or bf16 pages through the slot mapping, each of
/// the four types independent; MLA's latent cache has keys only. The slots are device data: one outside the pool is skipped
/// and recorded in the runtime's error word under <see cref="DeviceErrorSite.KvAppendSlots"/> (a
/// <see cref="DeviceIndexException"/> at the next synchronisation).
/// </summary>
internal static class KvAppendNative
{
    /// <summary>keys [tokens, keyWidth] (and values [tokens, valueWidth], or default) into keyPages [pages, pageSize, keyWidth] (and valuePages).</summary>
    public static void Run(DeviceRuntime runtime, DeviceTensor keys, DeviceTensor values, DeviceView<int> slotMapping, DeviceTensor keyPages,
        DeviceTensor valuePages)
    {
        long tokens = keys.Dim(0);
        bool hasValues = !values.IsNull;
        var p = new DskKvAppendParams
        {
            Keys = keys.Pointer,
            Values = hasValues ? values.Pointer : IntPtr.Zero,
            SlotMapping = slotMapping.Pointer,
            KeyPages = keyPages.Pointer,
            ValuePages = hasValues ? valuePages.Pointer : IntPtr.Zero,
            ErrorWord = runtime.Errors.Word.View.Pointer,
            Tokens = tokens,
            Slots = keyPages.Dim(0) * keyPages.Dim(1),
            KeyWidth = keys.Dim(1),
            ValueWidth = hasValues ? values.Dim(1) : 0,
            KeysRowStride = RowStride(keys),
            ValuesRowStride = hasValues ? RowStride(values) : 0,
            KeyDType = (int)keys.ElementType,
            ValueDType = hasValues ? (int)values.ElementType : (int)keys.ElementType,
            KeyPageDType = (int)keyPages.ElementType,
            ValuePageDType = hasValues ? (int)valuePages.ElementType : (int)keyPages.ElementType,
            ErrorSite = DeviceErrorSite.KvAppendSlots.Id,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.KvAppend(p);
    }

    /// <summary>The row stride the C ABI is given: with one row any stride is as good, and a broadcast 0 would be refused.</summary>
    static long RowStride(DeviceTensor rows) => rows.Dim(0) == 1 ? Math.Max(rows.Stride(0), rows.Dim(1)) : rows.Stride(0);
}
