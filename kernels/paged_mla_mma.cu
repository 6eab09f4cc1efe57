// paged_mla_mma.cu: dsk_paged_mla_attention's tensor-core family: DeepSeek MLA decode / prefill over a paged bf16
// latent cache on mma.sync m16n8k16 bf16 tensor cores with fp32 accumulation (sm_80+), FlashMLA's shape.
//
// Math (deepseek_kernels.h): one latent "kv head"; key row K(b, j) = 576 bf16 (512 latent + 64 rope), value row
// V(b, j) = its first 512 elements. For query i of sequence b (position p = L - n + i) and head h:
//   out[row, h, :] = sum_{j <= p} softmax_j(scale * q[row, h, :] . K(b, j)) V(b, j)
// q is rounded to bf16 when staged, P (the softmax weights) to bf16 before P V; the softmax is fp32 in the exp2
// domain (scale * log2(e) folded into one multiply); out is rounded once to out_dtype.
//
// Count: 2 * heads * L * (576 + 512) FLOPs per decode token over L * 1152 cache bytes: ~2 * heads FLOP per byte, so at
// 128 heads the kernel is compute-bound (goal: a share of the bf16 GEMM rate), at 16 heads memory-bound (a share of
// copy bandwidth).
//
// Work: all query heads share the cache rows, so a block tile is 64 (query, head) rows of ONE sequence (rows
// R = i * heads + h are contiguous in q and out: 64 heads of a decode token, or 16 heads x 4 queries) against 64-key
// tiles of that sequence. A plan kernel turns the device metadata into tile_start[b] (exclusive prefix of
// ceil(n_b * heads / 64) over the sequences; a bad sequence, one whose lengths or used table entries are out of range,
// gets no tiles); block x finds its sequence by binary search. grid.y splits the context (FlashDecoding): split s takes
// key tiles [s * c, (s + 1) * c) with c = ceil(ceil(L / 64) / splits); the host sizes `splits` from the SM count and the
// bound max_pages * page_size so that batch 1 at 128 heads still fills the GPU; with one split the kernel writes out
// directly, otherwise normalised partial O (fp32) and log2-sum-exp go to the workspace and a combine kernel merges them,
// rounding once.
//
// Block (256 threads, 8 warps, one block per SM): shared memory holds the block's Q tile (64 x 576 bf16 = 72 KiB,
// loaded once) and the key tile (64 x 576 = 72 KiB, gathered row by row through the block table with cp.async,
// zero-filled past L), double-buffered where the device allows it (sm_90: 227 KiB per block -> 2 stages, 226 KiB;
// sm_80: 163 KiB -> 1 stage); every tile is stored as 64-column sub-tiles of 128-byte swizzled rows (mma_common.cuh),
// so cp.async writes and ldmatrix reads are free of bank conflicts. Per key tile:
//   S = Q K^T: warp (sr = warp % 4, kh = warp / 4) computes rows 16 sr.. x keys 32 kh.. over K = 576 (144 mma); the
//     causal / length mask; the row max of the 64 keys meets through shared memory (one float per row and half).
//   P = exp2(S - m) rounded to bf16 into a shared 64 x 64 tile, the per-row rescale factor alpha beside it; each warp
//     keeps its own partial row sums (merged at the end).
//   O += P V: warp (pr = warp / 4, pc = warp % 4) owns O rows 32 pr.. x columns 128 pc.. (2 x 16 mma tiles, 128 fp32
//     accumulators per thread), rescales them by alpha, and reads V from the same key tile with ldmatrix.trans (128
//     mma); 32-row warp tiles halve the shared-memory reads of V per mma compared to 16-row ones.
// Three barriers per tile (tile landed, row max, P ready); the next tile's cp.async runs under the current tile's math.
// Warps whose rows are all past the tile's live rows (16 heads x 1 decode token fills 16 of 64) skip their mma.
//
// Accepts bf16 pages, v_head_dim 512, head_dim a multiple of 64 in [512, 576 or whatever fits shared memory], q and out
// F32 or BF16, 16-byte aligned q / pages / out, sm_80+; declines the rest with a reason (AUTO then runs the CUDA-core
// family). On a cc 9.0 GPU of a library built for sm_90a, path MMA (and AUTO) launch the Hopper variant instead
// (paged_mla_wgmma.cu: the same plan, tiles, splits and combine, both products on wgmma); path MMA_SYNC keeps this one.
// Not done: TMA and FlashMLA's overlap of one tile's S with the previous tile's P V, a 16-row tile for few heads (at 16
// heads a decode tile still loads and waits for 64-row phases), load balancing of splits by the actual lengths.
#include <climits>
#include <cmath>

#include "paged_mla.cuh"

namespace dsk {

namespace {

using namespace mla;

constexpr int kPlanThreads = 256;
constexpr int kMaxSplits = 64;      // context splits per sequence at most
constexpr int kMinSplitTiles = 1;   // key tiles per split at least (batch 1 x 128 heads x 4096 keys: 64 splits, 128 blocks)
constexpr int kStatFloats = 7 * kRows;  // row max of each key half [2][64], alpha [64], row sums [2][64], final max [64]

__host__ __device__ constexpr int smem_bytes(int d, int stages) {
    return (1 + stages) * tile_bytes(d) + kSubBytes + kStatFloats * 4;
}

// tile_start[b] = exclusive prefix over the sequences of their row tiles (0 for a sequence with bad metadata or no
// queries), clamped to the bound (a tile past it is never run; only inconsistent metadata gets there).
__global__ void __launch_bounds__(kPlanThreads) mla_plan_kernel(const dsk_paged_attention_params p, int32_t* tile_start,
                                                                int64_t bound) {
    __shared__ long long scan[kPlanThreads];
    __shared__ long long carry;
    if (threadIdx.x == 0) {
        carry = 0;
        tile_start[0] = 0;
    }
    for (int64_t b0 = 0; b0 < p.batch; b0 += kPlanThreads) {
        const int64_t b = b0 + threadIdx.x;
        long long tiles = 0;
        if (b < p.batch) {
            const PagedSequence s = load_sequence(p, b);
            if (s.ok && s.n > 0) {
                const int64_t used = ((int64_t)s.L + p.page_size - 1) / p.page_size;
                bool good = true;
                for (int64_t j = 0; j < used && good; ++j) {
                    const int32_t page = __ldg(p.block_table + b * p.max_pages + j);
                    good = page >= 0 && (int64_t)page < p.pages;
                }
                if (good) tiles = ((long long)s.n * p.q_heads + kRows - 1) / kRows;
            }
        }
        scan[threadIdx.x] = tiles < bound ? tiles : bound;
        __syncthreads();
        for (int off = 1; off < kPlanThreads; off <<= 1) {  // inclusive scan (Hillis-Steele)
            const long long v = (int)threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
            __syncthreads();
            scan[threadIdx.x] += v;
            __syncthreads();
        }
        const long long end = carry + scan[threadIdx.x];
        if (b < p.batch) tile_start[b + 1] = (int32_t)(end < bound ? end : bound);
        __syncthreads();
        if (threadIdx.x == kPlanThreads - 1) carry = end < bound ? end : bound;
        __syncthreads();
    }
}

template <int kStages>
__global__ void __launch_bounds__(kThreads, 1) mla_mma_kernel(const dsk_paged_attention_params p, const MlaPlan plan) {
    extern __shared__ __align__(128) uint8_t smem[];
    PagedSequence seq;
    RowTile tile;
    if (!find_tile(p, plan.tile_start, blockIdx.x, &seq, &tile)) return;  // block-uniform

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, qd = lane & 3;
    const int sr = warp & 3, kh = warp >> 2;  // S: rows 16 sr .., keys 32 kh ..
    const int pr = warp >> 2, pc = warp & 3;  // P V: rows 32 pr .., columns 128 pc ..
    const int H = (int)p.q_heads, D = (int)p.head_dim;

    const uint32_t s_q = mma::smem_addr(smem);
    const uint32_t s_k0 = s_q + tile_bytes(D);
    const int p_off = (1 + kStages) * tile_bytes(D);
    const uint32_t s_p = s_q + p_off;
    float* const red_max = reinterpret_cast<float*>(smem + p_off + kSubBytes);  // [2][64]
    float* const s_alpha = red_max + 2 * kRows;                                // [64]
    float* const red_l = s_alpha + kRows;                                      // [2][64]
    float* const m_fin = red_l + 2 * kRows;                                    // [64]

    // Key tiles of this block: the split's share of the sequence, cut at the last key any row of the tile attends to.
    const KeyRange kr = key_range(seq, tile, H, plan.splits);
    const int32_t t_begin = kr.t_begin, n_tiles = kr.n_tiles;
    auto load_keys = [&](int32_t kt, int stage) { load_key_tile(p, seq, tile, kt, s_k0 + stage * tile_bytes(D), tid); };

    if (n_tiles > 0) {
        load_q_tile(p, tile, s_q, smem, tid);  // rounded to bf16; rows past the tile's live rows are zero
        load_keys(t_begin, 0);
    }
    mma::cp_async_commit();

    // Positions of this thread's two S rows (16 sr + g and + 8); rows past the live ones compute unused values.
    int32_t pos[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) pos[h] = seq.L - seq.n + (int32_t)((tile.r0 + sr * 16 + g + 8 * h) / H);

    float acc[2][16][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int n = 0; n < 16; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][n][e] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY};  // running row max (log2 units) of the two S rows
    float l_run[2] = {0.0f, 0.0f};            // this thread's share of their row sums

    for (int it = 0; it < n_tiles; ++it) {
        const int stage = kStages == 2 ? (it & 1) : 0;
        mma::cp_async_wait<0>();
        __syncthreads();  // tile it (and Q) landed for everyone; everyone is done with tile it - 1
        if (kStages == 2 && it + 1 < n_tiles) load_keys(t_begin + it + 1, stage ^ 1);
        mma::cp_async_commit();
        const uint32_t s_k = s_k0 + stage * tile_bytes(D);

        // S = Q K^T: 16 rows x 32 keys per warp.
        float s[4][4];
#pragma unroll
        for (int n = 0; n < 4; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
        const bool s_live = sr * 16 < tile.rows;  // warp-uniform: skip the mma of 16 dead rows (few heads, decode)
        for (int cb = 0; s_live && cb < D / 64; ++cb) {
            const uint32_t q_sub = s_q + cb * kSubBytes, k_sub = s_k + cb * kSubBytes;
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[4];
                mma::ldmatrix_x4(a, mma::a_frag_addr(q_sub, sr * 16, 2 * kk, lane));
#pragma unroll
                for (int nj = 0; nj < 2; ++nj) {
                    uint32_t t[4];
                    mma::ldmatrix_x4(t, mma::b_frag_addr(k_sub, kh * 32 + nj * 16, 2 * kk, lane));
                    mma::mma_bf16_16816(s[2 * nj], a, t[0], t[1]);
                    mma::mma_bf16_16816(s[2 * nj + 1], a, t[2], t[3]);
                }
            }
        }

        // Scale into the exp2 domain, mask (causal and past L), row max over this warp's 32 keys, then both halves.
        const int32_t key0 = (t_begin + it) * kKeys + kh * 32;
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < 4; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int32_t j = key0 + n * 8 + 2 * qd + (e & 1);
                const float v = j <= pos[e >> 1] && j < seq.L ? s[n][e] * plan.scale_log2 : -INFINITY;
                s[n][e] = v;
                mx[e >> 1] = fmaxf(mx[e >> 1], v);
            }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            if (qd == 0) red_max[kh * kRows + sr * 16 + g + 8 * h] = mx[h];
        }
        __syncthreads();  // both halves' maxima published

        // P = exp2(S - m_new) as bf16 into the shared P tile; alpha = exp2(m_old - m_new) for the O rows.
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = sr * 16 + g + 8 * h;
            const float m_new = fmaxf(m_run[h], fmaxf(mx[h], red_max[(kh ^ 1) * kRows + r]));
            const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row with no key yet: every weight is 0
            const float alpha = exp2f(m_run[h] - base);
            m_run[h] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < 4; ++n) {
                const float p0 = exp2f(s[n][2 * h] - base), p1 = exp2f(s[n][2 * h + 1] - base);
                sum += p0 + p1;
                const int key = kh * 32 + n * 8 + 2 * qd;
                *reinterpret_cast<uint32_t*>(smem + p_off + mma::swz(r, key >> 3) + (key & 7) * 2) = float_to_bf16x2(p0, p1);
            }
            l_run[h] = l_run[h] * alpha + sum;
            if (kh == 0 && qd == 0) s_alpha[r] = alpha;
        }
        __syncthreads();  // P and alpha ready

        // O = alpha O + P V: rows 32 pr .., columns 128 pc ..; V = the first 512 columns of the key tile.
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float alpha = s_alpha[pr * 32 + mi * 16 + g + 8 * h];
#pragma unroll
                for (int n = 0; n < 16; ++n) {
                    acc[mi][n][2 * h] *= alpha;
                    acc[mi][n][2 * h + 1] *= alpha;
                }
            }
        const int pv_tiles = pr * 32 >= tile.rows ? 0 : pr * 32 + 16 >= tile.rows ? 1 : 2;  // live m16 tiles (warp-uniform)
#pragma unroll 1
        for (int ks = 0; pv_tiles > 0 && ks < kKeys / 16; ++ks) {
            uint32_t pa[2][4];
            mma::ldmatrix_x4(pa[0], mma::a_frag_addr(s_p, pr * 32, 2 * ks, lane));
            if (pv_tiles > 1) mma::ldmatrix_x4(pa[1], mma::a_frag_addr(s_p, pr * 32 + 16, 2 * ks, lane));
            const int key = ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int nj = 0; nj < 8; ++nj) {
                const int c = (pc * 128 + nj * 16) / 8 + (lane >> 4);  // 16-byte chunk (8 columns) of this lane's row
                uint32_t t[4];
                mma::ldmatrix_x4_trans(t, s_k + tile_off(key, c));
                mma::mma_bf16_16816(acc[0][2 * nj], pa[0], t[0], t[1]);
                mma::mma_bf16_16816(acc[0][2 * nj + 1], pa[0], t[2], t[3]);
                if (pv_tiles > 1) {
                    mma::mma_bf16_16816(acc[1][2 * nj], pa[1], t[0], t[1]);
                    mma::mma_bf16_16816(acc[1][2 * nj + 1], pa[1], t[2], t[3]);
                }
            }
        }
        if (kStages == 1 && it + 1 < n_tiles) {
            __syncthreads();  // everyone is done with the key tile and P
            load_keys(t_begin + it + 1, 0);
            mma::cp_async_commit();
        }
    }
    mma::cp_async_wait<0>();

    // Row sums: the quad, then the two key halves; the final max of each row.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float l = l_run[h];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int r = sr * 16 + g + 8 * h;
        if (qd == 0) {
            red_l[kh * kRows + r] = l;
            if (kh == 0) m_fin[r] = m_run[h];
        }
    }
    __syncthreads();

    const int64_t rows_total = p.tokens * p.q_heads;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = pr * 32 + mi * 16 + g + 8 * h;
            if (r >= tile.rows) continue;
            const float l = red_l[r] + red_l[kRows + r];
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // l == 0: no key of this split reaches the row
            const int64_t grow = tile.grow0 + r;
            if (plan.splits == 1) {
#pragma unroll
                for (int n = 0; n < 16; ++n) {
                    const int64_t at = grow * kDV + pc * 128 + n * 8 + 2 * qd;
                    const float v0 = acc[mi][n][2 * h] * inv, v1 = acc[mi][n][2 * h + 1] * inv;
                    if (p.out_dtype == DSK_DTYPE_F32) {
                        *reinterpret_cast<float2*>(static_cast<float*>(p.out) + at) = make_float2(v0, v1);
                    } else {
                        *reinterpret_cast<uint32_t*>(static_cast<__nv_bfloat16*>(p.out) + at) = float_to_bf16x2(v0, v1);
                    }
                }
            } else {
                const int64_t wrow = (int64_t)blockIdx.y * rows_total + grow;
#pragma unroll
                for (int n = 0; n < 16; ++n) {
                    const int64_t at = wrow * kDV + pc * 128 + n * 8 + 2 * qd;
                    *reinterpret_cast<float2*>(plan.ws_o + at) = make_float2(acc[mi][n][2 * h] * inv, acc[mi][n][2 * h + 1] * inv);
                }
                if (pc == 0 && qd == 0) plan.ws_lse[wrow] = l > 0.0f ? m_fin[r] + log2f(l) : -INFINITY;
            }
        }
}

// Merges the splits of one row tile: out = sum_s w_s O_s with w_s = 2^(lse_s - M) / sum_s' 2^(lse_s' - M).
__global__ void __launch_bounds__(kThreads) mla_combine_kernel(const dsk_paged_attention_params p, const MlaPlan plan) {
    __shared__ float w[kRows][kMaxSplits];
    PagedSequence seq;
    RowTile tile;
    if (!find_tile(p, plan.tile_start, blockIdx.x, &seq, &tile)) return;
    const int tid = threadIdx.x, S = plan.splits;
    const int64_t rows_total = p.tokens * p.q_heads;

    // Weights: four threads per row.
    const int r = tid >> 2, sub = tid & 3;
    const bool live = r < tile.rows;
    float mx = -INFINITY;
    if (live)
        for (int s = sub; s < S; s += 4) mx = fmaxf(mx, plan.ws_lse[s * rows_total + tile.grow0 + r]);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    float sum = 0.0f;
    if (live)
        for (int s = sub; s < S; s += 4) {
            const float lse = plan.ws_lse[s * rows_total + tile.grow0 + r];
            const float e = lse == -INFINITY ? 0.0f : exp2f(lse - mx);
            w[r][s] = e;
            sum += e;
        }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (live)
        for (int s = sub; s < S; s += 4) w[r][s] = sum > 0.0f ? w[r][s] / sum : 0.0f;
    __syncthreads();

    // Outputs: 4 columns per step.
    for (int c = tid; c < tile.rows * (kDV / 4); c += kThreads) {
        const int rr = c / (kDV / 4), col = (c % (kDV / 4)) * 4;
        float o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int s = 0; s < S; ++s) {
            const float ws = w[rr][s];
            if (ws == 0.0f) continue;  // a split that reached no key of this row (its O is 0)
            float v[4];
            unpack16<float>(ld16(plan.ws_o + (s * rows_total + tile.grow0 + rr) * kDV + col), v);
#pragma unroll
            for (int e = 0; e < 4; ++e) o[e] += ws * v[e];
        }
        const int64_t at = (tile.grow0 + rr) * kDV + col;
        if (p.out_dtype == DSK_DTYPE_F32) {
            st16(static_cast<float*>(p.out) + at, pack16<float>(o));
        } else {
            uint2 v;
            v.x = float_to_bf16x2(o[0], o[1]);
            v.y = float_to_bf16x2(o[2], o[3]);
            *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(p.out) + at) = v;
        }
    }
}

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// Launch shape of a request on the current device (after paged_mla_mma_supports accepted it).
struct LaunchShape {
    int64_t tiles_bound;  // grid.x
    int splits;           // grid.y
    int stages;           // key-tile buffers (mma.sync)
    bool wg;              // the Hopper variant (paged_mla_wgmma.cu) instead of mma.sync
};

// An upper bound of sum_b ceil(n_b * heads / 64) for any valid metadata (sum_b n_b <= tokens): each term is at most
// n_b * ceil(heads / 64) and at most n_b * heads / 64 + 63/64.
int64_t tiles_bound(const dsk_paged_attention_params& p) {
    const int64_t a = p.tokens * ((p.q_heads + kRows - 1) / kRows);
    const int64_t b = p.tokens * p.q_heads / kRows + p.batch;
    return a < b ? a : b;
}

// Splits: the fewest that minimise waves / splits (one block per SM), at most kMaxSplits, max_splits and one per
// kMinSplitTiles key tiles of the longest possible sequence.
int choose_splits(const dsk_paged_attention_params& p, int sms, int64_t tiles) {
    const int64_t key_tiles = (p.max_pages * p.page_size + kKeys - 1) / kKeys;
    int64_t cap = (key_tiles + kMinSplitTiles - 1) / kMinSplitTiles;
    if (cap > kMaxSplits) cap = kMaxSplits;
    if (p.max_splits > 0 && cap > p.max_splits) cap = p.max_splits;
    if (cap < 1) cap = 1;
    int best = 1;
    double best_cost = (double)((tiles + sms - 1) / sms);
    for (int s = 2; s <= cap; ++s) {
        const double cost = (double)((tiles * s + sms - 1) / sms) / s;
        if (cost < best_cost * 0.999) {
            best = s;
            best_cost = cost;
        }
    }
    return best;
}

bool launch_shape(const dsk_paged_attention_params& p, LaunchShape* shape, const char** why) {
    const char* reason = nullptr;
    int device = 0, major = 0, optin = 0, sms = 0;
    if (p.page_dtype != DSK_DTYPE_BF16) {
        reason = "pages are not BF16";
    } else if (p.kv_heads != 1 || p.value_pages != nullptr) {
        reason = "not an MLA request (kv_heads 1, value_pages NULL)";
    } else if (p.v_head_dim != kDV) {
        reason = "v_head_dim is not 512";
    } else if (p.head_dim % 64 != 0 || p.head_dim < kDV) {
        reason = "head_dim is not a multiple of 64 of at least 512";
    } else if ((p.q_dtype != DSK_DTYPE_F32 && p.q_dtype != DSK_DTYPE_BF16) ||
               (p.out_dtype != DSK_DTYPE_F32 && p.out_dtype != DSK_DTYPE_BF16)) {
        reason = "q or out is neither F32 nor BF16";
    } else if (!is_aligned_16(p.q) || !is_aligned_16(p.key_pages) || !is_aligned_16(p.out)) {
        reason = "q, key_pages or out is not 16-byte aligned";
    } else if (tiles_bound(p) > INT_MAX) {
        reason = "too many rows (tokens * q_heads / 64 must be < 2^31)";
    } else if (cudaGetDevice(&device) != cudaSuccess ||
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
               cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
               cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
        (void)cudaGetLastError();
        reason = "no CUDA device";
    } else if (major < 8) {
        reason = "needs sm_80+";
    } else if (optin < smem_bytes((int)p.head_dim, 1)) {
        reason = "the device has too little shared memory per block for the Q and key tiles";
    }
    if (why != nullptr) *why = reason;
    if (reason != nullptr) return false;
    shape->tiles_bound = tiles_bound(p);
    shape->splits = choose_splits(p, sms > 0 ? sms : 1, shape->tiles_bound);
    shape->stages = optin >= smem_bytes((int)p.head_dim, 2) ? 2 : 1;
    shape->wg = p.path != DSK_ATTENTION_PATH_MMA_SYNC && wgmma_runs_here((int)p.head_dim);
    return true;
}

// Workspace: tile_start [batch + 1] int32, then (splits > 1) lse [splits, tokens * heads] and O [.., 512] fp32.
int64_t workspace_bytes(const dsk_paged_attention_params& p, int splits) {
    int64_t bytes = round16((p.batch + 1) * 4);
    if (splits > 1) bytes += round16(splits * p.tokens * p.q_heads * 4) + splits * p.tokens * p.q_heads * kDV * 4;
    return bytes;
}

template <int kStages> dsk_status launch_main(const char* op, const dsk_paged_attention_params& p, const MlaPlan& plan,
                                              cudaStream_t stream) {
    const int bytes = smem_bytes((int)p.head_dim, kStages);
    const cudaError_t err = cudaFuncSetAttribute(mla_mma_kernel<kStages>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) setting the MLA kernel's shared memory", cudaGetErrorName(err), cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    mla_mma_kernel<kStages><<<dim3((unsigned)plan.tiles_bound, (unsigned)plan.splits), kThreads, bytes, stream>>>(p, plan);
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

}  // namespace

bool paged_mla_mma_supports(const dsk_paged_attention_params& p, const char** why) {
    LaunchShape shape;
    return launch_shape(p, &shape, why);
}

int64_t paged_mla_mma_workspace_bytes(const dsk_paged_attention_params& p) {
    LaunchShape shape;
    if (!launch_shape(p, &shape, nullptr)) return 0;
    return workspace_bytes(p, shape.splits);
}

dsk_status paged_mla_mma(const char* op, const dsk_paged_attention_params& p, void* workspace) {
    LaunchShape shape;
    const char* why = nullptr;
    if (!launch_shape(p, &shape, &why)) DSK_UNSUPPORTED(op, "path MMA cannot run this request: %s", why);
    MlaPlan plan;
    char* ws = static_cast<char*>(workspace);
    plan.tile_start = reinterpret_cast<const int32_t*>(ws);
    plan.ws_lse = shape.splits > 1 ? reinterpret_cast<float*>(ws + round16((p.batch + 1) * 4)) : nullptr;
    plan.ws_o = shape.splits > 1 ? reinterpret_cast<float*>(ws + round16((p.batch + 1) * 4) +
                                                            round16(shape.splits * p.tokens * p.q_heads * 4))
                                 : nullptr;
    plan.tiles_bound = shape.tiles_bound;
    plan.splits = shape.splits;
    plan.scale_log2 = p.scale * 1.4426950408889634f;
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);

    mla_plan_kernel<<<1, kPlanThreads, 0, stream>>>(p, reinterpret_cast<int32_t*>(ws), shape.tiles_bound);
    DSK_CHECK_LAUNCH(op);
    const dsk_status st = shape.wg                ? wgmma_launch(op, p, plan, stream)
                          : shape.stages == 2 ? launch_main<2>(op, p, plan, stream)
                                              : launch_main<1>(op, p, plan, stream);
    if (st != DSK_SUCCESS) return st;
    if (shape.splits > 1) {
        mla_combine_kernel<<<(unsigned)shape.tiles_bound, kThreads, 0, stream>>>(p, plan);
        DSK_CHECK_LAUNCH(op);
    }
    return DSK_SUCCESS;
}

}  // namespace dsk
