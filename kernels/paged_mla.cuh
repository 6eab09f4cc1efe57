// paged_mla.cuh: what dsk_paged_mla_attention's two tensor-core variants share (paged_mla_mma.cu: mma.sync on sm_80+,
// the plan and combine kernels, the host side; paged_mla_wgmma.cu: Hopper's warpgroup MMA, sm_90a): the block's row
// tile of (query, head) rows of one sequence, the swizzled shared tiles, and the copies of Q and of a key tile into them.
//
// Shared tiles: a tile of 64 rows x d bf16 is stored as d / 64 sub-tiles of 64 rows x 64 columns (8 KiB each); within a
// sub-tile, row r's 16-byte chunk c sits at r * 128 + ((c ^ (r & 7)) << 4) (mma_common.cuh's swz). On a 1024-byte-aligned
// sub-tile that is exactly the 128-byte swizzle wgmma's descriptors name, K-major (Q and K in S = Q K^T, P in P V) and
// MN-major (V = the key tile's first 512 columns, read as the B operand of P V without a transpose).
#pragma once

#include <cuda_runtime.h>

#include "mma_common.cuh"
#include "paged_attention.cuh"

namespace dsk {
namespace mla {

constexpr int kRows = 64;           // (query, head) rows per block
constexpr int kKeys = 64;           // keys per tile
constexpr int kDV = 512;            // v_head_dim (the latent width)
constexpr int kThreads = 256;       // 8 warps (two warpgroups)
constexpr int kSubBytes = 64 * 128; // one 64-row x 64-column bf16 sub-tile

__host__ __device__ constexpr int tile_bytes(int d) { return d * 128; }  // 64 rows x d bf16

struct MlaPlan {
    const int32_t* tile_start;  // [batch + 1]
    float* ws_lse;              // [splits, tokens * heads]   (splits > 1)
    float* ws_o;                // [splits, tokens * heads, 512]
    int64_t tiles_bound;        // grid.x: an upper bound of tile_start[batch]
    int splits;
    float scale_log2;           // scale * log2(e)
};

// Byte offset in a tile stored as 64-column sub-tiles of swizzled 128-byte rows: row r, 16-byte chunk c (8 columns).
__device__ __forceinline__ uint32_t tile_off(int r, int c) { return (uint32_t)((c >> 3) * kSubBytes) + mma::swz(r, c & 7); }

// The block's row tile: sequence b (largest b with tile_start[b] <= x), its first row R0 and live rows.
struct RowTile {
    int64_t b;
    int64_t r0;    // first row of the tile within the sequence's n * heads rows
    int64_t grow0; // global row (token * heads + head) of tile row 0
    int rows;      // live rows (<= 64)
};

__device__ __forceinline__ bool find_tile(const dsk_paged_attention_params& p, const int32_t* tile_start, int64_t x,
                                          PagedSequence* seq, RowTile* t) {
    if (x >= __ldg(tile_start + p.batch)) return false;
    int64_t lo = 0, hi = p.batch - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (__ldg(tile_start + mid) <= x) lo = mid;
        else hi = mid - 1;
    }
    *seq = load_sequence(p, lo);
    t->b = lo;
    t->r0 = (x - __ldg(tile_start + lo)) * kRows;
    const int64_t rows = (int64_t)seq->n * p.q_heads - t->r0;
    if (rows <= 0) return false;  // only with inconsistent metadata (the plan gave this sequence its tiles)
    t->rows = rows < kRows ? (int)rows : kRows;
    t->grow0 = (int64_t)seq->q0 * p.q_heads + t->r0;
    return true;
}

// The block's key range: split blockIdx.y takes key tiles [t_begin, t_begin + n_tiles) of the sequence, cut at the last
// key any row of the tile attends to (n_tiles may be <= 0: nothing to do).
struct KeyRange {
    int32_t t_begin;
    int32_t n_tiles;
};
__device__ __forceinline__ KeyRange key_range(const PagedSequence& seq, const RowTile& tile, int heads, int splits) {
    const int32_t i_last = (int32_t)((tile.r0 + tile.rows - 1) / heads);
    const int32_t key_end = seq.L - seq.n + i_last + 1;
    const int32_t seq_tiles = (seq.L + kKeys - 1) / kKeys;
    const int32_t per_split = (seq_tiles + splits - 1) / splits;
    KeyRange r;
    r.t_begin = (int32_t)blockIdx.y * per_split;
    const int32_t t_stop = (key_end + kKeys - 1) / kKeys;
    r.n_tiles = (r.t_begin + per_split < t_stop ? r.t_begin + per_split : t_stop) - r.t_begin;
    return r;
}

// Key tile kt of the sequence into the tile at shared address dst with cp.async, rows gathered through the block table
// (rows past L, or behind a bad table entry, zero-filled: never read from the pool). Thread tid moves row tid / 4, chunks
// tid % 4 + 4 i. The caller commits.
__device__ __forceinline__ void load_key_tile(const dsk_paged_attention_params& p, const PagedSequence& seq,
                                              const RowTile& tile, int32_t kt, uint32_t dst, int tid) {
    const int lrow = tid >> 2, lc = tid & 3, d = (int)p.head_dim;
    const int32_t j = kt * kKeys + lrow;
    const __nv_bfloat16* const pages = static_cast<const __nv_bfloat16*>(p.key_pages);
    const __nv_bfloat16* src = pages;
    bool ok = false;
    if (j < seq.L) {
        const int32_t page = page_of(p, tile.b, j);
        if (page >= 0) {
            ok = true;
            src = pages + ((int64_t)page * p.page_size + j % p.page_size) * d;
        }
    }
    for (int c = lc; c < d / 8; c += 4) mma::cp_async16(dst + tile_off(lrow, c), ok ? src + c * 8 : pages, ok);
}

// The block's Q tile (64 rows x head_dim, rounded to bf16; rows past the live ones zero) at shared address s_q
// (`smem` + s_q - smem_addr(smem) is its generic address): bf16 q by cp.async (the caller commits), f32 q converted
// on the way. Same thread mapping as load_key_tile.
__device__ __forceinline__ void load_q_tile(const dsk_paged_attention_params& p, const RowTile& tile, uint32_t s_q,
                                            uint8_t* q_generic, int tid) {
    const int lrow = tid >> 2, lc = tid & 3, d = (int)p.head_dim;
    const bool ok = lrow < tile.rows;
    const int64_t qrow = ok ? (tile.grow0 + lrow) * d : 0;
    if (p.q_dtype == DSK_DTYPE_BF16) {
        const __nv_bfloat16* src = static_cast<const __nv_bfloat16*>(p.q) + qrow;
        for (int c = lc; c < d / 8; c += 4) mma::cp_async16(s_q + tile_off(lrow, c), src + c * 8, ok);
    } else {
        const float* src = static_cast<const float*>(p.q) + qrow;
        for (int c = lc; c < d / 8; c += 4) {
            float v[8];
            if (ok) {
                load_ro_widen<float, 8>(src + c * 8, v);
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e) v[e] = 0.0f;
            }
            st16(q_generic + tile_off(lrow, c), pack16<__nv_bfloat16>(v));
        }
    }
}

// ---- The Hopper variant (paged_mla_wgmma.cu). -------------------------------------------------------------------------
// Shared memory it needs for head_dim d (Q, two key stages, P, row statistics, 1024 bytes of alignment slack).
int wgmma_smem_bytes(int d);
// Whether it can run here: the library holds sm_90a code, the device is cc 9.0 with that much shared memory per block.
bool wgmma_runs_here(int d);
// Enqueues the main kernel (grid tiles_bound x splits); the plan kernel ran before it and the combine follows.
dsk_status wgmma_launch(const char* op, const dsk_paged_attention_params& p, const MlaPlan& plan, cudaStream_t stream);

}  // namespace mla
}  // namespace dsk
