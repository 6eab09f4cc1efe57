using DeepSeekKernels.Runtime;
using static DeepSeekKernels.Models.WorkspaceLayout;

namespace DeepSeekKernels.Models;

/// <summary>SwiGLU MLP: down(silu(gate(x)) * up(x)); also DeepSeek's shared experts.</summary>
internal sealed class DenseMlpBlock(WeightMatrix gate, WeightMatrix up, WeightMatrix down) : IMlpBlock
{
    public void Forward(Ops ops, Workspace ws, int count, DeviceView<float> input, DeviceView<float> output)
    {
        int inter = gate.Rows;
        long t = count;
        var g = ws.F(MlpGate, t * inter);
        var u = ws.F(MlpUp, t * inter);
        ops.Linear(input, gate, default, g);
        ops.Linear(input, up, default, u);
        var gu = ws.F(MlpGateUp, 2 * t * inter);
        ops.CopyColumns(g, inter, 0, gu, 2 * inter, 0, inter, count);
        ops.CopyColumns(u, inter, 0, gu, 2 * inter, inter, inter, count);
        var act = ws.F(MlpActivation, t * inter);
        ops.SiluAndMul(gu, act, inter);
        ops.Linear(act, down, default, output);
    }

    public void Dispose() { }
}
