// moe_route.cu: mixture-of-experts routing (dsk_moe_route), per token t of logits [tokens, experts]:
//   scores = softmax(logits[t]) or sigmoid(logits[t]);  choice = scores + bias (or scores)
//   grouped methods: group score = max (GROUP_LIMITED_GREEDY) or the sum of the two largest (NOAUX_TC) of its choice values;
//     the top_k_groups best groups kept, every other expert's choice set to +0
//   expert_ids[t, :] = the top_k experts of largest choice, descending; expert_weights[t, k] = scores[id] (normalised by
//     their sum + 1e-20, times routed_scaling_factor)
// Every ranking (groups, experts) uses one total order: a beats b iff greater(a.v, b.v) || (!greater(b.v, a.v) &&
// a.idx < b.idx), greater(x, y) = isnan(x) ? !isnan(y) : x > y: NaN above every number, ties to the lower index (the
// reference's TopK). -inf and NaN are ordinary values: picked experts are masked by a bit, never overwritten.
//
// One kernel, one warp per token (kWarps per block, grid-stride over tokens). Lane l owns experts l, l + 32, ... and
// groups l, l + 32, ...; the token's scores and choice values (and group scores, picked ids) live in the warp's slice of
// dynamic shared memory, the picked masks in registers (one bit per owned expert / group: experts <= 1024 = 32 x 32).
// Each pick is a lane-local scan of its owned values followed by a 5-step butterfly of (value, index) pairs.
// Cost at DeepSeek-V3's shape (256 experts, 8 groups of 32, keep 4, top 8): 8 logits and 8 expf per lane, a 32-member
// top-2 scan on lanes 0..7, 4 + 8 butterflies; 1 KiB read and 64 B written per token.
#include <cmath>

#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_moe_route";
constexpr int kMaxExperts = 1024;
constexpr int kMaxWarps = 4;
constexpr unsigned kNoIndex = 0xffffffffu;

struct RouteArgs {
    const void* logits;  // [tokens, experts]
    const float* bias;   // [experts] or NULL
    int32_t* ids;        // [tokens, top_k]
    float* weights;      // [tokens, top_k]
    int64_t tokens;
    int32_t experts, top_k, groups, top_k_groups;  // groups = 1 (GREEDY)
    int32_t method;
    int32_t normalize;
    int32_t warp_floats;  // shared floats per warp: 2 * experts + groups + top_k
    float scaling;
};

// NaN counts as larger than any number.
__device__ __forceinline__ bool greater(float x, float y) { return isnan(x) ? !isnan(y) : x > y; }

// (v, i) beats (bv, bi): larger value, ties to the lower index. The sentinel (-inf, kNoIndex) loses to every real pair.
__device__ __forceinline__ bool beats(float v, unsigned i, float bv, unsigned bi) {
    return greater(v, bv) || (!greater(bv, v) && i < bi);
}

// The warp's best (value, index) pair; every lane gets it (a total order, so the butterfly agrees in every lane).
__device__ __forceinline__ void warp_best(float& v, unsigned& i) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, off);
        const unsigned oi = __shfl_xor_sync(0xffffffffu, i, off);
        if (beats(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

// The best of values[lane + 32 j] (j < n / 32 rounded up, below n) whose bit j of `picked` is clear, over the warp;
// sets the winner's bit in its owner lane and returns its index.
__device__ __forceinline__ unsigned pick_best(const float* values, int n, unsigned& picked, unsigned lane) {
    float bv = -INFINITY;
    unsigned bi = kNoIndex;
    int j = 0;
    for (unsigned e = lane; e < (unsigned)n; e += 32, ++j) {
        const float v = values[e];
        // The lane's indices rise with j, so a tie keeps the earlier one: only a strictly greater value replaces it.
        if (!((picked >> j) & 1u) && (bi == kNoIndex || greater(v, bv))) {
            bv = v;
            bi = e;
        }
    }
    warp_best(bv, bi);
    if ((bi & 31u) == lane) picked |= 1u << (bi >> 5);
    return bi;
}

template <typename T, int METHOD, int SCORING>
__global__ void __launch_bounds__(kMaxWarps * 32) moe_route_kernel(const RouteArgs a) {
    extern __shared__ __align__(16) float smem[];
    const unsigned lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int E = a.experts;
    float* scores = smem + warp * a.warp_floats;  // [E]
    float* choice = scores + E;                   // [E]
    float* group_scores = choice + E;             // [groups]: scores, then 1 = kept / 0
    int32_t* picked_ids = reinterpret_cast<int32_t*>(group_scores + a.groups);  // [top_k]
    for (int64_t t = (int64_t)blockIdx.x * warps + warp; t < a.tokens; t += (int64_t)gridDim.x * warps) {
        const T* row = static_cast<const T*>(a.logits) + t * E;
        // Scores. Softmax: warp max (fmaxf skips NaN, but a NaN logit makes the sum and so every score NaN, as the
        // reference's NaN maximum does), exp(x - max), warp sum in butterfly order, one division each.
        if constexpr (SCORING == DSK_MOE_SCORING_SOFTMAX) {
            float mx = -INFINITY;
            for (int e = lane; e < E; e += 32) mx = fmaxf(mx, to_float(load_ro(row + e)));
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float sum = 0.0f;
            for (int e = lane; e < E; e += 32) {
                const float x = expf(to_float(load_ro(row + e)) - mx);
                scores[e] = x;
                sum += x;
            }
            sum = warp_sum(sum);
            for (int e = lane; e < E; e += 32) scores[e] = scores[e] / sum;
        } else {
            for (int e = lane; e < E; e += 32) scores[e] = 1.0f / (1.0f + expf(-to_float(load_ro(row + e))));
        }
        for (int e = lane; e < E; e += 32) choice[e] = a.bias != nullptr ? scores[e] + __ldg(a.bias + e) : scores[e];
        __syncwarp();
        if constexpr (METHOD != DSK_MOE_METHOD_GREEDY) {
            const int per_group = E / a.groups;
            for (int g = lane; g < a.groups; g += 32) {
                const float* m = choice + g * per_group;
                float b1 = m[0];
                if constexpr (METHOD == DSK_MOE_METHOD_GROUP_LIMITED_GREEDY) {
                    for (int i = 1; i < per_group; ++i) b1 = greater(m[i], b1) ? m[i] : b1;
                    group_scores[g] = b1;
                } else {
                    // The two largest as a multiset (an equal value counts twice); per_group >= 2.
                    float b2 = m[1];
                    if (greater(b2, b1)) {
                        const float s = b1;
                        b1 = b2;
                        b2 = s;
                    }
                    for (int i = 2; i < per_group; ++i) {
                        const float v = m[i];
                        if (greater(v, b1)) {
                            b2 = b1;
                            b1 = v;
                        } else if (greater(v, b2)) {
                            b2 = v;
                        }
                    }
                    group_scores[g] = b1 + b2;
                }
            }
            __syncwarp();
            unsigned kept = 0;
            for (int r = 0; r < a.top_k_groups; ++r) pick_best(group_scores, a.groups, kept, lane);
            __syncwarp();  // every lane has read the group scores
            int j = 0;
            for (int g = lane; g < a.groups; g += 32, ++j) group_scores[g] = ((kept >> j) & 1u) ? 1.0f : 0.0f;
            __syncwarp();
            for (int e = lane; e < E; e += 32) {
                if (group_scores[e / per_group] == 0.0f) choice[e] = 0.0f;  // masked_fill(~mask, 0.0)
            }
            __syncwarp();
        }
        unsigned picked = 0;
        for (int k = 0; k < a.top_k; ++k) {
            const unsigned id = pick_best(choice, E, picked, lane);
            if (lane == 0) picked_ids[k] = (int32_t)id;
        }
        __syncwarp();
        // Weights: the unbiased scores; the sum in k order (lane 0), one division and one multiplication each.
        float denominator = 0.0f;
        if (a.normalize) {
            if (lane == 0) {
                float sum = 0.0f;
                for (int k = 0; k < a.top_k; ++k) sum += scores[picked_ids[k]];
                denominator = sum + 1e-20f;
            }
            denominator = __shfl_sync(0xffffffffu, denominator, 0);
        }
        for (int k = lane; k < a.top_k; k += 32) {
            const int32_t id = picked_ids[k];
            float w = scores[id];
            if (a.normalize) w = w / denominator;
            a.ids[t * a.top_k + k] = id;
            a.weights[t * a.top_k + k] = w * a.scaling;
        }
        __syncwarp();  // the next token reuses the warp's shared slice
    }
}

template <typename T, int METHOD>
void launch_scoring(const RouteArgs& a, int scoring, unsigned grid, int threads, size_t smem, cudaStream_t st) {
    if (scoring == DSK_MOE_SCORING_SOFTMAX) {
        moe_route_kernel<T, METHOD, DSK_MOE_SCORING_SOFTMAX><<<grid, threads, smem, st>>>(a);
    } else {
        moe_route_kernel<T, METHOD, DSK_MOE_SCORING_SIGMOID><<<grid, threads, smem, st>>>(a);
    }
}

template <typename T>
void launch(const RouteArgs& a, int scoring, unsigned grid, int threads, size_t smem, cudaStream_t st) {
    switch (a.method) {
        case DSK_MOE_METHOD_GREEDY: launch_scoring<T, DSK_MOE_METHOD_GREEDY>(a, scoring, grid, threads, smem, st); break;
        case DSK_MOE_METHOD_GROUP_LIMITED_GREEDY:
            launch_scoring<T, DSK_MOE_METHOD_GROUP_LIMITED_GREEDY>(a, scoring, grid, threads, smem, st);
            break;
        default: launch_scoring<T, DSK_MOE_METHOD_NOAUX_TC>(a, scoring, grid, threads, smem, st); break;
    }
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_moe_route(const dsk_moe_route_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the experts limit and dtypes last (UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->logits, "logits");
    DSK_CHECK_NOT_NULL(kOp, p->expert_ids, "expert_ids");
    DSK_CHECK_NOT_NULL(kOp, p->expert_weights, "expert_weights");
    DSK_CHECK_MIN(kOp, p->tokens, 1, "tokens");
    DSK_CHECK_MIN(kOp, p->experts, 1, "experts");
    DSK_CHECK_ARG(kOp, p->top_k >= 1 && p->top_k <= p->experts, "top_k must be in [1, experts = %d] (got %d)",
                  (int)p->experts, (int)p->top_k);
    DSK_CHECK_ARG(kOp, p->scoring == DSK_MOE_SCORING_SOFTMAX || p->scoring == DSK_MOE_SCORING_SIGMOID,
                  "scoring must be SOFTMAX (0) or SIGMOID (1) (got %d)", (int)p->scoring);
    DSK_CHECK_ARG(kOp,
                  p->method == DSK_MOE_METHOD_GREEDY || p->method == DSK_MOE_METHOD_GROUP_LIMITED_GREEDY ||
                      p->method == DSK_MOE_METHOD_NOAUX_TC,
                  "method must be GREEDY (0), GROUP_LIMITED_GREEDY (1) or NOAUX_TC (2) (got %d)", (int)p->method);
    const bool grouped = p->method != DSK_MOE_METHOD_GREEDY;
    if (grouped) {
        DSK_CHECK_MIN(kOp, p->groups, 1, "groups");
        DSK_CHECK_ARG(kOp, p->experts % p->groups == 0, "experts (%d) must be a multiple of groups (%d)", (int)p->experts,
                      (int)p->groups);
        DSK_CHECK_ARG(kOp, p->top_k_groups >= 1 && p->top_k_groups <= p->groups,
                      "top_k_groups must be in [1, groups = %d] (got %d)", (int)p->groups, (int)p->top_k_groups);
        DSK_CHECK_ARG(kOp, p->method != DSK_MOE_METHOD_NOAUX_TC || p->experts / p->groups >= 2,
                      "NOAUX_TC scores a group by its two best experts: experts / groups must be >= 2 (got %d / %d)",
                      (int)p->experts, (int)p->groups);
        const int64_t kept_experts = (int64_t)p->top_k_groups * (p->experts / p->groups);
        DSK_CHECK_ARG(kOp, p->top_k <= kept_experts,
                      "top_k (%d) must be <= the experts of the kept groups, top_k_groups * experts / groups = %d * %d / %d = %lld",
                      (int)p->top_k, (int)p->top_k_groups, (int)p->experts, (int)p->groups, (long long)kept_experts);
    }
    DSK_CHECK_ARG(kOp, p->normalize == 0 || p->normalize == 1, "normalize must be 0 or 1 (got %d)", (int)p->normalize);
    DSK_CHECK_ARG(kOp, std::isfinite(p->routed_scaling_factor), "routed_scaling_factor must be finite (got %g)",
                  (double)p->routed_scaling_factor);
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);

    const int64_t outputs = p->tokens * p->top_k;
    const int64_t l_esz = p->logits_dtype == DSK_DTYPE_F32 ? 4 : 2;  // an unsupported dtype is reported below
    const ByteRange ids = bytes_of(p->expert_ids, outputs * 4);
    const ByteRange weights = bytes_of(p->expert_weights, outputs * 4);
    const ByteRange logits = bytes_of(p->logits, p->tokens * p->experts * l_esz);
    const ByteRange bias = bytes_of(p->bias, p->bias != nullptr ? p->experts * 4 : 0);
    DSK_CHECK_ARG(kOp, !overlaps(ids, logits), "expert_ids must not overlap logits");
    DSK_CHECK_ARG(kOp, !overlaps(ids, bias), "expert_ids must not overlap bias");
    DSK_CHECK_ARG(kOp, !overlaps(weights, logits), "expert_weights must not overlap logits");
    DSK_CHECK_ARG(kOp, !overlaps(weights, bias), "expert_weights must not overlap bias");
    DSK_CHECK_ARG(kOp, !overlaps(ids, weights), "expert_ids must not overlap expert_weights");

    if (p->experts > kMaxExperts) {
        DSK_UNSUPPORTED(kOp, "experts %d is not supported (at most %d in this build)", (int)p->experts, kMaxExperts);
    }
    if (p->logits_dtype != DSK_DTYPE_F32 && p->logits_dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(kOp, "logits_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->logits_dtype),
                        (int)p->logits_dtype);
    }

    RouteArgs a{};
    a.logits = p->logits;
    a.bias = p->bias;
    a.ids = p->expert_ids;
    a.weights = p->expert_weights;
    a.tokens = p->tokens;
    a.experts = p->experts;
    a.top_k = p->top_k;
    a.groups = grouped ? p->groups : 1;
    a.top_k_groups = grouped ? p->top_k_groups : 1;
    a.method = p->method;
    a.normalize = p->normalize;
    a.scaling = p->routed_scaling_factor;
    // A warp's shared slice: scores and choice [experts], group scores [groups], picked ids [top_k], 16-byte aligned;
    // at most 4 * 4 * 1024 bytes, so four warps fit the default 48 KiB.
    a.warp_floats = (2 * a.experts + a.groups + a.top_k + 3) / 4 * 4;
    const int64_t warps = p->tokens < kMaxWarps ? p->tokens : kMaxWarps;
    const int64_t blocks = (p->tokens + warps - 1) / warps;
    const unsigned grid = (unsigned)(blocks < 65535 * 16 ? blocks : 65535 * 16);  // the kernel loops over the rest
    const size_t smem = (size_t)warps * a.warp_floats * sizeof(float);
    const cudaStream_t st = static_cast<cudaStream_t>(p->stream);
    if (p->logits_dtype == DSK_DTYPE_F32) {
        launch<float>(a, p->scoring, grid, (int)warps * 32, smem, st);
    } else {
        launch<__nv_bfloat16>(a, p->scoring, grid, (int)warps * 32, smem, st);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}
