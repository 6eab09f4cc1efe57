using DeepSeekKernels.Caching;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Models;

/// <summary>
/// One forward step of a batch over a paged cache, as every layer sees it: the step's tokens of all sequences
/// concatenated, their positions and cache slots, and the attention metadata, all in device buffers.
/// </summary>
/// <param name="Cache">The pool the keys and values go to.</param>
/// <param name="Tokens">Tokens in the step (rows of every activation).</param>
/// <param name="Positions">[Tokens] position of each token in its sequence.</param>
/// <param name="Slots">[Tokens] cache slot of each token.</param>
/// <param name="Batch">Block table, sequence lengths and query offsets of the step's sequences.</param>
internal readonly record struct ForwardStep(PagedKvCache Cache, int Tokens, DeviceView<int> Positions, DeviceView<int> Slots, PagedBatch Batch);

/// <summary>The attention half of a decoder layer: normed input rows in, attention output rows out, cache updated.</summary>
internal interface IAttentionBlock : IDisposable
{
    /// <summary>
    /// Runs the step's tokens: input [tokens, hidden], output [tokens, hidden]; appends their keys/values to the
    /// cache's pages of <paramref name="layer"/> through the slot mapping, then attends over each sequence's pages.
    /// </summary>
    void Forward(Ops ops, Workspace ws, in ForwardStep step, int layer, DeviceTensor input, DeviceTensor output);
}

/// <summary>The MLP half of a decoder layer: normed input rows in, output rows out.</summary>
internal interface IMlpBlock : IDisposable
{
    void Forward(Ops ops, Workspace ws, int count, DeviceTensor input, DeviceTensor output);
}
