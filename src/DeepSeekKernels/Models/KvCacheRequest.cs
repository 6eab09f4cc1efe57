using DeepSeekKernels.Caching;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Models;

/// <summary>
/// The KV cache a caller will create right after loading (<see cref="CausalLanguageModel.CreatePagedCache"/> with
/// <see cref="CausalLanguageModel.CacheLayout"/>(context, <paramref name="Sequences"/>, ...), or
/// <see cref="CausalLanguageModel.CreateCache"/> for one sequence), for <see cref="ModelLoader.Load(string, Ops, int, long?, int?, Quantization.WeightQuantization, ElementType, bool, KvCacheRequest?)"/>
/// to count in its fit check: the context is the one the model is loaded for. A run whose cache would not fit beside the
/// weights is then refused before anything loads, not after minutes of loading.
/// </summary>
/// <param name="Sequences">Sequences the page pool holds at their full context at once.</param>
/// <param name="ElementType">f32 or bf16; null: the model's activation type.</param>
/// <param name="PageSize">Positions per page; null: <see cref="KvCacheLayout.DefaultPageSize"/>.</param>
public sealed record KvCacheRequest(int Sequences, ElementType? ElementType = null, int? PageSize = null);
