// paged_attention_wgmma.cu: the Hopper variant of dsk_paged_attention's GQA tensor-core family (sm_90a): the same plan,
// query tiles, grid and math as the mma.sync variant (paged_attention_mma.cu, which launches this one on a cc 9.0 GPU of
// a library built for sm_90a unless the path is MMA_SYNC), with both products on warpgroup MMA, FlashAttention-3's
// shape without its producer warpgroup and ping-pong scheduling.
//
// Block: 256 threads = two warpgroups over one 128-row query tile of one sequence and q head; warpgroup w owns query
// rows 64 w .. 64 w + 63. Key tiles of 128 keys (K and V, gathered through the block table with cp.async into swizzled
// 64-column panels, double-buffered: tile kt + 1 loads while tile kt is multiplied). Per key tile, each warpgroup whose
// rows reach the tile (causal: a warpgroup skips the tiles past its last row's position):
//   S = Q K^T (64 x 128 fp32) on wgmma m64n128k16, D / 16 steps, A = its 64 rows of the Q tile, B = the K tile, both
//     K-major from shared memory; thread t holds rows 16 (t / 32) % 4 + (t % 32) / 4 + {0, 8}, 32 keys each;
//   the causal mask where the tile straddles the rows' positions, the online softmax in the exp2 domain (row max over
//     the quad's shuffles), O rescaled by alpha in registers;
//   P rounded to bf16 in registers (two n8 column tiles of S's fragment are one k16 A fragment), O += P V on wgmma
//     m64nDk16 with A from registers and B = the V tile read MN-major (.tnspB): no shared-memory round trip for P and
//     no transposed copy of V.
// Every wgmma batch is committed and waited for at once; barriers: tile landed, stage free. Shared memory: Q 128 x D,
// 2 x (K, V) 128 x D: 160 KiB at D = 128, 80 KiB at D = 64 (+1 KiB alignment), one block per SM.
//
// Numerics as the mma.sync variant: q and P rounded to bf16, fp32 softmax and accumulation (the order within a wgmma is
// the hardware's), the row sum over the fp32 weights, out rounded once. Not done: TMA, a producer warpgroup with
// setmaxnreg, overlapping one warpgroup's softmax with the other's GEMMs (FlashAttention-3's ping-pong), intra-warpgroup
// overlap of S of tile kt + 1 with the softmax of tile kt.
#include <climits>
#include <cmath>

#include "paged_attention_mma.cuh"

namespace dsk {
namespace gqa {

namespace {

constexpr int kBN = 128;       // keys per K/V tile
constexpr int kThreads = 256;  // two warpgroups

template <int D> constexpr int smem_layout_bytes() { return (D / 64) * (kBM * 128 + 4 * kBN * 128); }  // Q + 2 x (K, V)

template <int D>
__global__ void __launch_bounds__(kThreads, 1) paged_wgmma_fwd(const dsk_paged_attention_params p, const int32_t* cum) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    constexpr int kPanels = D / 64;
    constexpr uint32_t kPanelQ = kBM * 128, kPanelKV = kBN * 128;
    constexpr uint32_t kTileKV = kPanels * kPanelKV;
    extern __shared__ __align__(128) uint8_t smem_raw[];
    // The descriptors' 128-byte swizzle is on addresses: every panel starts on a 1024-byte boundary.
    uint8_t* const smem = smem_raw + ((1024u - (mma::smem_addr(smem_raw) & 1023u)) & 1023u);
    const uint32_t s_q = mma::smem_addr(smem);
    const uint32_t s_kv = s_q + kPanels * kPanelQ;  // stage s: K at s_kv + s * 2 * kTileKV, V after it

    QueryTile qt;
    if (!find_query_tile(p, cum, &qt)) return;  // block-uniform
    const PagedSequence& seq = qt.seq;
    const int32_t num_kt = (qt.offset + qt.i0 + qt.rows - 1) / kBN + 1;  // key tiles up to the last row's position

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wg = warp >> 2, wv = warp & 3, g = lane >> 2, qd = lane & 3;

    load_q_tile<D, kThreads>(p, qt, s_q, smem, tid);
    auto load_kv = [&](int kt) {
        const uint32_t sk = s_kv + (kt & 1) * 2 * kTileKV;
        load_kv_tile<D, kBN, kThreads>(p, qt, kt, sk, sk + kTileKV, tid);
    };

    // This warpgroup's rows (sequence rows wrow ..) and this thread's two (rows past n take the last row's position:
    // their results are not written).
    const int32_t wrow = qt.i0 + wg * 64;
    const bool wg_live = wrow < seq.n;
    const int32_t last_row = seq.n - 1;
    const int32_t w_lo = qt.offset + (wrow < last_row ? wrow : last_row);
    const int32_t w_hi = qt.offset + (wrow + 63 < last_row ? wrow + 63 : last_row);
    int32_t pos[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int32_t r = wrow + wv * 16 + g + 8 * h;
        pos[h] = qt.offset + (r < last_row ? r : last_row);
    }
    const float scale_log2 = p.scale * 1.4426950408889634f;
    const uint32_t q_wg = s_q + wg * 64 * 128;  // this warpgroup's 64 rows of each Q panel (8 KiB in: 1024-aligned)

    float o[D / 2];  // o[4 c + 2 h + e]: row 16 wv + g + 8 h of the warpgroup, column 8 c + 2 qd + e
#pragma unroll
    for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    load_kv(0);
    mma::cp_async_commit();  // group 0: Q (bf16) and tile 0
    for (int kt = 0; kt < num_kt; ++kt) {
        if (kt + 1 < num_kt) load_kv(kt + 1);
        mma::cp_async_commit();
        mma::cp_async_wait<1>();
        mma::fence_proxy_async();  // this thread's copies (and f32 q stores), visible to wgmma's proxy
        __syncthreads();           // tile kt (and Q) landed for every thread
        const int32_t k0 = kt * kBN;
        if (wg_live && k0 <= w_hi) {  // warpgroup-uniform
            const uint32_t sk = s_kv + (kt & 1) * 2 * kTileKV, sv = sk + kTileKV;
            float s[64];  // s[4 c + 2 h + e]: row 16 wv + g + 8 h, key k0 + 8 c + 2 qd + e
#pragma unroll
            for (int i = 0; i < 64; ++i) s[i] = 0.0f;
            mma::wgmma_fence_operand(s);
            mma::wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < D / 16; ++ks) {
                const uint32_t koff = 32 * (ks & 3);  // k16 step within a panel: 32 bytes of each row
                mma::wgmma_m64n128k16_bf16(s, mma::wgmma_desc_sw128(q_wg + (ks >> 2) * kPanelQ + koff),
                                           mma::wgmma_desc_sw128(sk + (ks >> 2) * kPanelKV + koff), ks > 0);
            }
            mma::wgmma_commit();
            mma::wgmma_wait<0>();
            mma::wgmma_fence_operand(s);

            // Online softmax in the log2 domain; keys past a row's position are masked (only in straddling tiles).
            const bool masked = k0 + kBN - 1 > w_lo;
            float alpha[2], m_use[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                float mx = -INFINITY;
#pragma unroll
                for (int c = 0; c < 16; ++c)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        float& x = s[4 * c + 2 * h + e];
                        x *= scale_log2;
                        if (masked && k0 + 8 * c + 2 * qd + e > pos[h]) x = -INFINITY;
                        mx = fmaxf(mx, x);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m[h], mx);
                m_use[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing unmasked yet
                alpha[h] = exp2f(m[h] - m_use[h]);
                m[h] = m_new;
                l[h] *= alpha[h];
            }
#pragma unroll
            for (int c = 0; c < D / 8; ++c)
#pragma unroll
                for (int i = 0; i < 4; ++i) o[4 * c + i] *= alpha[i >> 1];
            // P = exp2(S - m) as bf16 A fragments: k16 step kk takes keys 16 kk .. + 15 = S column tiles 2 kk, 2 kk + 1.
            uint32_t pa[8][4];
#pragma unroll
            for (int kk = 0; kk < 8; ++kk)
#pragma unroll
                for (int half = 0; half < 2; ++half)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int i = 4 * (2 * kk + half) + 2 * h;
                        const float w0 = exp2f(s[i] - m_use[h]), w1 = exp2f(s[i + 1] - m_use[h]);
                        l[h] += w0 + w1;  // this thread's part of the row sum; the quad's parts are added at the end
                        pa[kk][2 * half + h] = float_to_bf16x2(w0, w1);
                    }
            // O += P V: V's k16 step kk = its rows 16 kk .. (2048 bytes into each panel), the panels 64 columns apart.
            mma::wgmma_fence_operand(o);
#pragma unroll
            for (int kk = 0; kk < 8; ++kk) mma::wgmma_fence_operand(pa[kk]);  // every A fragment written before the fence
            mma::wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 8; ++kk) {
                const uint64_t db = mma::wgmma_desc_mn_sw128(sv + kk * 2048, kPanelKV, 1024);
                if constexpr (D == 128) {
                    mma::wgmma_m64n128k16_bf16_rs_bmn(o, pa[kk], db, true);
                } else {
                    mma::wgmma_m64n64k16_bf16_rs_bmn(o, pa[kk], db, true);
                }
            }
            mma::wgmma_commit();
            mma::wgmma_wait<0>();
            mma::wgmma_fence_operand(o);
        }
        __syncthreads();  // both warpgroups are done with stage kt & 1 before tile kt + 2 refills it
    }
    mma::cp_async_wait<0>();

    if (!wg_live) return;
    store_rows<D>(p, qt, wrow + wv * 16 + g, lane, o, l);
#else
    (void)p;
    (void)cum;
#endif
}

template <int D> dsk_status launch(const char* op, const dsk_paged_attention_params& p, const int32_t* cum, int64_t blocks,
                                   cudaStream_t stream) {
    const int bytes = wgmma_smem_bytes(D);
    const cudaError_t err = cudaFuncSetAttribute(paged_wgmma_fwd<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) setting the attention wgmma kernel's shared memory", cudaGetErrorName(err),
                  cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    paged_wgmma_fwd<D><<<(unsigned)blocks, kThreads, bytes, stream>>>(p, cum);
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

}  // namespace

int wgmma_smem_bytes(int d) { return (d == 64 ? smem_layout_bytes<64>() : smem_layout_bytes<128>()) + 1024; }

bool wgmma_runs_here(int d) { return wgmma_preferred(wgmma_smem_bytes(d)); }

dsk_status wgmma_launch(const char* op, const dsk_paged_attention_params& p, const int32_t* cum, int64_t blocks,
                        cudaStream_t stream) {
    return p.head_dim == 64 ? launch<64>(op, p, cum, blocks, stream) : launch<128>(op, p, cum, blocks, stream);
}

}  // namespace gqa
}  // namespace dsk
