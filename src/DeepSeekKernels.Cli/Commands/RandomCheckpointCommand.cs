using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeepSeekKernels.Models;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk random-checkpoint CONFIG FOLDER`: a random-weight checkpoint of a config.json's model (<see cref="RandomCheckpoint"/>),
/// so `dsk bench --model FOLDER` measures the model's real shapes without its weights (bench/models/ holds such configs).
/// </summary>
internal static class RandomCheckpointCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "A config.json (or a folder holding one): the model's architecture and sizes." };
        var folder = new Argument<string>("folder") { Description = "Where to write the checkpoint: a new or empty folder." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the weights (the same seed writes the same bytes).", DefaultValueFactory = _ => 0 };
        var shard = new Option<double>("--shard-gb") { Description = "Largest safetensors file, in GB (10^9 bytes).", DefaultValueFactory = _ => RandomCheckpoint.DefaultShardBytes / 1e9 };
        var command = new Command("random-checkpoint",
            "Write a random-weight BF16 checkpoint for a config.json (every tensor the runner reads; for benchmarks on real shapes).")
        {
            config, folder, seed, shard,
        };
        command.SetAction(parse => Run(parse.GetValue(config)!, parse.GetValue(folder)!, parse.GetValue(seed), parse.GetValue(shard)));
        return command;
    }

    static int Run(string config, string folder, ulong seed, double shardGb)
    {
        if (!(shardGb >= 0.01 && shardGb <= 1e6))
            throw new UsageException(string.Create(CultureInfo.InvariantCulture, $"--shard-gb {shardGb}: must be between 0.01 and 1000000."));
        if (!File.Exists(config) && !File.Exists(Path.Combine(config, "config.json")))
            throw new UsageException($"{config}: no such config.json (give the file or a folder holding it).");
        var clock = Stopwatch.StartNew();
        var report = RandomCheckpoint.Write(config, folder, seed, (long)(shardGb * 1e9), line => Console.WriteLine($"writing {line}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{folder}: {report.Tensors:N0} tensors, {report.Parameters:N0} parameters, {report.Bytes / 1e9:F2} GB in {report.Files.Count} file(s), {clock.Elapsed.TotalSeconds:F1} s"));
        return 0;
    }
}
