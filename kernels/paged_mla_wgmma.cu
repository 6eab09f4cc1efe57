// paged_mla_wgmma.cu: dsk_paged_mla_attention's tensor-core family on Hopper's warpgroup MMA (wgmma, sm_90a): the
// same plan, row tiles, context splits, combine and math as the mma.sync variant (paged_mla_mma.cu, which launches
// this one on a cc 9.0 GPU of a library built for sm_90a unless the path is MMA_SYNC), with both products on wgmma
// reading their operands straight from the swizzled shared tiles (paged_mla.cuh), as FlashMLA does on Hopper.
//
// Block: 256 threads = two warpgroups, one 64-row tile of (query, head) rows of one sequence, 64-key tiles of its
// context (split s of grid.y takes its share). Shared memory (1024-byte aligned; 231,168 bytes at head_dim 576): the Q
// tile (64 x 576 bf16, loaded once), two key-tile stages (cp.async, the next tile's copy under the current tile's math),
// the P tile (64 x 64 bf16) and per-row alpha / row sum / final max. Per key tile:
//   warpgroup 0: S = Q K^T (64 x 64, fp32) = 36 wgmma m64n64k16 (K-major A = the Q tile, K-major B = the key tile);
//     thread t holds S rows 16 (t / 32) + (t % 32) / 4 + {0, 8}, 16 columns each, so the row max needs only the quad's
//     shuffles; then the causal / length mask, the online softmax in the exp2 domain (one multiply folds scale *
//     log2(e)), P rounded to bf16 into the P tile, alpha into shared memory; fence.proxy.async for wgmma's reads of P.
//   barrier; both warpgroups: O *= alpha, O += P V on wgmma m64n128k16, warpgroup w owning the 64 rows x columns
//     256 w .. 256 w + 255 (two m64n128 accumulators, 128 fp32 per thread); V is the key tile's first 512 columns read
//     MN-major (the instruction transposes B; the [key][latent] sub-tiles are already the canonical MN-major swizzled
//     layout: 8 keys per 1024-byte atom, the next 64 columns 8 KiB on), so V needs no second copy and no ldmatrix.trans.
// Two barriers per tile (tile landed, P ready). Every wgmma batch is committed and waited for at once: no overlap of
// warpgroup 0's S of the next tile with the P V of this one (FlashMLA's ping-pong), no TMA, warpgroup 1 idle during S
// and the softmax; those are the next steps once a GPU measures this. The epilogue writes out (one split) or the
// normalised partial O and log2-sum-exp (several) exactly as the mma.sync variant, whose combine kernel then runs.
//
// Numerics as the mma.sync variant: q and P rounded to bf16, fp32 accumulation (the order within a wgmma is the
// hardware's), out rounded once. Dead rows of a tile (16 heads x 1 decode token fills 16 of 64) are computed on zero
// queries and never written; a warpgroup cannot skip them as mma.sync's warps do, so at few heads AUTO's choice of this
// variant costs up to 4x the tensor work of the live rows (memory-bound there anyway; to be measured).
#include <cmath>

#include "paged_mla.cuh"

namespace dsk {
namespace mla {

namespace {

constexpr int kStatFloats = 3 * kRows;  // alpha [64], row sums [64], final max [64]

__host__ __device__ constexpr int smem_layout_bytes(int d) { return 3 * tile_bytes(d) + kSubBytes + kStatFloats * 4; }

__global__ void __launch_bounds__(kThreads, 1) mla_wgmma_kernel(const dsk_paged_attention_params p, const MlaPlan plan) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    extern __shared__ __align__(128) uint8_t smem_raw[];
    // The descriptors' 128-byte swizzle is on addresses: every tile starts on a 1024-byte boundary.
    uint8_t* const smem = smem_raw + ((1024u - (mma::smem_addr(smem_raw) & 1023u)) & 1023u);
    PagedSequence seq;
    RowTile tile;
    if (!find_tile(p, plan.tile_start, blockIdx.x, &seq, &tile)) return;  // block-uniform

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wg = warp >> 2, wv = warp & 3;  // warpgroup, warp within it
    const int g = lane >> 2, qd = lane & 3;
    const int H = (int)p.q_heads, D = (int)p.head_dim;

    const uint32_t s_q = mma::smem_addr(smem);
    const uint32_t s_k0 = s_q + tile_bytes(D);
    const uint32_t s_p = s_q + 3 * tile_bytes(D);
    uint8_t* const p_ptr = smem + 3 * tile_bytes(D);
    float* const s_alpha = reinterpret_cast<float*>(p_ptr + kSubBytes);  // [64]
    float* const s_l = s_alpha + kRows;                                  // [64]
    float* const s_m = s_l + kRows;                                      // [64]

    const KeyRange kr = key_range(seq, tile, H, plan.splits);
    if (kr.n_tiles > 0) {
        load_q_tile(p, tile, s_q, smem, tid);
        load_key_tile(p, seq, tile, kr.t_begin, s_k0, tid);
    }
    mma::cp_async_commit();

    // This thread's two rows in every fragment (S of warpgroup 0, O of both): 16 wv + g and + 8; their positions.
    int32_t pos[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) pos[h] = seq.L - seq.n + (int32_t)((tile.r0 + wv * 16 + g + 8 * h) / H);

    float o[2][64];  // o[half][4 c + 2 h + e]: row 16 wv + g + 8 h, column 256 wg + 128 half + 8 c + 2 qd + e
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int i = 0; i < 64; ++i) o[half][i] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY};  // warpgroup 0: running row max (log2 units)
    float l_run[2] = {0.0f, 0.0f};            // warpgroup 0: this thread's share of the row sums

    for (int it = 0; it < kr.n_tiles; ++it) {
        const int stage = it & 1;
        mma::cp_async_wait<0>();
        mma::fence_proxy_async();  // this thread's copies (and Q stores), visible to wgmma's proxy
        __syncthreads();           // tile it landed for everyone; everyone is done with tile it - 1, P and alpha
        if (it + 1 < kr.n_tiles) load_key_tile(p, seq, tile, kr.t_begin + it + 1, s_k0 + (stage ^ 1) * tile_bytes(D), tid);
        mma::cp_async_commit();
        const uint32_t s_k = s_k0 + stage * tile_bytes(D);

        if (wg == 0) {
            float s[32];  // s[4 c + 2 h + e]: row 16 wv + g + 8 h, key 8 c + 2 qd + e of the tile
#pragma unroll
            for (int i = 0; i < 32; ++i) s[i] = 0.0f;
            mma::wgmma_fence_operand(s);
            mma::wgmma_fence();
            for (int cb = 0; cb < D / 64; ++cb)
#pragma unroll
                for (int kk = 0; kk < 4; ++kk)
                    mma::wgmma_m64n64k16_bf16(s, mma::wgmma_desc_sw128(s_q + cb * kSubBytes + 32 * kk),
                                              mma::wgmma_desc_sw128(s_k + cb * kSubBytes + 32 * kk), cb + kk > 0);
            mma::wgmma_commit();
            mma::wgmma_wait<0>();
            mma::wgmma_fence_operand(s);

            const int32_t key0 = (kr.t_begin + it) * kKeys;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                float mx = -INFINITY;
#pragma unroll
                for (int c = 0; c < 8; ++c)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int32_t j = key0 + 8 * c + 2 * qd + e;
                        float& v = s[4 * c + 2 * h + e];
                        v = j <= pos[h] && j < seq.L ? v * plan.scale_log2 : -INFINITY;
                        mx = fmaxf(mx, v);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const int r = wv * 16 + g + 8 * h;
                const float m_new = fmaxf(m_run[h], mx);
                const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row with no key yet: every weight is 0
                const float alpha = exp2f(m_run[h] - base);
                m_run[h] = m_new;
                float sum = 0.0f;
#pragma unroll
                for (int c = 0; c < 8; ++c) {
                    const float p0 = exp2f(s[4 * c + 2 * h] - base), p1 = exp2f(s[4 * c + 2 * h + 1] - base);
                    sum += p0 + p1;
                    const int key = 8 * c + 2 * qd;
                    *reinterpret_cast<uint32_t*>(p_ptr + mma::swz(r, key >> 3) + (key & 7) * 2) = float_to_bf16x2(p0, p1);
                }
                l_run[h] = l_run[h] * alpha + sum;
                if (qd == 0) s_alpha[r] = alpha;
            }
            mma::fence_proxy_async();  // P, written by this thread, visible to wgmma's proxy
        }
        __syncthreads();  // P and alpha ready

        // O = alpha O + P V over this warpgroup's 256 columns.
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const float alpha = s_alpha[wv * 16 + g + 8 * h];
#pragma unroll
            for (int half = 0; half < 2; ++half)
#pragma unroll
                for (int c = 0; c < 16; ++c) {
                    o[half][4 * c + 2 * h] *= alpha;
                    o[half][4 * c + 2 * h + 1] *= alpha;
                }
        }
        mma::wgmma_fence_operand(o[0]);
        mma::wgmma_fence_operand(o[1]);
        mma::wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < kKeys / 16; ++ks) {
            const uint64_t da = mma::wgmma_desc_sw128(s_p + 32 * ks);
#pragma unroll
            for (int half = 0; half < 2; ++half)
                mma::wgmma_m64n128k16_bf16_bmn(
                    o[half], da, mma::wgmma_desc_mn_sw128(s_k + (4 * wg + 2 * half) * kSubBytes + ks * 2048, kSubBytes, 1024),
                    true);
        }
        mma::wgmma_commit();
        mma::wgmma_wait<0>();
        mma::wgmma_fence_operand(o[0]);
        mma::wgmma_fence_operand(o[1]);
    }
    mma::cp_async_wait<0>();

    // Row sums over the quad (warpgroup 0 holds them), published with the final max.
    if (wg == 0) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float l = l_run[h];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            if (qd == 0) {
                s_l[wv * 16 + g + 8 * h] = l;
                s_m[wv * 16 + g + 8 * h] = m_run[h];
            }
        }
    }
    __syncthreads();

    const int64_t rows_total = p.tokens * p.q_heads;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = wv * 16 + g + 8 * h;
        if (r >= tile.rows) continue;
        const float l = s_l[r];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // l == 0: no key of this split reaches the row
        const int64_t grow = tile.grow0 + r;
        const int64_t row_base = plan.splits == 1 ? grow * kDV : ((int64_t)blockIdx.y * rows_total + grow) * kDV;
#pragma unroll
        for (int half = 0; half < 2; ++half)
#pragma unroll
            for (int c = 0; c < 16; ++c) {
                const int64_t at = row_base + 256 * wg + 128 * half + 8 * c + 2 * qd;
                const float v0 = o[half][4 * c + 2 * h] * inv, v1 = o[half][4 * c + 2 * h + 1] * inv;
                if (plan.splits > 1) {
                    *reinterpret_cast<float2*>(plan.ws_o + at) = make_float2(v0, v1);
                } else if (p.out_dtype == DSK_DTYPE_F32) {
                    *reinterpret_cast<float2*>(static_cast<float*>(p.out) + at) = make_float2(v0, v1);
                } else {
                    *reinterpret_cast<uint32_t*>(static_cast<__nv_bfloat16*>(p.out) + at) = float_to_bf16x2(v0, v1);
                }
            }
        if (plan.splits > 1 && wg == 0 && qd == 0)
            plan.ws_lse[(int64_t)blockIdx.y * rows_total + grow] = l > 0.0f ? s_m[r] + log2f(l) : -INFINITY;
    }
#else
    (void)p;
    (void)plan;
#endif
}

}  // namespace

int wgmma_smem_bytes(int d) { return smem_layout_bytes(d) + 1024; }

bool wgmma_runs_here(int d) { return wgmma_preferred(wgmma_smem_bytes(d)); }

dsk_status wgmma_launch(const char* op, const dsk_paged_attention_params& p, const MlaPlan& plan, cudaStream_t stream) {
    const int bytes = wgmma_smem_bytes((int)p.head_dim);
    const cudaError_t err = cudaFuncSetAttribute(mla_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) setting the MLA wgmma kernel's shared memory", cudaGetErrorName(err),
                  cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    mla_wgmma_kernel<<<dim3((unsigned)plan.tiles_bound, (unsigned)plan.splits), kThreads, bytes, stream>>>(p, plan);
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

}  // namespace mla
}  // namespace dsk
