using System.CommandLine;
using System.Diagnostics;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// The options that choose how a model runs, added to generate and chat together: --backend, --device, --threads, --dtype,
/// --kv-dtype, --quant, --allow-fallback, --int4-dot and --cuda-graphs.
/// </summary>
internal sealed class EngineOptions
{
    public Option<string> Backend { get; } = CommonOptions.Backend();
    public Option<string> Device { get; } = CommonOptions.Device();
    public Option<int?> Threads { get; } = CommonOptions.Threads();
    public Option<string?> Dtype { get; } = CommonOptions.Dtype();
    public Option<string?> KvDtype { get; } = CommonOptions.KvDtype("the --dtype");
    public Option<string> Quant { get; } = QuantOption.ForLoading();
    public Option<bool> AllowFallback { get; } = CommonOptions.AllowFallback();
    public Option<string?> Int4Dot { get; } = CommonOptions.Int4Dot();
    public Option<bool> CudaGraphs { get; } = CommonOptions.CudaGraphs();
    public Option<bool> Fp8Activations { get; } = CommonOptions.Fp8Activations("The workspace then holds the FP8 inputs (dsk plan --fp8-activations counts them).");

    public void AddTo(Command command)
    {
        command.Options.Add(Backend);
        command.Options.Add(Device);
        command.Options.Add(Threads);
        command.Options.Add(Dtype);
        command.Options.Add(KvDtype);
        command.Options.Add(Quant);
        command.Options.Add(AllowFallback);
        command.Options.Add(Int4Dot);
        command.Options.Add(CudaGraphs);
        command.Options.Add(Fp8Activations);
    }

    public EngineChoice Read(ParseResult parse)
    {
        string backend = CommonOptions.ResolveBackend(parse.GetValue(Backend)!, parse.GetValue(Device)!);
        return new(backend, parse.GetValue(Device)!, parse.GetValue(Dtype), parse.GetValue(KvDtype), QuantOption.Parse(parse.GetValue(Quant)!),
            parse.GetValue(AllowFallback), parse.GetValue(Threads), CommonOptions.ParseInt4Dot(parse.GetValue(Int4Dot), backend),
            parse.GetValue(CudaGraphs), parse.GetValue(Fp8Activations));
    }
}

/// <summary>What the engine options said; <see cref="Backend"/> is resolved (never "auto"), <see cref="Threads"/> null unless --threads.</summary>
internal sealed record EngineChoice(string Backend, string Device, string? Dtype, string? KvDtype, WeightQuantization Quantization,
    bool AllowFallback, int? Threads = null, CpuInt4Dot Int4Dot = CpuInt4Dot.Float32, bool CudaGraphs = false, bool Fp8Activations = false)
{
    /// <summary>
    /// Creates the runtime and ops, loads the model in <paramref name="folder"/> for <paramref name="contextLength"/>
    /// positions (RoPE tables for the context used) in the chosen activation type and quantisation, and says so on stderr.
    /// </summary>
    /// <remarks>
    /// The KV cache the command creates next (<paramref name="kvSequences"/> sequences of <paramref name="contextLength"/>
    /// positions, of <see cref="LoadedModel.KvType"/>) is counted in the loader's fit check, so a run whose cache would not
    /// fit is refused before the weights load. With <paramref name="profile"/> the ops time every call (<see cref="Ops.WithProfiling"/>).
    /// </remarks>
    public LoadedModel Load(string folder, int contextLength, string command, int kvSequences = 1, bool profile = false)
    {
        var (runtime, ops) = CommonOptions.CreateOps(Backend, Device, AllowFallback, Threads, Int4Dot);
        if (CudaGraphs && !runtime.IsCuda)
        {
            string device = runtime.DeviceName;
            runtime.Dispose();
            throw new UsageException($"--cuda-graphs needs a CUDA GPU; this run is on {device}.");
        }
        if (profile)
            ops = ops.WithProfiling();
        try
        {
            var clock = Stopwatch.StartNew();
            var activations = CommonOptions.ActivationType(Dtype, Backend, runtime.IsCuda);
            var kvType = CommonOptions.KvType(KvDtype, activations);
            CausalLanguageModel model;
            try
            {
                model = ModelLoader.Load(folder, ops, contextLength: contextLength, quantization: Quantization,
                    activations: activations, fp8Activations: Fp8Activations, kvCache: new KvCacheRequest(kvSequences, kvType));
            }
            catch (ArgumentOutOfRangeException e) when (e.ParamName == "kvCache")
            {
                throw new UsageException($"{CliErrors.OneLine(e)}; ask for fewer sequences at once or a shorter context.", e);
            }
            CliErrors.Status($"loaded {model.Shape.Architecture} from {folder} in {clock.Elapsed.TotalSeconds:F1} s " +
                $"({model.WeightBytes / 1e6:F1} MB of weights" + (model.MappedWeightBytes > 0 ? $", {model.MappedWeightBytes / 1e6:F1} MB read in place from the mapped file" : "") +
                $", backend {Backend}" + (Backend == "cpu" ? $" ({ThreadsText(ops)}{(Int4Dot == CpuInt4Dot.Int8 ? ", int8 activations for INT4 weights" : "")})" : "") + $" on {runtime.DeviceName}, {model.Activations.Name()} activations" +
                (Fp8Activations ? ", FP8 (W8A8) prefill for FP8-block weights" : "") + ")");
            QuantOption.Report(command, model);
            model.DecodeGraphs = CudaGraphs;
            return new LoadedModel(runtime, ops, model, kvType);
        }
        catch
        {
            runtime.Dispose();
            throw;
        }
    }

    static string ThreadsText(Ops ops) => $"{ops.CpuThreads} thread{(ops.CpuThreads == 1 ? "" : "s")}";
}

/// <summary>A loaded model with its runtime and ops, and the KV cache type chosen for it; disposing frees both.</summary>
internal sealed class LoadedModel(DeviceRuntime runtime, Ops ops, CausalLanguageModel model, ElementType kvType) : IDisposable
{
    public DeviceRuntime Runtime { get; } = runtime;
    public Ops Ops { get; } = ops;
    public CausalLanguageModel Model { get; } = model;
    public ElementType KvType { get; } = kvType;

    public void Dispose()
    {
        Model.Dispose();
        Runtime.Dispose();
    }
}
