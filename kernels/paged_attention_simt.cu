// paged_attention_simt.cu: the CUDA-core family of paged attention (paged_attention.cuh): every valid request, GQA and
// MLA, f32 or bf16 pages, q and out f32 or bf16, head_dim and v_head_dim up to 768. FlashDecoding:
//
//   attend  one block (4 warps) per (query tile, kv head x head chunk, context split). Its rows are the query heads of
//           the chunk (<= RM of them, the kv head's group or a part of it) times the tile's queries of one sequence;
//           the block streams the split's keys and values of its kv head once: each key row is read by a group of LPK
//           lanes (16-byte loads, 8 elements a lane), U keys per lane group in flight, K and V loads issued together.
//           Scores reduce over the LPK lanes by shuffles; the online softmax (fp32, base 2: q is pre-scaled by
//           scale * log2 e) keeps a running max and sum per row and lane group; at the end the lane groups and the
//           warps merge through shared memory.
//           One split: out is written directly (rounded once). Several: the normalised partial output and its
//           log-sum-exp go to the workspace, [split][token, q head][v_head_dim] f32 and [split][token, q head] f32.
//   combine one block per query row: merges the splits' partials by their log-sum-exps, rounds once to out_dtype.
//
// Splits (host): blocks without splitting = tiles * kv_heads * head chunks. Unless those already make four waves of the
// resident block slots (SMs x blocks an SM, from the occupancy API), the split count is the one that fills the slots in
// whole waves best (a small charge for the combine and for each split), each split at least 256 keys of the bound
// max_pages * page_size, at most p.max_splits: e.g. on 132 SMs x 3 blocks, 8 kv heads: batch 1 x 32768 -> 49 splits,
// 16 x 4096 -> 3, 64 x 2048 -> 3. Splits past a sequence's real length write an empty partial (lse -inf).
// Bandwidth (decode, 32 q / 8 kv heads x 128 bf16): per key and kv head the block reads 512 bytes and does 4 rows x 256
// FMAs plus 4 x 4 shuffles per 2 keys a warp; with 4 keys a lane group in flight (8 KB a warp, 4 warps a block,
// three blocks an SM: the kernel is bounded to 168 registers for that) the loads cover the memory latency.
//
// Query tiles: decode (tokens <= 2 x batch) one query per tile; otherwise RM / group queries a tile. A tile's first row
// is found in query_starts by binary search; a tile that spans several sequences handles them one after another.
// Sequences failing load_sequence, keys past L and block-table entries outside [0, pages) are never read (a bad entry's
// keys are treated as masked; the entry point's metadata check reports it).
#include <cfloat>

#include "paged_attention.cuh"

namespace dsk {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

struct SimtArgs {
    dsk_paged_attention_params p;
    const void* v_base;   // value rows: value_pages, or key_pages for MLA
    int64_t k_row;        // elements per key-page row (kv_heads * head_dim)
    int64_t v_row;        // elements per value-page row
    int64_t v_head_off;   // elements from a value row to kv head g's values: g * v_head_off
    float* ws_lse;        // [splits][tokens * q_heads]
    float* ws_o;          // [splits][tokens * q_heads][v_head_dim]
    int32_t group;        // q heads per kv head
    int32_t rm_heads;     // heads per head chunk
    int32_t chunks;       // head chunks per kv head
    int32_t qpb;          // queries per tile
    int32_t splits;
    int32_t split_keys;   // keys per split (a multiple of the block's keys per step)
    int32_t k_vec, v_vec; // 16-byte page loads allowed
    int32_t mla;          // values are the first v_head_dim elements of the key rows (reuses the key loads)
};

// 8 elements of T in raw form: one uint4 (bf16) or two (f32).
template <typename T> struct Chunk {
    uint4 v[sizeof(T) / 2];
};

// Elements [c0, c0 + 8) of a row of `len` elements; those past len are zero. vec: 16-byte aligned, c0 + 8 <= len.
template <typename T> __device__ __forceinline__ Chunk<T> load_chunk(const T* row, int c0, int len, bool vec) {
    Chunk<T> ch;
    if (vec && c0 + 8 <= len) {
#pragma unroll
        for (int i = 0; i < (int)(sizeof(T) / 2); ++i) ch.v[i] = ld16_ro(row + c0 + i * Vec16<T>::kN);
    } else {
        uint32_t w[2 * sizeof(T)];
        if constexpr (sizeof(T) == 4) {
#pragma unroll
            for (int e = 0; e < 8; ++e) w[e] = c0 + e < len ? __float_as_uint(__ldg(row + c0 + e)) : 0u;
        } else {
            const unsigned short* r = reinterpret_cast<const unsigned short*>(row);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const uint32_t lo = c0 + 2 * e < len ? __ldg(r + c0 + 2 * e) : 0u;
                const uint32_t hi = c0 + 2 * e + 1 < len ? __ldg(r + c0 + 2 * e + 1) : 0u;
                w[e] = lo | (hi << 16);
            }
        }
#pragma unroll
        for (int i = 0; i < (int)(sizeof(T) / 2); ++i) ch.v[i] = make_uint4(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]);
    }
    return ch;
}

template <typename T> __device__ __forceinline__ void unpack_chunk(const Chunk<T>& ch, float (&f)[8]) {
    if constexpr (sizeof(T) == 4) {
        f[0] = __uint_as_float(ch.v[0].x); f[1] = __uint_as_float(ch.v[0].y);
        f[2] = __uint_as_float(ch.v[0].z); f[3] = __uint_as_float(ch.v[0].w);
        f[4] = __uint_as_float(ch.v[1].x); f[5] = __uint_as_float(ch.v[1].y);
        f[6] = __uint_as_float(ch.v[1].z); f[7] = __uint_as_float(ch.v[1].w);
    } else {
        unpack16<__nv_bfloat16>(ch.v[0], f);
    }
}

__device__ __forceinline__ int imin(int x, int y) { return x < y ? x : y; }
__device__ __forceinline__ int64_t lmin(int64_t x, int64_t y) { return x < y ? x : y; }
__device__ __forceinline__ int64_t lmax(int64_t x, int64_t y) { return x > y ? x : y; }

__device__ __forceinline__ float load_elem(const void* base, int32_t dtype, int64_t i) {
    return dtype == DSK_DTYPE_F32 ? __ldg(static_cast<const float*>(base) + i)
                                  : to_float(load_ro(static_cast<const __nv_bfloat16*>(base) + i));
}
__device__ __forceinline__ void store_elem(void* base, int32_t dtype, int64_t i, float v) {
    if (dtype == DSK_DTYPE_F32) {
        static_cast<float*>(base)[i] = v;
    } else {
        static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
    }
}

// The sequence whose query range holds token row r (the last b with query_starts[b] <= r), by binary search; the
// caller checks the result with load_sequence.
__device__ __forceinline__ int64_t sequence_of_row(const dsk_paged_attention_params& p, int64_t r) {
    int64_t lo = 0, hi = p.batch - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (__ldg(p.query_starts + mid) <= r) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// Per-block shared state of the final merge: each warp's running max, sum and output per row.
template <int RM, int OD> struct MergeSmem {
    float m[kWarps][RM];
    float l[kWarps][RM];
    float o[kWarps][RM][OD];
};

// Attention of one block's rows over one split of the context (see the file comment).
//   T       page dtype;  LPK lanes per key row (8, 16, 32);  CPL key chunks of 8 a lane;  VCPL value chunks a lane;
//   RM      rows (heads x queries) a block;  U keys a lane group in flight.
template <typename T, int LPK, int CPL, int VCPL, int RM, int U>
__global__ void __launch_bounds__(kThreads, (RM <= 4 && LPK <= 16) ? 3 : 1) paged_simt_attend(const SimtArgs a) {
    constexpr int KPI = 32 / LPK;           // keys a warp step (one per lane group)
    constexpr int STEP = kWarps * KPI * U;  // keys a block step
    constexpr int OD = LPK * VCPL * 8;      // output elements the lanes of a group own
    __shared__ MergeSmem<RM, OD> sm;
    const dsk_paged_attention_params& p = a.p;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int lg = lane / LPK, gl = lane % LPK;
    const int D = (int)p.head_dim, Dv = (int)p.v_head_dim;
    const int64_t g = blockIdx.y / a.chunks;
    const int hc = (int)(blockIdx.y % a.chunks);
    const int h_lo = hc * a.rm_heads;
    const int gc = imin(a.rm_heads, a.group - h_lo);  // heads of this chunk
    const int split = blockIdx.z;
    const int64_t tile0 = (int64_t)blockIdx.x * a.qpb;
    const int64_t tile1 = lmin(tile0 + a.qpb, p.tokens);
    const T* kbase = static_cast<const T*>(p.key_pages) + g * D;
    const T* vbase = static_cast<const T*>(a.v_base) + g * a.v_head_off;

    for (int64_t b = sequence_of_row(p, tile0); b < p.batch; ++b) {
        const PagedSequence s = load_sequence(p, b);
        if (s.ok && (int64_t)s.q0 >= tile1) break;
        if (!s.ok || s.n == 0) continue;
        const int64_t r0 = lmax(tile0, (int64_t)s.q0), r1 = lmin(tile1, (int64_t)s.q0 + s.n);
        if (r0 >= r1) continue;
        const int nq = (int)(r1 - r0);
        const int rows = nq * gc;  // <= RM
        // Rows: r = query * gc + head; query i = r0 + r / gc - q0 at position L - n + i.
        float q[RM][CPL][8];
        int pos[RM];
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            const int64_t tok = r0 + r / gc;
            const int64_t h = g * a.group + h_lo + r % gc;
            pos[r] = r < rows ? s.L - s.n + (int)(tok - s.q0) : -1;
#pragma unroll
            for (int c = 0; c < CPL; ++c) {
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    const int d = (c * LPK + gl) * 8 + e;
                    q[r][c][e] = r < rows && d < D
                                     ? load_elem(p.q, p.q_dtype, (tok * p.q_heads + h) * D + d) * (p.scale * kLog2e)
                                     : 0.0f;
                }
            }
        }
        const int kmax = s.L - s.n + (int)(r1 - 1 - s.q0);  // the last key any row sees
        const int k_begin = split * a.split_keys;
        const int k_end = imin(imin(k_begin + a.split_keys, kmax + 1), s.L);

        float m[RM], l[RM], o[RM][VCPL][8];
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            m[r] = -INFINITY;
            l[r] = 0.0f;
#pragma unroll
            for (int c = 0; c < VCPL; ++c)
#pragma unroll
                for (int e = 0; e < 8; ++e) o[r][c][e] = 0.0f;
        }

        for (int base = k_begin; base < k_end; base += STEP) {
            Chunk<T> kr[U][CPL], vr[U][VCPL];
            int key[U];
            bool valid[U];
#pragma unroll
            for (int u = 0; u < U; ++u) {
                key[u] = base + (u * kWarps + warp) * KPI + lg;
                int page = -1;
                if (key[u] < k_end) page = page_of(p, b, key[u]);
                valid[u] = page >= 0;
                const int64_t slot = (int64_t)page * p.page_size + key[u] % p.page_size;
#pragma unroll
                for (int c = 0; c < CPL; ++c) {
                    if (valid[u]) {
                        kr[u][c] = load_chunk<T>(kbase + slot * a.k_row, (c * LPK + gl) * 8, D, a.k_vec != 0);
                    } else {
#pragma unroll
                        for (int i = 0; i < (int)(sizeof(T) / 2); ++i) kr[u][c].v[i] = make_uint4(0, 0, 0, 0);
                    }
                }
                if (!a.mla) {
#pragma unroll
                    for (int c = 0; c < VCPL; ++c) {
                        if (valid[u]) {
                            vr[u][c] = load_chunk<T>(vbase + slot * a.v_row, (c * LPK + gl) * 8, Dv, a.v_vec != 0);
                        } else {
#pragma unroll
                            for (int i = 0; i < (int)(sizeof(T) / 2); ++i) vr[u][c].v[i] = make_uint4(0, 0, 0, 0);
                        }
                    }
                }
            }
            // Scores, reduced over the lane group; masked ones -inf.
            float sc[U][RM];
#pragma unroll
            for (int u = 0; u < U; ++u) {
#pragma unroll
                for (int r = 0; r < RM; ++r) sc[u][r] = 0.0f;
#pragma unroll
                for (int c = 0; c < CPL; ++c) {
                    float kf[8];
                    unpack_chunk<T>(kr[u][c], kf);
#pragma unroll
                    for (int r = 0; r < RM; ++r)
#pragma unroll
                        for (int e = 0; e < 8; ++e) sc[u][r] = fmaf(q[r][c][e], kf[e], sc[u][r]);
                }
#pragma unroll
                for (int r = 0; r < RM; ++r) {
#pragma unroll
                    for (int off = LPK / 2; off > 0; off >>= 1) sc[u][r] += __shfl_xor_sync(0xffffffffu, sc[u][r], off);
                    if (!valid[u] || key[u] > pos[r]) sc[u][r] = -INFINITY;
                }
            }
            // Online softmax: one rescale a step.
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                float mx = m[r];
#pragma unroll
                for (int u = 0; u < U; ++u) mx = fmaxf(mx, sc[u][r]);
                const float ref = mx == -INFINITY ? 0.0f : mx;
                const float corr = exp2f(m[r] - ref);  // m = -inf: 0 (o and l are 0 then anyway)
                m[r] = mx;
                float psum = 0.0f;
#pragma unroll
                for (int u = 0; u < U; ++u) {
                    sc[u][r] = exp2f(sc[u][r] - ref);
                    psum += sc[u][r];
                }
                l[r] = l[r] * corr + psum;
#pragma unroll
                for (int c = 0; c < VCPL; ++c)
#pragma unroll
                    for (int e = 0; e < 8; ++e) o[r][c][e] *= corr;
            }
#pragma unroll
            for (int u = 0; u < U; ++u) {
#pragma unroll
                for (int c = 0; c < VCPL; ++c) {
                    float vf[8];
                    if (a.mla) {
                        // V is the first Dv elements of the key row: the same chunk this lane loaded for the scores.
                        // Chunks past Dv feed only output columns that are never written.
                        unpack_chunk<T>(kr[u][c < CPL ? c : 0], vf);
                    } else {
                        unpack_chunk<T>(vr[u][c], vf);
                    }
#pragma unroll
                    for (int r = 0; r < RM; ++r)
#pragma unroll
                        for (int e = 0; e < 8; ++e) o[r][c][e] = fmaf(sc[u][r], vf[e], o[r][c][e]);
                }
            }
        }

        // Merge the lane groups of the warp (LPK < 32), then the warps through shared memory.
#pragma unroll
        for (int off = LPK; off < 32; off <<= 1) {
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                const float mo = __shfl_xor_sync(0xffffffffu, m[r], off);
                const float lo = __shfl_xor_sync(0xffffffffu, l[r], off);
                const float mx = fmaxf(m[r], mo);
                const float ref = mx == -INFINITY ? 0.0f : mx;
                const float c_self = exp2f(m[r] - ref), c_other = exp2f(mo - ref);
                m[r] = mx;
                l[r] = l[r] * c_self + lo * c_other;
#pragma unroll
                for (int c = 0; c < VCPL; ++c)
#pragma unroll
                    for (int e = 0; e < 8; ++e) {
                        const float oo = __shfl_xor_sync(0xffffffffu, o[r][c][e], off);
                        o[r][c][e] = o[r][c][e] * c_self + oo * c_other;
                    }
            }
        }
        __syncthreads();  // a previous sequence's readers are done with sm
        if (lg == 0) {
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                if (gl == 0) {
                    sm.m[warp][r] = m[r];
                    sm.l[warp][r] = l[r];
                }
#pragma unroll
                for (int c = 0; c < VCPL; ++c)
#pragma unroll
                    for (int e = 0; e < 8; ++e) sm.o[warp][r][(c * LPK + gl) * 8 + e] = o[r][c][e];
            }
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < rows * Dv; idx += kThreads) {
            const int r = idx / Dv, d = idx % Dv;
            float mx = -INFINITY;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm.m[w][r]);
            const float ref = mx == -INFINITY ? 0.0f : mx;
            float lsum = 0.0f, osum = 0.0f;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) {
                const float c = exp2f(sm.m[w][r] - ref);
                lsum += sm.l[w][r] * c;
                osum += sm.o[w][r][d] * c;
            }
            const int64_t tok = r0 + r / gc;
            const int64_t h = g * a.group + h_lo + r % gc;
            const int64_t row = tok * p.q_heads + h;
            if (a.splits == 1) {
                store_elem(p.out, p.out_dtype, row * Dv + d, osum / lsum);
            } else {
                const int64_t at = (int64_t)split * p.tokens * p.q_heads + row;
                a.ws_o[at * Dv + d] = lsum > 0.0f ? osum / lsum : 0.0f;
                if (d == 0) a.ws_lse[at] = lsum > 0.0f ? mx + log2f(lsum) : -INFINITY;
            }
        }
    }
}

// Merges the splits' partial outputs of one query row (all its heads) by their log-sum-exps (base 2).
__global__ void __launch_bounds__(kThreads) paged_simt_combine(const SimtArgs a) {
    const dsk_paged_attention_params& p = a.p;
    const int64_t tok = blockIdx.x;
    const int64_t b = sequence_of_row(p, tok);
    const PagedSequence s = load_sequence(p, b);
    if (!s.ok || tok < s.q0 || tok >= (int64_t)s.q0 + s.n) return;  // not a row of a valid sequence
    const int Dv = (int)p.v_head_dim;
    const int64_t per_split = p.tokens * p.q_heads;
    for (int64_t idx = threadIdx.x; idx < p.q_heads * Dv; idx += kThreads) {
        const int64_t h = idx / Dv;
        const int d = (int)(idx % Dv);
        const int64_t row = tok * p.q_heads + h;
        float mx = -INFINITY;
        for (int sp = 0; sp < a.splits; ++sp) mx = fmaxf(mx, a.ws_lse[sp * per_split + row]);
        float wsum = 0.0f, osum = 0.0f;
        for (int sp = 0; sp < a.splits; ++sp) {
            const float lse = a.ws_lse[sp * per_split + row];
            if (lse == -INFINITY) continue;
            const float w = exp2f(lse - mx);
            wsum += w;
            osum += w * a.ws_o[(sp * per_split + row) * Dv + d];
        }
        store_elem(p.out, p.out_dtype, row * Dv + d, osum / wsum);
    }
}

// The launch shape of a request (host; depends only on sizes, dtypes and the device).
struct Plan {
    int lpk, cpl, vcpl, rm, u;
    int32_t rm_heads, chunks, qpb, splits, split_keys;
    int64_t tiles;
};

// SMs of the current device, cached per device (a benign race: every writer stores the same value).
int sm_count() {
    static int cache[64];
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return 132;  // no device (workspace sizing on a machine without a GPU): an H100 / H200
    }
    if (dev >= 0 && dev < 64 && cache[dev] > 0) return cache[dev];
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) {
        (void)cudaGetLastError();
        return 132;
    }
    if (dev >= 0 && dev < 64) cache[dev] = sms;
    return sms;
}

// Calls op.run<T, LPK, CPL, VCPL, RM, U>() for the kernel instance of a plan. U (keys a lane group in flight) is what
// the registers allow: q and the output take RM x 16 floats a lane.
template <typename T, class Op> void visit_t(const Plan& pl, const Op& op) {
    constexpr int U4 = sizeof(T) == 2 ? 4 : 2, U8 = sizeof(T) == 2 ? 2 : 1;
    if (pl.cpl == 3) {
        op.template run<T, 32, 3, 3, 2, 1>();
    } else if (pl.lpk == 8) {
        if (pl.rm == 4) op.template run<T, 8, 1, 1, 4, U4>(); else op.template run<T, 8, 1, 1, 8, U8>();
    } else if (pl.lpk == 16) {
        if (pl.rm == 4) op.template run<T, 16, 1, 1, 4, U4>(); else op.template run<T, 16, 1, 1, 8, U8>();
    } else {
        if (pl.rm == 4) op.template run<T, 32, 1, 1, 4, U4>(); else op.template run<T, 32, 1, 1, 8, U8>();
    }
}
template <class Op> void visit(int32_t page_dtype, const Plan& pl, const Op& op) {
    if (page_dtype == DSK_DTYPE_F32) visit_t<float>(pl, op); else visit_t<__nv_bfloat16>(pl, op);
}

// Blocks of the plan's kernel resident on one SM (cached per kernel instance; 2 when the runtime cannot say).
struct OccupancyOp {
    int* blocks;
    template <typename T, int LPK, int CPL, int VCPL, int RM, int U> void run() const {
        static int cached = 0;
        if (cached == 0) {
            int n = 0;
            if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, paged_simt_attend<T, LPK, CPL, VCPL, RM, U>, kThreads, 0) !=
                    cudaSuccess || n <= 0) {
                (void)cudaGetLastError();
                *blocks = 2;
                return;
            }
            cached = n;
        }
        *blocks = cached;
    }
};

struct LaunchOp {
    const SimtArgs* a;
    const Plan* pl;
    cudaStream_t st;
    template <typename T, int LPK, int CPL, int VCPL, int RM, int U> void run() const {
        const dim3 grid((unsigned)pl->tiles, (unsigned)(a->p.kv_heads * pl->chunks), (unsigned)pl->splits);
        paged_simt_attend<T, LPK, CPL, VCPL, RM, U><<<grid, kThreads, 0, st>>>(*a);
    }
};

bool make_plan(const dsk_paged_attention_params& p, Plan& pl) {
    const int64_t dmax = p.head_dim > p.v_head_dim ? p.head_dim : p.v_head_dim;
    const int64_t group = p.q_heads / p.kv_heads;
    const bool f32 = p.page_dtype == DSK_DTYPE_F32;
    if (dmax <= 256) {
        pl.lpk = dmax <= 64 ? 8 : dmax <= 128 ? 16 : 32;
        pl.cpl = pl.vcpl = 1;
        pl.rm = group <= 4 ? 4 : 8;
        pl.u = pl.rm == 4 ? (f32 ? 2 : 4) : (f32 ? 1 : 2);
    } else if (dmax <= 768) {
        pl.lpk = 32;
        pl.cpl = pl.vcpl = 3;
        pl.rm = 2;
        pl.u = 1;
    } else {
        return false;
    }
    const bool decode = p.tokens <= 2 * p.batch;
    pl.rm_heads = (int32_t)(group < pl.rm ? group : pl.rm);
    pl.chunks = (int32_t)((group + pl.rm_heads - 1) / pl.rm_heads);
    pl.qpb = decode || group >= pl.rm ? 1 : (int32_t)(pl.rm / group);
    pl.tiles = (p.tokens + pl.qpb - 1) / pl.qpb;
    // Splits: the count that fills the resident block slots in whole waves best (a small charge for the combine and for
    // each split), each split at least 256 keys of the bound max_pages * page_size; none when the blocks already make
    // four waves.
    const int64_t blocks = pl.tiles * p.kv_heads * pl.chunks;
    const int64_t lmax = p.max_pages * p.page_size;
    int resident = 0;
    visit(p.page_dtype, pl, OccupancyOp{&resident});
    const int64_t slots = (int64_t)sm_count() * resident;
    int64_t splits = 1;
    if (blocks < 4 * slots) {
        int64_t smax = (lmax + 255) / 256;
        if (p.max_splits > 0 && smax > p.max_splits) smax = p.max_splits;
        if (smax > 1024) smax = 1024;
        double best = -1.0;
        for (int64_t sp = 1; sp <= smax; ++sp) {
            const int64_t total = blocks * sp, waves = (total + slots - 1) / slots;
            const double score = (double)total / (double)(waves * slots) - (sp > 1 ? 0.03 : 0.0) - 0.0005 * (double)sp;
            if (score > best) {
                best = score;
                splits = sp;
            }
        }
    }
    if (p.max_splits > 0 && splits > p.max_splits) splits = p.max_splits;
    const int64_t step = (int64_t)kWarps * (32 / pl.lpk) * pl.u;
    int64_t keys = (lmax + splits - 1) / splits;
    keys = (keys + step - 1) / step * step;
    pl.split_keys = (int32_t)keys;
    pl.splits = (int32_t)((lmax + keys - 1) / keys);
    return true;
}

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

}  // namespace

bool paged_simt_supports(const dsk_paged_attention_params& p, const char** why) {
    Plan pl;
    if (!make_plan(p, pl)) {
        if (why) *why = "the CUDA-core family takes head_dim and v_head_dim up to 768";
        return false;
    }
    if (p.kv_heads * pl.chunks > 65535) {
        if (why) *why = "the CUDA-core family takes at most 65535 kv heads x head chunks";
        return false;
    }
    return true;
}

int64_t paged_simt_workspace_bytes(const dsk_paged_attention_params& p, bool) {
    Plan pl;
    if (!make_plan(p, pl) || pl.splits <= 1) return 0;
    const int64_t rows = (int64_t)pl.splits * p.tokens * p.q_heads;
    return round16(rows * 4) + rows * p.v_head_dim * 4;
}

dsk_status paged_simt(const char* op, const dsk_paged_attention_params& p, bool mla, void* workspace) {
    Plan pl;
    if (!make_plan(p, pl)) {
        DSK_UNSUPPORTED(op, "the CUDA-core path takes head_dim and v_head_dim up to 768 (got %lld and %lld)",
                        (long long)p.head_dim, (long long)p.v_head_dim);
    }
    if (p.kv_heads * pl.chunks > 65535) {
        DSK_UNSUPPORTED(op, "the CUDA-core path takes at most 65535 kv heads x head chunks (got %lld)",
                        (long long)(p.kv_heads * pl.chunks));
    }
    SimtArgs a{};
    a.p = p;
    const int64_t esz = p.page_dtype == DSK_DTYPE_F32 ? 4 : 2;
    a.k_row = p.kv_heads * p.head_dim;
    if (mla) {
        a.v_base = p.key_pages;
        a.v_row = a.k_row;
        a.v_head_off = p.head_dim;
    } else {
        a.v_base = p.value_pages;
        a.v_row = p.kv_heads * p.v_head_dim;
        a.v_head_off = p.v_head_dim;
    }
    a.mla = mla ? 1 : 0;
    a.group = (int32_t)(p.q_heads / p.kv_heads);
    a.rm_heads = pl.rm_heads;
    a.chunks = pl.chunks;
    a.qpb = pl.qpb;
    a.splits = pl.splits;
    a.split_keys = pl.split_keys;
    // 16-byte loads of 8-element chunks: every head's row start 16-byte aligned.
    a.k_vec = p.head_dim % 8 == 0 && (a.k_row * esz) % 16 == 0 && is_aligned_16(p.key_pages);
    a.v_vec = p.v_head_dim % 8 == 0 && (a.v_row * esz) % 16 == 0 && (a.v_head_off * esz) % 16 == 0 && is_aligned_16(a.v_base);
    if (pl.splits > 1) {
        const int64_t rows = (int64_t)pl.splits * p.tokens * p.q_heads;
        a.ws_lse = static_cast<float*>(workspace);
        a.ws_o = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + round16(rows * 4));
    }
    const cudaStream_t st = static_cast<cudaStream_t>(p.stream);
    visit(p.page_dtype, pl, LaunchOp{&a, &pl, st});
    DSK_CHECK_LAUNCH(op);
    if (pl.splits > 1) {
        paged_simt_combine<<<(unsigned)p.tokens, kThreads, 0, st>>>(a);
        DSK_CHECK_LAUNCH(op);
    }
    return DSK_SUCCESS;
}

}  // namespace dsk
