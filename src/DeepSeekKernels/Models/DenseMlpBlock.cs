using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>
/// SwiGLU MLP: down(silu(gate(x)) * up(x)); also DeepSeek's shared experts. Gate and up fill one [tokens, 2 *
/// intermediate] buffer side by side: one GEMM when the loader fused them into one weight, else two GEMMs writing
/// the two column blocks (FP8 weights whose scale blocks straddle the seam cannot be fused). A fused weight goes through
/// <see cref="Ops.LinearSiluMul"/> where the backend runs it (no [tokens, 2 * intermediate] round trip).
/// </summary>
internal sealed class DenseMlpBlock(GateUp gateUp, WeightMatrix down) : IMlpBlock
{
    public void Forward(Ops ops, Workspace ws, int count, DeviceTensor input, DeviceTensor output)
    {
        int inter = gateUp.Intermediate;
        long t = count;
        var act = ws.A(MlpActivation, t * inter);
        if (gateUp.Fused is { } fused && !Projection.TakesW8A8(ops, ws, input, fused, act)
            && ops.Supports(OpSignature.WithWeight(nameof(Ops.LinearSiluMul), input.ElementType, fused)))
        {
            ops.LinearSiluMul(input, fused, act); // the fused weight read once, the activation in the epilogue
        }
        else
        {
            var gu = ws.A(MlpGateUp, 2 * t * inter);
            gateUp.Project(ops, ws, input, gu.Reshape(t, 2L * inter));
            ops.SiluAndMul(gu, act, inter);
        }
        Projection.Linear(ops, ws, act, down, default, output);
    }

    public void Dispose() { }
}

/// <summary>The gate and up projections of a SwiGLU MLP: one fused weight [2 * intermediate, hidden] (gate rows, then up rows), or the two.</summary>
internal sealed record GateUp(int Intermediate, WeightMatrix? Fused, WeightMatrix? Gate, WeightMatrix? Up)
{
    /// <summary>destination [rows, 2 * intermediate] = [x @ gate^T | x @ up^T] (<see cref="Projection.Linear"/>: W8A8 where the model runs FP8 activations).</summary>
    public void Project(Ops ops, Workspace ws, DeviceTensor x, DeviceTensor destination)
    {
        if (Fused != null)
        {
            Projection.Linear(ops, ws, x, Fused, default, destination);
            return;
        }
        Projection.Linear(ops, ws, x, Gate!, default, destination.Columns(0, Intermediate));
        Projection.Linear(ops, ws, x, Up!, default, destination.Columns(Intermediate, Intermediate));
    }

    /// <summary>Per expert: destination [m, 2 * intermediate] = rows of x times [gate_e | up_e]^T.</summary>
    public void ProjectGrouped(Ops ops, DeviceTensor x, DeviceView<int> offsets, DeviceTensor destination)
    {
        if (Fused != null)
        {
            ops.GroupedLinear(x, offsets, Fused, destination);
            return;
        }
        ops.GroupedLinear(x, offsets, Gate!, destination.Columns(0, Intermediate));
        ops.GroupedLinear(x, offsets, Up!, destination.Columns(Intermediate, Intermediate));
    }
}
