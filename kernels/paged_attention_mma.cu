// paged_attention_mma.cu: the bf16 tensor-core family of dsk_paged_attention (GQA prefill and mixed batches):
// FlashAttention-2 over a paged KV cache, mma.sync m16n8k16 bf16 with fp32 accumulators (sm_80+).
//
// Math (deepseek_kernels.h, dsk_paged_attention): sequence b with n queries and L keys, its query i at position
// p = L - n + i, query head h against kv head h / (q_heads / kv_heads):
//   s[j] = scale * (bf16(q) . K[j]) for j <= p;   out = sum_j softmax(s)[j] * V[j]
// q is rounded to bf16 when staged, the softmax runs in fp32 (exp2 with scale * log2(e) folded in, the running max
// subtracted), the weights P are rounded to bf16 for the PV product, O accumulates in fp32 and is rounded once to
// out_dtype after the division by the row sum (taken over the fp32 weights).
//
// Cost: causal prefill of n = L tokens does about 2 * 2 * n^2 / 2 * head_dim FLOPs per q head and reads each K/V tile
// once per 128-row query tile: compute-bound from a few hundred tokens on; the goal is a share of cuBLAS's bf16 rate.
//
// Two kernels:
//   paged_mma_plan   one block: per sequence the number of 128-row query tiles (0 for a sequence with bad metadata:
//                    offsets, length or a block-table entry out of range; those are skipped, never read), then their
//                    exclusive prefix sum into the workspace: cum[0 .. batch] (FlashInfer's plan step, on the device).
//   paged_mma_fwd    grid = (ceil(tokens / 128) + batch) * q_heads blocks, an upper bound on the tiles whatever the
//                    split of tokens among sequences, so the launch depends only on host fields (graph-capturable).
//                    Block id -> (tile slot, q head) with the head fastest (the heads of one kv group run side by side
//                    and share K/V in L2); the slot finds its sequence by binary search in cum and exits past the
//                    end; within a sequence the last (longest causal) tiles go first.
// paged_mma_fwd: a block of 8 warps takes 128 query rows (16 per warp) of one sequence and q head; key tiles of 64
// rows are gathered through the block table (each 16-byte chunk of a K or V row with its own page lookup, so a tile
// may span several pages or part of one; keys past L are zero-filled, never read) into shared memory with cp.async,
// double-buffered: tile kt + 1 loads while tile kt is multiplied. Shared tiles are panels of 64 bf16 columns with
// 128-byte rows, swizzled as in mma_common.cuh (conflict-free cp.async and ldmatrix): Q [128 x D], K and V [64 x D]
// per stage; S = Q K^T reads Q (ldmatrix) and K (ldmatrix, [key][d] = the col-major B operand), O += P V takes P
// straight from the S accumulators (the C fragment layout of two n8 tiles is the A fragment of one k16 step) and V
// through ldmatrix.trans. A warp skips the key tiles past its own last row's position and masks only the tiles that
// straddle its rows' positions. Shared memory: 96 KiB at D = 128, 48 KiB at D = 64. Registers (CUDA 11.8, no spills):
// D = 128: 167 on sm_90, 211 on sm_80; D = 64: 146 / 161; so one block of 8 warps per SM (FlashAttention-2's 8 warps
// per SM at head_dim 128). Capping them at 128 for two blocks per SM spills (80 bytes on sm_90).
//
// On a cc 9.0 GPU of a library built for sm_90a, path MMA (and AUTO) run the Hopper variant instead
// (paged_attention_wgmma.cu: the same plan, tiles and grid on wgmma, P kept in registers); MMA_SYNC keeps this one.
// Not done: TMA (FlashAttention-3's path), split-K over the context for few long queries (AUTO sends
// decode-only steps to the CUDA-core family), head dims other than 64 and 128, f32 pages.
#include <climits>

#include "paged_attention_mma.cuh"

namespace dsk {
namespace {

using gqa::kBM;                   // query rows per block (16 per warp)
using gqa::tile_off;
constexpr int kBN = 64;           // keys per K/V tile
constexpr int kThreads = 256;     // 8 warps
constexpr int kPlanThreads = 1024;
constexpr int kPanelBytesQ = kBM * 128;  // one 64-column panel of the Q tile
constexpr int kPanelBytesKV = kBN * 128; // one 64-column panel of a K or V tile

template <int D> constexpr int smem_bytes() { return (D / 64) * (kPanelBytesQ + 4 * kPanelBytesKV); }  // Q + 2 x (K, V)

// Query tiles of each sequence (0 when it is skipped), then cum[b] = tiles of sequences 0 .. b - 1, cum[batch] = all.
__global__ void __launch_bounds__(kPlanThreads) paged_mma_plan(const dsk_paged_attention_params p, int32_t* cum) {
    __shared__ int32_t part[kPlanThreads];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    // 1. A warp per sequence: offsets and length (load_sequence), then its block-table entries.
    for (int64_t b = warp; b < p.batch; b += kPlanThreads / 32) {
        const PagedSequence s = load_sequence(p, b);
        bool ok = s.ok && s.n > 0;
        if (ok) {
            const int32_t used = (int32_t)(((int64_t)s.L + p.page_size - 1) / p.page_size);
            bool bad = false;
            for (int32_t j = lane; j < used; j += 32) {
                const int32_t page = __ldg(p.block_table + b * p.max_pages + j);
                bad = bad || page < 0 || (int64_t)page >= p.pages;
            }
            ok = !__any_sync(0xffffffffu, bad);
        }
        if (lane == 0) cum[b + 1] = ok ? (s.n + kBM - 1) / kBM : 0;
    }
    __syncthreads();  // the counts are visible to the whole block
    // 2. Prefix sum: thread t owns a contiguous run of sequences; the run totals are scanned in shared memory.
    const int64_t run = (p.batch + kPlanThreads - 1) / kPlanThreads;
    const int64_t lo = tid * run, hi = lo + run < p.batch ? lo + run : p.batch;
    int32_t total = 0;
    for (int64_t b = lo; b < hi; ++b) total += cum[b + 1];
    part[tid] = total;
    __syncthreads();
    for (int off = 1; off < kPlanThreads; off <<= 1) {  // inclusive scan (Hillis-Steele)
        const int32_t add = tid >= off ? part[tid - off] : 0;
        __syncthreads();
        part[tid] += add;
        __syncthreads();
    }
    int32_t acc = part[tid] - total;  // exclusive prefix of this run
    for (int64_t b = lo; b < hi; ++b) {
        const int32_t c = cum[b + 1];
        cum[b + 1] = acc + c;
        acc += c;
    }
    if (tid == 0) cum[0] = 0;
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1) paged_mma_fwd(const dsk_paged_attention_params p, const int32_t* cum) {
    constexpr int kPanels = D / 64;
    constexpr int kKSteps = D / 16;   // k16 steps of Q K^T
    extern __shared__ __align__(128) uint8_t smem[];
    const uint32_t s_q = mma::smem_addr(smem);
    const uint32_t s_kv = s_q + kPanels * kPanelBytesQ;  // stage s: K at s_kv + s * 2 * kv_bytes, V after it
    constexpr uint32_t kTileKV = kPanels * kPanelBytesKV;

    gqa::QueryTile qt;
    if (!gqa::find_query_tile(p, cum, &qt)) return;  // block-uniform
    const PagedSequence& seq = qt.seq;
    const int32_t i0 = qt.i0, rows = qt.rows, offset = qt.offset;
    const int32_t num_kt = (offset + i0 + rows - 1) / kBN + 1;  // key tiles up to the last row's position

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    gqa::load_q_tile<D, kThreads>(p, qt, s_q, smem, tid);  // rows i0 .. i0 + 127, zeros past n, rounded to bf16
    auto load_kv = [&](int kt) {
        const uint32_t sk = s_kv + (kt & 1) * 2 * kTileKV;
        gqa::load_kv_tile<D, kBN, kThreads>(p, qt, kt, sk, sk + kTileKV, tid);
    };

    // This thread's rows (warp tile rows lane / 4 and lane / 4 + 8) and their positions; rows past n take the last
    // row's position (their results are not written).
    const int32_t wrow = i0 + warp * 16;  // first sequence row of the warp
    const bool warp_live = wrow < seq.n;
    const int32_t last_row = seq.n - 1;
    const int32_t w_lo = offset + (wrow < last_row ? wrow : last_row);
    const int32_t w_hi = offset + (wrow + 15 < last_row ? wrow + 15 : last_row);
    int32_t pos[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        const int32_t r = wrow + (lane >> 2) + 8 * e;
        pos[e] = offset + (r < last_row ? r : last_row);
    }
    const float scale_log2 = p.scale * 1.4426950408889634f;

    float o[D / 8][4];
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[nt][e] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    load_kv(0);
    mma::cp_async_commit();  // group 0: Q (bf16) and tile 0
    for (int kt = 0; kt < num_kt; ++kt) {
        if (kt + 1 < num_kt) load_kv(kt + 1);
        mma::cp_async_commit();
        mma::cp_async_wait<1>();
        __syncthreads();  // tile kt (and Q) landed for every thread
        const int32_t k0 = kt * kBN;
        if (warp_live && k0 <= w_hi) {
            const uint32_t sk = s_kv + (kt & 1) * 2 * kTileKV, sv = sk + kTileKV;
            // S = Q K^T: 16 rows x 64 keys per warp; s[nt][e] is row lane / 4 + 8 (e >> 1), key k0 + nt * 8 + 2 (lane & 3) + (e & 1).
            float s[8][4];
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < kKSteps; ++ks) {
                const int panel = ks >> 2, kc = 2 * (ks & 3);
                uint32_t a[4];
                mma::ldmatrix_x4(a, mma::a_frag_addr(s_q + panel * kPanelBytesQ, warp * 16, kc, lane));
#pragma unroll
                for (int np = 0; np < 4; ++np) {
                    uint32_t t[4];
                    mma::ldmatrix_x4(t, mma::b_frag_addr(sk + panel * kPanelBytesKV, np * 16, kc, lane));
                    mma::mma_bf16_16816(s[2 * np], a, t[0], t[1]);
                    mma::mma_bf16_16816(s[2 * np + 1], a, t[2], t[3]);
                }
            }
            // Online softmax in the log2 domain; keys past a row's position are masked (only in straddling tiles).
            const bool masked = k0 + kBN - 1 > w_lo;
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float x = s[nt][e] * scale_log2;
                    if (masked && k0 + nt * 8 + 2 * (lane & 3) + (e & 1) > pos[e >> 1]) x = -INFINITY;
                    s[nt][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            float alpha[2], m_use[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                const float m_new = fmaxf(m[r], mx[r]);
                m_use[r] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing unmasked yet
                alpha[r] = exp2f(m[r] - m_use[r]);
                m[r] = m_new;
                l[r] *= alpha[r];
            }
#pragma unroll
            for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) o[nt][e] *= alpha[e >> 1];
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float w = exp2f(s[nt][e] - m_use[e >> 1]);
                    s[nt][e] = w;
                    l[e >> 1] += w;  // this thread's part of the row sum; the quad's parts are added at the end
                }
            // O += P V: k16 step kk takes keys kk * 16 .. + 15 (S tiles 2 kk, 2 kk + 1) as the A fragment.
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[4];
                a[0] = float_to_bf16x2(s[2 * kk][0], s[2 * kk][1]);
                a[1] = float_to_bf16x2(s[2 * kk][2], s[2 * kk][3]);
                a[2] = float_to_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                a[3] = float_to_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                const int vrow = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
                for (int dp = 0; dp < D / 16; ++dp) {
                    uint32_t t[4];
                    mma::ldmatrix_x4_trans(t, sv + tile_off(kBN, vrow, 2 * dp + (lane >> 4)));
                    mma::mma_bf16_16816(o[2 * dp], a, t[0], t[1]);
                    mma::mma_bf16_16816(o[2 * dp + 1], a, t[2], t[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with stage kt & 1 before tile kt + 2 refills it
    }
    mma::cp_async_wait<0>();

    if (!warp_live) return;
    gqa::store_rows<D>(p, qt, wrow + (lane >> 2), lane, &o[0][0], l);  // o[nt][e] flat is the shared layout
}

template <int D> dsk_status launch_fwd(const char* op, const dsk_paged_attention_params& p, const int32_t* cum,
                                       int64_t blocks, cudaStream_t stream) {
    const cudaError_t err = cudaFuncSetAttribute(paged_mma_fwd<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes<D>());
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) setting the attention kernel's shared memory", cudaGetErrorName(err),
                  cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    paged_mma_fwd<D><<<(unsigned)blocks, kThreads, smem_bytes<D>(), stream>>>(p, cum);
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

// Blocks of the main grid: (ceil(tokens / 128) + batch) tile slots per q head.
int64_t fwd_blocks(const dsk_paged_attention_params& p) { return ((p.tokens + kBM - 1) / kBM + p.batch) * p.q_heads; }

}  // namespace

bool paged_mma_supports(const dsk_paged_attention_params& p, const char** why) {
    const char* reason = nullptr;
    int device = 0, major = 0, optin = 0;
    if (p.page_dtype != DSK_DTYPE_BF16) {
        reason = "pages are not BF16 (the tensor-core family reads bf16 pages)";
    } else if (p.head_dim != p.v_head_dim) {
        reason = "head_dim and v_head_dim differ (the tensor-core family takes equal ones)";
    } else if (p.head_dim != 64 && p.head_dim != 128) {
        reason = "head_dim is not 64 or 128";
    } else if ((p.q_dtype != DSK_DTYPE_F32 && p.q_dtype != DSK_DTYPE_BF16) ||
               (p.out_dtype != DSK_DTYPE_F32 && p.out_dtype != DSK_DTYPE_BF16)) {
        reason = "q or out dtype is not F32 or BF16";
    } else if (!is_aligned_16(p.q) || !is_aligned_16(p.key_pages) || !is_aligned_16(p.value_pages) ||
               !is_aligned_16(p.out)) {
        reason = "q, the pages or out are not 16-byte aligned";
    } else if (fwd_blocks(p) > INT_MAX) {
        reason = "shape beyond the kernel's index range ((ceil(tokens / 128) + batch) * q_heads >= 2^31)";
    } else if (cudaGetDevice(&device) != cudaSuccess ||
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
               cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        (void)cudaGetLastError();
        reason = "no CUDA device";
    } else if (major < 8) {
        reason = "needs sm_80+";
    } else if (optin < (p.head_dim == 64 ? smem_bytes<64>() : smem_bytes<128>())) {
        reason = "the device has too little shared memory per block";
    }
    if (why != nullptr) *why = reason;
    return reason == nullptr;
}

// cum[0 .. batch] (int32) of the plan.
int64_t paged_mma_workspace_bytes(const dsk_paged_attention_params& p) { return (p.batch + 1) * 4; }

dsk_status paged_mma(const char* op, const dsk_paged_attention_params& p, void* workspace) {
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    int32_t* cum = static_cast<int32_t*>(workspace);
    paged_mma_plan<<<1, kPlanThreads, 0, stream>>>(p, cum);
    DSK_CHECK_LAUNCH(op);
    if (p.path != DSK_ATTENTION_PATH_MMA_SYNC && gqa::wgmma_runs_here((int)p.head_dim))
        return gqa::wgmma_launch(op, p, cum, fwd_blocks(p), stream);  // Hopper (paged_attention_wgmma.cu)
    return p.head_dim == 64 ? launch_fwd<64>(op, p, cum, fwd_blocks(p), stream)
                            : launch_fwd<128>(op, p, cum, fwd_blocks(p), stream);
}

}  // namespace dsk
