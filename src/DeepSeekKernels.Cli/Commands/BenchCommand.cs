using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk bench`: prefill and decode speed of a model, llama.cpp's `llama-bench` counterpart. As llama-bench does, the
/// prefill test (pp) runs N pseudo-random ids as one prompt on an empty cache (logits of the last position only) and
/// the decode test (tg) runs M ids one at a time on an empty cache, each a fixed pseudo-random id (not the sampled
/// one: the cost of a step does not depend on the id). No tokenizer is involved. One untimed warm-up run of each whole
/// test first (the pages of the weights, and .NET's tiered JIT: it recompiles the hot methods optimised on a background
/// thread during about the first second, which on a 2-core machine halved the first tg64 repetition of the 0.31B Llama
/// after a 4-token warm-up), then R timed repetitions of each; prints one line per repetition and
/// the medians, the process's peak RSS and the model's weight bytes. With --profile, every op call is timed
/// (<see cref="Ops.WithProfiling"/>) and each test's time per token is split by op signature and weight shape.
/// </summary>
internal static class BenchCommand
{
    /// <summary>The seed of the ids: the same ids on every run.</summary>
    const int IdSeed = 1234;

    public static Command Create()
    {
        var model = CommonOptions.Model("Hugging Face model folder (config.json, *.safetensors; no tokenizer needed). Default: the embedded dsv3-pydoc-tiny.");
        var promptTokens = new Option<int>("--prompt-tokens", "-p")
        {
            Description = "Tokens in the prefill test (pp), as llama-bench -p.",
            DefaultValueFactory = _ => 512,
        };
        var genTokens = new Option<int>("--gen-tokens", "-n")
        {
            Description = "Tokens in the decode test (tg), one per step, as llama-bench -n.",
            DefaultValueFactory = _ => 128,
        };
        var repetitions = new Option<int>("--repetitions", "-r")
        {
            Description = "Timed repetitions of each test (the medians are reported), as llama-bench -r.",
            DefaultValueFactory = _ => 3,
        };
        var noWarmup = new Option<bool>("--no-warmup") { Description = "Skip the untimed warm-up run of each test." };
        var json = new Option<bool>("--json") { Description = "Also print the results as one JSON line (last line of stdout)." };
        var profile = new Option<bool>("--profile")
        {
            Description = "Time every op call and print where each test's time per token goes, by op and weight shape " +
                "(on a GPU each op is synchronised, so the rates are lower than without).",
        };
        var engine = new EngineOptions();
        var command = new Command("bench", "Measure prefill (pp) and decode (tg) tokens/s of a model on pseudo-random ids, as llama.cpp's llama-bench does.")
        {
            model, promptTokens, genTokens, repetitions, noWarmup, json, profile,
        };
        engine.AddTo(command);
        command.SetAction(parse => Run(parse.GetValue(model), parse.GetValue(promptTokens), parse.GetValue(genTokens),
            parse.GetValue(repetitions), !parse.GetValue(noWarmup), parse.GetValue(json), parse.GetValue(profile), engine.Read(parse)));
        return command;
    }

    /// <summary>Everything is checked before the model is loaded.</summary>
    static int Run(string? modelFlag, int promptTokens, int genTokens, int repetitions, bool warmup, bool json, bool profile,
        EngineChoice engine)
    {
        if (promptTokens < 0)
            throw new UsageException($"--prompt-tokens must be 0 (no prefill test) or more (got {promptTokens}).");
        if (genTokens < 0)
            throw new UsageException($"--gen-tokens must be 0 (no decode test) or more (got {genTokens}).");
        if (promptTokens == 0 && genTokens == 0)
            throw new UsageException("--prompt-tokens and --gen-tokens are both 0: there is nothing to measure.");
        if (repetitions < 1)
            throw new UsageException($"--repetitions must be at least 1 (got {repetitions}).");
        string folder = CommonOptions.ModelFolder(modelFlag);
        var shape = CommonOptions.ShapeOf(folder);
        int longest = Math.Max(promptTokens, genTokens);
        if (longest > shape.MaxPositions)
            throw new UsageException($"--{(promptTokens >= genTokens ? "prompt" : "gen")}-tokens {longest} exceeds the model's " +
                $"max_position_embeddings ({shape.MaxPositions}).");
        // The context llama-bench gives its tests (n_prompt + n_gen) where the model holds it; each test uses the
        // cache from position 0.
        int context = (int)Math.Min(shape.MaxPositions, (long)promptTokens + genTokens);
        var random = new Random(IdSeed);
        int[] promptIds = [.. Enumerable.Range(0, promptTokens).Select(_ => random.Next(shape.Vocab))];
        int[] genIds = [.. Enumerable.Range(0, genTokens).Select(_ => random.Next(shape.Vocab))];

        using var loaded = engine.Load(folder, context, "bench", profile: profile);
        var m = loaded.Model;
        using var cache = m.CreateCache(context, loaded.KvType);
        var logits = new float[m.Shape.Vocab];

        double Prefill()
        {
            cache.Clear();
            var clock = Stopwatch.StartNew();
            m.Forward(promptIds, cache, logits);
            return clock.Elapsed.TotalSeconds;
        }
        double Decode(int count)
        {
            cache.Clear();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < count; i++)
                m.Forward(genIds.AsSpan(i, 1), cache, logits);
            return clock.Elapsed.TotalSeconds;
        }
        void CheckLogits(string test)
        {
            foreach (float x in logits)
                if (!float.IsFinite(x))
                    throw new InvalidOperationException($"the {test} test's logits hold {x}: the model or the backend is broken.");
        }

        if (warmup)
        {
            if (promptTokens > 0)
                Prefill();
            if (genTokens > 0)
                Decode(genTokens);
        }
        var pp = new List<double>();
        var tg = new List<double>();
        var ppProfile = new TestProfile($"pp{promptTokens}");
        var tgProfile = new TestProfile($"tg{genTokens}");
        var invariant = CultureInfo.InvariantCulture;
        for (int r = 0; r < repetitions; r++)
        {
            if (promptTokens > 0)
            {
                loaded.Ops.ResetProfile();
                double seconds = Prefill();
                ppProfile.Add(loaded.Ops.Profile, seconds, promptTokens);
                double tps = promptTokens / seconds;
                CheckLogits("prefill");
                pp.Add(tps);
                Console.Out.WriteLine(string.Create(invariant, $"rep {r + 1}: pp{promptTokens} {tps:F2} tokens/s"));
            }
            if (genTokens > 0)
            {
                loaded.Ops.ResetProfile();
                double seconds = Decode(genTokens);
                tgProfile.Add(loaded.Ops.Profile, seconds, genTokens);
                double tps = genTokens / seconds;
                CheckLogits("decode");
                tg.Add(tps);
                Console.Out.WriteLine(string.Create(invariant, $"rep {r + 1}: tg{genTokens} {tps:F2} tokens/s"));
            }
            Console.Out.Flush();
        }

        long peakRss = PeakResidentBytes();
        if (promptTokens > 0)
            Console.Out.WriteLine(string.Create(invariant, $"pp{promptTokens}: {Median(pp):F2} tokens/s (median of {pp.Count})"));
        if (genTokens > 0)
            Console.Out.WriteLine(string.Create(invariant, $"tg{genTokens}: {Median(tg):F2} tokens/s (median of {tg.Count})"));
        string rss = peakRss < 0 ? "unknown" : string.Create(invariant, $"{peakRss / 1e6:F1} MB");
        string ratio = peakRss < 0 ? "" : string.Create(invariant, $" (RSS / weights {peakRss / (double)m.WeightBytes:F2})");
        Console.Out.WriteLine(string.Create(invariant, $"peak RSS: {rss}; weights: {m.WeightBytes / 1e6:F1} MB{ratio}"));
        if (profile)
        {
            if (promptTokens > 0)
                ppProfile.Print(Console.Out);
            if (genTokens > 0)
                tgProfile.Print(Console.Out);
        }
        if (json)
        {
            var record = new Dictionary<string, object?>
            {
                ["model"] = folder,
                ["architecture"] = m.Shape.Architecture.ToString(),
                ["backend"] = engine.Backend,
                ["device"] = loaded.Runtime.DeviceName,
                ["activations"] = m.Activations.Name(),
                ["kv_dtype"] = loaded.KvType.Name(),
                ["quant"] = m.Quantization.Requested.Name(),
                ["int4_dot"] = loaded.Ops.CpuInt4Dot switch { CpuInt4Dot.Int8 => "int8", CpuInt4Dot.Float32 => "f32", _ => null },
                ["fp8_activations"] = m.Fp8Activations,
                ["cuda_graphs"] = m.DecodeGraphs,
                ["n_prompt"] = promptTokens,
                ["n_gen"] = genTokens,
                ["repetitions"] = repetitions,
                ["pp_tokens_per_s"] = pp,
                ["tg_tokens_per_s"] = tg,
                ["pp_median"] = pp.Count > 0 ? Median(pp) : null,
                ["tg_median"] = tg.Count > 0 ? Median(tg) : null,
                ["peak_rss_bytes"] = peakRss < 0 ? null : peakRss,
                ["weight_bytes"] = m.WeightBytes,
            };
            if (profile)
                record["profile"] = new Dictionary<string, object?>
                {
                    ["pp"] = promptTokens > 0 ? ppProfile.Json() : null,
                    ["tg"] = genTokens > 0 ? tgProfile.Json() : null,
                };
            Console.Out.WriteLine(JsonSerializer.Serialize(record));
        }
        CommonOptions.ReportGraphs(loaded.Model, "bench");
        CommonOptions.ReportFallback(loaded.Ops, "bench");
        return 0;
    }

    /// <summary>One test's op profile summed over its timed repetitions.</summary>
    sealed class TestProfile(string name)
    {
        readonly Dictionary<string, (long Calls, double Seconds)> _ops = new(StringComparer.Ordinal);
        double _wall;
        long _tokens;

        public void Add(IReadOnlyList<OpProfileRecord> records, double wallSeconds, int tokens)
        {
            foreach (var record in records)
            {
                var (calls, seconds) = _ops.GetValueOrDefault(record.Label);
                _ops[record.Label] = (calls + record.Calls, seconds + record.Seconds);
            }
            _wall += wallSeconds;
            _tokens += tokens;
        }

        IEnumerable<(string Label, long Calls, double Seconds)> Rows =>
            _ops.Select(e => (e.Key, e.Value.Calls, e.Value.Seconds)).OrderByDescending(r => r.Seconds).ThenBy(r => r.Key, StringComparer.Ordinal);

        double InOps => _ops.Values.Sum(v => v.Seconds);

        public void Print(TextWriter output)
        {
            var invariant = CultureInfo.InvariantCulture;
            if (_tokens == 0)
                return;
            double perToken = 1e3 / _tokens;
            output.WriteLine(string.Create(invariant,
                $"profile {name} ({_tokens} tokens timed): {_wall * perToken:F3} ms a token, {InOps * perToken:F3} ms of it in the backend's ops"));
            output.WriteLine("  ms/token   share  calls/token    us/call  op");
            foreach (var (label, calls, seconds) in Rows)
                output.WriteLine(string.Create(invariant,
                    $"  {seconds * perToken,8:F3}  {seconds / _wall,6:P1}  {calls / (double)_tokens,11:F2}  {seconds / calls * 1e6,9:F1}  {label}"));
            double outside = _wall - InOps;
            output.WriteLine(string.Create(invariant,
                $"  {outside * perToken,8:F3}  {outside / _wall,6:P1}  {"",11}  {"",9}  outside the ops (argument checks, the model's host code, copies, the bench loop)"));
        }

        public object Json() => new Dictionary<string, object?>
        {
            ["tokens"] = _tokens,
            ["wall_s"] = _wall,
            ["ops_s"] = InOps,
            ["ops"] = Rows.Select(r => new Dictionary<string, object?> { ["op"] = r.Label, ["calls"] = r.Calls, ["seconds"] = r.Seconds }).ToArray(),
        };
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>The process's peak resident set (VmHWM in /proc/self/status) in bytes; -1 where there is no /proc.</summary>
    static long PeakResidentBytes()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path))
            return -1;
        foreach (string line in File.ReadLines(path))
        {
            if (!line.StartsWith("VmHWM:", StringComparison.Ordinal))
                continue;
            var parts = line["VmHWM:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024; // "VmHWM:   123456 kB"
        }
        return -1;
    }
}
