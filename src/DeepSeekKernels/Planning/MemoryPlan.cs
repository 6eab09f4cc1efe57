using System.Globalization;
using DeepSeekKernels.Caching;
using DeepSeekKernels.Models;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Quantization;
using static System.FormattableString;

namespace DeepSeekKernels.Planning;

/// <summary>What to plan for.</summary>
/// <param name="Context">Tokens of context per sequence (prompt + generated).</param>
/// <param name="Batch">Sequences decoded together.</param>
/// <param name="GpuMemoryBytes">The GPU's memory.</param>
/// <param name="PrefillChunk">Tokens per forward pass when reading the prompt (the runner's chunk).</param>
/// <param name="KvCacheType">Element type of the KV cache: bf16 (as the GPU backends run it) or f32 (the exact path).</param>
/// <param name="RuntimeOverheadBytes">
/// The runtime allowance; null: <see cref="GpuRuntimeAllowanceBytes"/> (CUDA context, cuBLAS and kernel images: an
/// assumption, not measured), or on the CPU <see cref="CpuProcessAllowanceBytes"/>.
/// </param>
/// <param name="PageSize">Positions per KV page (null: <see cref="KvCacheLayout.DefaultPageSize"/>).</param>
/// <param name="Fp8Activations">The runner loads the model with FP8 (W8A8) prefill: its workspace holds the FP8 inputs and scales.</param>
/// <param name="OnCpu">
/// Plan for the runner on the CPU (`dsk plan --device cpu`): the CPU backends take no attention workspace from the cache
/// (their scratch is per thread), and the runtime allowance is the process's own, not a CUDA context's; <see cref="GpuMemoryBytes"/> is then the host memory planned against.
/// </param>
public sealed record PlanRequest(
    int Context,
    int Batch,
    long GpuMemoryBytes,
    int PrefillChunk = 256,
    ElementType KvCacheType = ElementType.BF16,
    long? RuntimeOverheadBytes = null,
    int? PageSize = null,
    bool Fp8Activations = false,
    bool OnCpu = false)
{
    /// <summary>The allowance for the dsk process itself on the CPU: it took 62-79 MB resident on the tiny fixtures and the embedded model (2026-12-02), with room for the GC's headroom and the thread pool.</summary>
    public const long CpuProcessAllowanceBytes = 256L << 20;

    /// <summary>The allowance for a GPU's CUDA context, kernel images and cuBLASLt (with its 32 MiB workspace): assumed, not measured.</summary>
    public const long GpuRuntimeAllowanceBytes = 1L << 30;

    /// <summary>The runtime allowance planned: <see cref="RuntimeOverheadBytes"/> when given, else the target's.</summary>
    public long RuntimeAllowanceBytes => RuntimeOverheadBytes ?? (OnCpu ? CpuProcessAllowanceBytes : GpuRuntimeAllowanceBytes);

    /// <summary>Tokens of the runner's workspace: the prefill chunk, or the context when it is shorter (what ModelLoader.Load allocates).</summary>
    public int WorkspaceTokens => Math.Min(PrefillChunk, Context);

    /// <summary>
    /// The KV page pool the runner allocates for this request (<see cref="Models.CausalLanguageModel.CacheLayout"/>):
    /// Batch sequences of Context positions in whole pages, and its step metadata.
    /// </summary>
    public KvCacheLayout KvLayout(ModelShape shape) =>
        KvCacheLayout.For(shape, Context, Batch, PageSize ?? KvCacheLayout.DefaultPageSize(shape), KvCacheType,
            Math.Min(Batch, WorkspaceTokens), attentionWorkspace: !OnCpu);
}

/// <summary>One line of a plan: what, how it is computed, how many bytes.</summary>
public sealed record PlanLine(string Item, string Formula, long Bytes);

/// <summary>
/// Memory a model needs on one GPU (with <see cref="PlanRequest.OnCpu"/>, in host memory for the CPU runner): weights (the linear weights as the runner stores them under
/// <see cref="Quantization"/>) + KV cache + activations + RoPE tables + runtime overhead, each line with its formula,
/// against the GPU's memory.
/// </summary>
/// <remarks>
/// The weight lines count the linear weights (<see cref="WeightGroup.Quantizable"/>) as the loader stores a bf16 checkpoint's
/// under <c>--quant</c>: <see cref="WeightQuantization.None"/> 2 B each; FP8 1 B each plus a float32 scale per 128x128
/// block, ragged edge blocks counted; INT4 half a byte each plus a bf16 scale and a bf16 zero point per group of 128
/// in features, and a matrix whose in features are not a multiple of 128 kept dense at 2 B, as the loader keeps it.
/// lm_head is a linear weight unless tied to the embeddings. Everything else (embeddings, norms, biases, the router, and
/// MLA's kv_b_proj, which the loader keeps per head in bf16 for bf16 and FP8 checkpoints) is counted at 2 B in every plan. A checkpoint
/// that is FP8 already (DeepSeek-V3's) keeps its FP8 weights whatever --quant says: the FP8 plan is the one to read. A GPTQ/AWQ
/// checkpoint keeps its INT4 layers: the INT4 plan is the one to read, counted in the checkpoint's group size
/// (<see cref="Models.ModelShape.Int4Checkpoint"/>).
/// </remarks>
public sealed record MemoryPlan(WeightQuantization Quantization, PlanRequest Request, IReadOnlyList<PlanLine> Lines)
{
    /// <summary>The sum of the lines.</summary>
    /// <exception cref="OverflowException">The sum is 2^63 bytes or more (<see cref="Compute"/> checks it).</exception>
    public long Total => SizeMath.Sum(Invariant($"the plan's total (the sum of its {Lines.Count} lines)"), "bytes", Lines.Select(l => l.Bytes));
    public bool Fits => Total <= Request.GpuMemoryBytes;

    /// <summary>The sum of the weight lines (linear weights, their scales, weights kept dense).</summary>
    public long WeightBytes { get; init; }

    /// <summary>KV cache bytes per token of one sequence.</summary>
    public long KvBytesPerToken { get; init; }

    /// <summary>RoPE table bytes per position of context (cos and sin: rotary dim x 4 B).</summary>
    public long RopeBytesPerPosition { get; init; }

    /// <summary>The model's max_position_embeddings, the most context it can be run with.</summary>
    public int ModelMaxPositions { get; init; }

    internal ParameterInventory? Inventory { get; init; }

    /// <summary>
    /// The longest context (per sequence, at this batch, everything else as planned) whose plan fits in the GPU
    /// memory, capped at the model's max_position_embeddings; 0 if not even one token fits. The KV cache (in whole
    /// pages), the RoPE tables and, below the prefill chunk, the workspace grow with the context: found by bisection
    /// over the plans themselves, so the plan at MaxContext fits and the one past it does not.
    /// </summary>
    public long MaxContext
    {
        get
        {
            bool Fits(int context)
            {
                try
                {
                    return Compute(Inventory!, Quantization, Request with { Context = context }).Fits;
                }
                catch (OverflowException)
                {
                    return false;
                }
            }
            if (!Fits(1))
                return 0;
            int low = 1, high = ModelMaxPositions; // Fits(low) holds
            if (Fits(high))
                return high;
            while (high - low > 1)
            {
                int mid = low + (high - low) / 2;
                if (Fits(mid)) low = mid; else high = mid;
            }
            return low;
        }
    }

    /// <summary>The plan of <paramref name="inventory"/> with its linear weights stored as <paramref name="quantization"/> for <paramref name="request"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Context, batch or prefill chunk is below 1, or <paramref name="quantization"/> is not a defined value.</exception>
    /// <exception cref="OverflowException">
    /// A line or the total is 2^63 bytes or more (an impossible batch or context, or an absurd config); the message
    /// names the quantity and its factors, e.g. "the KV cache (68.6 KiB per token x 163,840 tokens x
    /// 1,602,202,737 sequences) is 2^63 bytes or more".
    /// </exception>
    public static MemoryPlan Compute(ParameterInventory inventory, WeightQuantization quantization, PlanRequest request)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(request.Context, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(request.Batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(request.PrefillChunk, 1);
        if (!Enum.IsDefined(quantization))
            throw new ArgumentOutOfRangeException(nameof(quantization), quantization, "quantization must be None, Int4 or Fp8.");
        var s = inventory.Shape;
        var lines = new List<PlanLine>();

        // The linear weights the scheme stores quantised, and those it cannot (INT4: in features not a multiple of 128).
        var linear = inventory.Groups.Where(g => g.Quantizable).ToList();
        // INT4 in a GPTQ/AWQ checkpoint's own groups (the runner keeps its layers as stored), else in the loader's groups of 128
        var int4Scheme = s.Int4Checkpoint;
        long GroupOf(long cols) => int4Scheme?.GroupOf((int)Math.Min(cols, int.MaxValue)) ?? WeightQuantizations.GroupSize;
        bool Stores(WeightGroup g) => quantization != WeightQuantization.Int4
            ? quantization.Fits(g.Cols)
            : GroupOf(g.Cols) % 32 == 0 && g.Cols % GroupOf(g.Cols) == 0;
        string groupText = int4Scheme is null ? "128" : int4Scheme.GroupSize == -1 ? "a row" : int4Scheme.GroupSize.ToString(CultureInfo.InvariantCulture);
        var quantized = quantization == WeightQuantization.None ? [] : linear.Where(Stores).ToList();
        long linearParameters = SizeMath.Sum("the number of parameters of the linear weights", "", linear.Select(g => g.Parameters));
        long quantizedParameters = SizeMath.Sum($"the number of parameters stored in {quantization.Name()}", "", quantized.Select(g => g.Parameters));
        long denseLinear = linearParameters - quantizedParameters;
        long kept = SizeMath.Sum("the number of parameters kept in bf16", "", inventory.Groups.Where(g => !g.Quantizable).Select(g => g.Parameters));
        switch (quantization)
        {
            case WeightQuantization.None:
                lines.Add(new("linear weights", $"{linearParameters:N0} x 2 B", SizeMath.Product("the size of the bf16 linear weights", "bytes", linearParameters, 2)));
                lines.Add(new("weight scales", "none in bf16", 0));
                break;
            case WeightQuantization.Fp8:
                lines.Add(new("linear weights", $"{quantizedParameters:N0} x 1 B", quantizedParameters));
                long blocks = SizeMath.Sum("the number of fp8 scale blocks", "", quantized
                    .Select(g => SizeMath.Product($"the number of fp8 scale blocks of {g.Name}", "", g.Count, Ceil(g.Rows, 128), Ceil(g.Cols, 128))));
                lines.Add(new("weight scales", $"fp8: {blocks:N0} blocks of 128x128 x 4 B", SizeMath.Product("the size of the fp8 weight scales", "bytes", blocks, 4)));
                break;
            case WeightQuantization.Int4:
                // in features a multiple of the group (of 32), so every row packs into whole bytes
                lines.Add(new("linear weights", $"{quantizedParameters:N0} x 0.5 B", quantizedParameters / 2));
                long groups = SizeMath.Sum("the number of int4 scale groups", "", quantized
                    .Select(g => SizeMath.Product($"the number of int4 scale groups of {g.Name}", "", g.Count, g.Rows, g.Cols / GroupOf(g.Cols))));
                lines.Add(new("weight scales", $"int4: {groups:N0} groups of {groupText} x (2 B scale + 2 B zero point)",
                    SizeMath.Product("the size of the int4 weight scales and zero points", "bytes", groups, 4)));
                if (denseLinear > 0)
                    lines.Add(new("linear weights kept dense", $"in features not a multiple of {(int4Scheme?.GroupSize == -1 ? "32" : groupText)} ({string.Join(", ", linear.Except(quantized).Select(g => g.Name))}): {denseLinear:N0} x 2 B",
                        SizeMath.Product("the size of the linear weights kept dense", "bytes", denseLinear, 2)));
                break;
        }
        string keptNames = "embeddings, norms, router" + (s.IsMla ? ", kv_b_proj" : "");
        lines.Add(new($"{keptNames} (bf16)", $"{kept:N0} x 2 B", SizeMath.Product($"the size of the bf16 {keptNames}", "bytes", kept, 2)));
        long weightBytes = SizeMath.Sum("the size of the weights", "bytes", lines.Select(l => l.Bytes));

        long kvPerToken = SizeMath.Product("the KV cache per token", "bytes", s.Layers,
            (long)KvCacheLayout.Widths(s).KeyWidth + KvCacheLayout.Widths(s).ValueWidth, request.KvCacheType.Size());
        KvCacheBytes(kvPerToken, request.Context, request.Batch); // refuse 2^63 bytes with the factors named
        var kv = request.KvLayout(s);
        string kvRow = s.IsMla
            ? $"{s.Layers} layers x ({s.KvLoraRank} latent + {s.QkRopeHeadDim} rope)"
            : $"{s.Layers} layers x 2 (k, v) x {s.KvHeads} kv heads x {s.HeadDim}";
        lines.Add(new("KV cache", $"{kvRow} x {kv.ElementType.Size()} B ({kv.ElementType.Name()}) x {request.Batch} x {kv.TableWidth:N0} pages of {kv.PageSize}, + page tables",
            kv.Bytes - kv.AttentionWorkspaceBytes));
        int vHeadDim = s.IsMla ? s.KvLoraRank : s.HeadDim;
        var (rows, splits, _) = PagedBatch.WorkspaceRows(kv.MaxBatch, s.Heads, vHeadDim, kv.TableWidth * kv.PageSize);
        string capped = rows < kv.MaxBatch ? $" (the {SizeMath.Bytes(PagedBatch.WorkspaceCapBytes)} cap; {kv.MaxBatch} decode rows take passes or fewer splits)" : "";
        lines.Add(request.OnCpu
            ? new("attention workspace", "none on the CPU: its backends keep their attention scratch per thread", kv.AttentionWorkspaceBytes)
            : new("attention workspace", $"GPU backends' split-K partials of {rows:N0} rows x {s.Heads} heads x {splits:N0} splits of " +
                $"{PagedBatch.WorkspaceSplitKeys} keys x ({vHeadDim} + 2) x 4 B{capped}, + {PagedBatch.WorkspaceFixedBytes(kv.MaxBatch):N0} B", kv.AttentionWorkspaceBytes));

        int forwardTokens = request.WorkspaceTokens;
        lines.Add(new("activations", $"fp32 workspace of one forward pass over {forwardTokens} tokens" +
            (request.Fp8Activations ? $", with the FP8 inputs of W8A8 ({forwardTokens} x {WorkspaceLayout.Fp8InputsPerToken(s):N0} x 1 B + their scales)" : ""),
            WorkspaceLayout.Bytes(s, forwardTokens, ElementType.F32, request.Fp8Activations)));
        // The runner loads the model for the context it runs (ModelLoader.Load's contextLength): tables of that many positions.
        int rotary = s.IsMla ? s.QkRopeHeadDim : s.HeadDim;
        long ropePerPosition = SizeMath.Product("the RoPE cos/sin tables per position", "bytes", rotary, 4);
        lines.Add(new("RoPE cos/sin tables", $"{request.Context:N0} positions (the context) x {rotary} x 4 B",
            SizeMath.Product("the size of the RoPE cos/sin tables", "bytes", request.Context, ropePerPosition)));
        lines.Add(request.OnCpu
            ? new("the dsk process", "allowance: the .NET runtime, code and GC headroom (62-79 MB resident measured on tiny models)", request.RuntimeAllowanceBytes)
            : new("CUDA context and libraries", "allowance (not measured): the context, kernel images, cuBLASLt and its 32 MiB workspace", request.RuntimeAllowanceBytes));
        var plan = new MemoryPlan(quantization, request, lines)
        {
            WeightBytes = weightBytes,
            KvBytesPerToken = kvPerToken,
            RopeBytesPerPosition = ropePerPosition,
            ModelMaxPositions = s.MaxPositions,
            Inventory = inventory,
        };
        _ = plan.Total; // refuse here a plan whose total does not count in 64 bits
        return plan;
    }

    /// <summary>KV cache bytes of <paramref name="batch"/> sequences of <paramref name="tokens"/>, checked.</summary>
    static long KvCacheBytes(long bytesPerToken, long tokens, long batch)
    {
        try
        {
            return checked(bytesPerToken * tokens * batch);
        }
        catch (OverflowException e)
        {
            throw SizeMath.TooLarge(Invariant($"the KV cache ({SizeMath.Bytes(bytesPerToken)} per token x {tokens:N0} tokens x {batch:N0} sequences)"), "bytes", e);
        }
    }

    static long Ceil(long a, long b) => a / b + (a % b == 0 ? 0 : 1);
}
