using DeepSeekKernels.Runtime;

namespace DeepSeekKernels;

/// <summary>
/// The routed experts of one mixture-of-experts layer, what <see cref="Ops.MoeLayer"/> runs: the router (a [Experts,
/// Hidden] linear layer and DeepSeek-V3's optional correction bias), its <see cref="MoeRouting"/>, and one SwiGLU MLP per
/// expert as weight stacks: the fused [gate | up] stack (Count = Experts, Rows = 2 * Intermediate) or the two stacks,
/// and the down stack ([Hidden, Intermediate] each). The shared experts are not part of it: run them first into the
/// destination and call the layer with accumulate (the combine adds onto them).
/// </summary>
public sealed class MoeLayer
{
    /// <summary>Checks that the parts fit together; every error names the part and the sizes.</summary>
    /// <param name="router">[Experts, Hidden], Count 1.</param>
    /// <param name="correctionBias">[Experts] (DeepSeek-V3's e_score_correction_bias), or default.</param>
    /// <param name="routing">The router's configuration; routing.Experts = router.Rows.</param>
    /// <param name="gateUp">The fused [gate | up] stack, or null when <paramref name="gate"/> and <paramref name="up"/> are given.</param>
    /// <param name="gate">The gate stack (null with a fused stack).</param>
    /// <param name="up">The up stack (null with a fused stack).</param>
    /// <param name="down">[Hidden, Intermediate] per expert.</param>
    /// <exception cref="ArgumentNullException">router, routing or down is null.</exception>
    /// <exception cref="ArgumentException">The parts do not fit together (ParamName the part), or are on different runtimes.</exception>
    public MoeLayer(WeightMatrix router, DeviceView<float> correctionBias, MoeRouting routing, WeightMatrix? gateUp, WeightMatrix? gate,
        WeightMatrix? up, WeightMatrix down)
    {
        const string op = "MoeLayer";
        if (router is null)
            ThrowHelper.ArgumentNull(op, nameof(router));
        if (routing is null)
            ThrowHelper.ArgumentNull(op, nameof(routing));
        if (down is null)
            ThrowHelper.ArgumentNull(op, nameof(down));
        int experts = routing.Experts, hidden = router.Cols;
        if (router.Count != 1 || router.Rows != experts)
            ThrowHelper.Argument(op, nameof(router), $"router is {router.Count} x [{router.Rows}, {router.Cols}]; it must be one [routing.Experts = {experts}, hidden] matrix.");
        if (!correctionBias.IsNull && correctionBias.Length != experts)
            ThrowHelper.Argument(op, nameof(correctionBias), $"correctionBias has {correctionBias.Length} elements; it needs routing.Experts = {experts}.");
        if (down.Count != experts || down.Rows != hidden)
            ThrowHelper.Argument(op, nameof(down), $"down is {down.Count} x [{down.Rows}, {down.Cols}]; it must be routing.Experts = {experts} matrices of [hidden = {hidden}, intermediate].");
        int intermediate = down.Cols;
        if (gateUp != null)
        {
            if (gate != null || up != null)
                ThrowHelper.Argument(op, nameof(gateUp), "pass either the fused gateUp stack or the gate and up stacks, not both.");
            if (gateUp.Count != experts || gateUp.Rows != 2 * intermediate || gateUp.Cols != hidden)
                ThrowHelper.Argument(op, nameof(gateUp), $"gateUp is {gateUp.Count} x [{gateUp.Rows}, {gateUp.Cols}]; it must be {experts} matrices of "
                    + $"[2 * intermediate = {2L * intermediate}, hidden = {hidden}].");
        }
        else
        {
            foreach (var (part, name) in new[] { (gate, nameof(gate)), (up, nameof(up)) })
            {
                if (part is null)
                    ThrowHelper.Argument(op, name, $"{name} is null: without a fused gateUp stack both gate and up are needed.");
                if (part.Count != experts || part.Rows != intermediate || part.Cols != hidden)
                    ThrowHelper.Argument(op, name, $"{name} is {part.Count} x [{part.Rows}, {part.Cols}]; it must be {experts} matrices of "
                        + $"[intermediate = {intermediate}, hidden = {hidden}].");
            }
        }
        foreach (var (part, name) in new[] { (gateUp, nameof(gateUp)), (gate, nameof(gate)), (up, nameof(up)), (down, nameof(down)) })
        {
            if (part != null && !ReferenceEquals(part.Runtime, router.Runtime))
                ThrowHelper.Argument(op, name, $"{name} belongs to a different DeviceRuntime than the router.");
        }
        if (!correctionBias.IsNull && !ReferenceEquals(correctionBias.Runtime, router.Runtime))
            ThrowHelper.Argument(op, nameof(correctionBias), "correctionBias belongs to a different DeviceRuntime than the router.");
        (Router, CorrectionBias, Routing, GateUp, Gate, Up, Down) = (router, correctionBias, routing, gateUp, gate, up, down);
        (Experts, Hidden, Intermediate) = (experts, hidden, intermediate);
    }

    /// <summary>The router, [Experts, Hidden].</summary>
    public WeightMatrix Router { get; }

    /// <summary>The correction bias [Experts], or default.</summary>
    public DeviceView<float> CorrectionBias { get; }

    /// <summary>The router's configuration.</summary>
    public MoeRouting Routing { get; }

    /// <summary>The fused [gate | up] stack, or null.</summary>
    public WeightMatrix? GateUp { get; }

    /// <summary>The gate stack when not fused, else null.</summary>
    public WeightMatrix? Gate { get; }

    /// <summary>The up stack when not fused, else null.</summary>
    public WeightMatrix? Up { get; }

    /// <summary>The down stack.</summary>
    public WeightMatrix Down { get; }

    /// <summary>Routed experts.</summary>
    public int Experts { get; }

    /// <summary>The model's hidden size (the layer's input and output width).</summary>
    public int Hidden { get; }

    /// <summary>Each expert's intermediate size.</summary>
    public int Intermediate { get; }

    /// <summary>Experts per token.</summary>
    public int TopK => Routing.TopK;

    /// <summary>The runtime the weights live on.</summary>
    public DeviceRuntime Runtime => Router.Runtime;
}
