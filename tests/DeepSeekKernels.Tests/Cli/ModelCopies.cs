using System.Text.Json.Nodes;
using DeepSeekKernels.Tests.Checkpoints;

namespace DeepSeekKernels.Tests.Cli;

/// <summary>Damaged copies of model folders for the CLI's bad-input tests, each in a temp folder deleted on dispose (through <see cref="CheckpointCopy"/>).</summary>
internal static class ModelCopies
{
    /// <summary>
    /// A copy of <paramref name="source"/> (default: the embedded model), its config.json edited by
    /// <paramref name="editConfig"/> and every element of the tensor <paramref name="fill"/> names set to its value.
    /// </summary>
    public static TempFolder Of(string? source = null, Action<JsonObject>? editConfig = null, (string Tensor, float Value)? fill = null)
    {
        var folder = new TempFolder();
        CheckpointCopy.Write(source ?? CheckpointFixtures.PydocTiny, folder.Path,
            fill is var (name, value) ? t => t.Name == name ? CheckpointCopy.Fill(t, value) : t : null,
            editConfig);
        return folder;
    }
}
