using DeepSeekKernels.Bindings;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Native;

/// <summary>
/// Embedding (row gather) through the hand-CUDA kernel (dsk_embedding, kernels/embedding.cu) on the runtime's stream: a
/// dense f32/bf16 or INT4 table, f32 or bf16 rows out. The ids are device data: an id outside the table is skipped and
/// recorded in the runtime's error word under <see cref="DeviceErrorSite.EmbeddingIds"/>, which the next synchronisation
/// throws as a <see cref="DeviceIndexException"/>, as on every backend.
/// </summary>
internal static class EmbeddingNative
{
    /// <summary>y [ids.Length, table.Cols] (dense rows) = table rows.</summary>
    public static void Run(DeviceRuntime runtime, DeviceView<int> ids, WeightMatrix table, DeviceTensor y)
    {
        var p = new DskEmbeddingParams
        {
            Ids = ids.Pointer,
            Table = LinearNative.For(table),
            Y = y.Pointer,
            ErrorWord = runtime.Errors.Word.View.Pointer,
            N = ids.Length,
            YRowStride = table.Cols,
            YDType = (int)y.ElementType,
            ErrorSite = DeviceErrorSite.EmbeddingIds.Id,
            Stream = runtime.CudaStreamHandle,
        };
        runtime.Bind();
        DskNative.Embedding(p);
    }
}
