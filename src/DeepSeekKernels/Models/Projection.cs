using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// The model's linear layers: <see cref="Ops.Linear"/>, or, when the model runs FP8 activations
/// (<see cref="CausalLanguageModel.Fp8Activations"/>), W8A8 for an FP8 weight with DeepSeek-V3's 128 x 128 blocks in a
/// forward pass of at least <see cref="Fp8MinRows"/> rows: the input quantised per token and 128 features to e4m3 into the
/// workspace (<see cref="Ops.QuantizeFp8Activations"/>), then <see cref="Ops.LinearW8A8"/> (both scales applied per
/// 128-wide block, fp32 accumulation), where the backend runs both; otherwise the plain product. Decode steps stay on the
/// weight-streaming GEMV, whose bytes are the weights' either way.
/// </summary>
internal static class Projection
{
    /// <summary>Rows from which W8A8 replaces the dequantising product (prefill; the native Linear's tensor-core switch is at 32 too).</summary>
    public const int Fp8MinRows = 32;

    /// <summary>y [rows, w.Rows] = x [rows, w.Cols] @ W^T (+ bias), as <see cref="Ops.Linear"/> takes them (x rank 1 or 2).</summary>
    public static void Linear(Ops ops, Workspace ws, DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y)
    {
        if (W8A8Input(ops, ws, x, w, y) is not { } rows)
        {
            ops.Linear(x, w, bias, y);
            return;
        }
        long count = rows.Dim(0), cols = w.Cols;
        var q = ws.Fp8(Fp8Activations, count * cols);
        var scales = ws.F(Fp8ActivationScales, count * ((cols + 127) / 128));
        ops.QuantizeFp8Activations(rows, q, scales);
        ops.LinearW8A8(q, scales, w, bias, y);
    }

    /// <summary>Whether <see cref="Linear"/> would run this product as W8A8.</summary>
    public static bool TakesW8A8(Ops ops, Workspace ws, DeviceTensor x, WeightMatrix w, DeviceTensor y) => W8A8Input(ops, ws, x, w, y) != null;

    /// <summary>Whether the product goes W8A8, as x's rank-2 view [rows, w.Cols]; null when it does not.</summary>
    static DeviceTensor? W8A8Input(Ops ops, Workspace ws, DeviceTensor x, WeightMatrix w, DeviceTensor y)
    {
        if (!ws.Fp8Activations || w.Scheme != WeightScheme.Fp8Block || w.Count != 1 || w.BlockRows != 128 || w.BlockCols != 128 || w.Cols % 16 != 0)
            return null;
        DeviceTensor rows;
        if (x.Rank == 2 && x.Dim(1) == w.Cols)
            rows = x;
        else if (x.Rank == 1 && x.IsContiguous && x.Length % w.Cols == 0)
            rows = x.Reshape(x.Length / w.Cols, w.Cols);
        else
            return null;
        if (rows.Dim(0) < Fp8MinRows || rows.Dim(0) > ws.Tokens)
            return null;
        bool quantize = ops.Supports(new OpSignature(nameof(Ops.QuantizeFp8Activations), rows.ElementType) { StridedRows = !rows.IsContiguous });
        bool linear = ops.Supports(OpSignature.WithWeight(nameof(Ops.LinearW8A8), y.ElementType, w) with { StridedRows = y.Rank == 2 && !y.IsContiguous });
        return quantize && linear ? rows : (DeviceTensor?)null;
    }
}
