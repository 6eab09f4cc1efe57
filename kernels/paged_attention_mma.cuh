// paged_attention_mma.cuh: what dsk_paged_attention's two GQA tensor-core variants share (paged_attention_mma.cu:
// mma.sync on sm_80+, with the plan kernel and the host side; paged_attention_wgmma.cu: Hopper's warpgroup MMA,
// sm_90a): the 128-row query tile a block takes (found from the plan's cum[] and the block id, head fastest), and the
// copies of its Q tile and of a K/V tile into shared memory.
//
// Shared tiles: a tile of R rows x D bf16 is stored as D / 64 panels of R rows x 64 columns; within a panel row r's
// 16-byte chunk c sits at r * 128 + ((c ^ (r & 7)) << 4) (mma_common.cuh's swz): conflict-free for cp.async and
// ldmatrix, and on 1024-byte-aligned panels exactly the 128-byte swizzle of wgmma's descriptors (K-major for Q and K,
// MN-major for V as the B operand of P V).
#pragma once

#include <cuda_runtime.h>

#include "mma_common.cuh"
#include "paged_attention.cuh"

namespace dsk {
namespace gqa {

constexpr int kBM = 128;  // query rows per block (the plan counts tiles of this many)

// Offset of 16-byte chunk c (of D / 8) of row r in a tile of `rows` rows stored as D / 64 swizzled panels.
__device__ __forceinline__ uint32_t tile_off(int rows, int r, int c) {
    return (uint32_t)((c >> 3) * rows * 128) + mma::swz(r, c & 7);
}

// The block's query tile: rows i0 .. i0 + rows - 1 of sequence b for q head h (kv head kvh).
struct QueryTile {
    int64_t b;
    PagedSequence seq;
    int32_t i0, rows;
    int32_t offset;  // position of query i = offset + i
    int h, kvh;
};

// Block id -> (tile slot, q head) with the head fastest; the slot finds its sequence by binary search in cum (the
// plan's exclusive prefix of query tiles); within a sequence the last (longest causal) tiles go first. False when the
// block has no tile (past the end, or a sequence the plan skipped): block-uniform.
__device__ __forceinline__ bool find_query_tile(const dsk_paged_attention_params& p, const int32_t* cum, QueryTile* t) {
    const int64_t slot = blockIdx.x / p.q_heads;
    t->h = (int)(blockIdx.x % p.q_heads);
    const int32_t total = __ldg(cum + p.batch);
    if (slot >= total) return false;
    int64_t lo = 0, hi = p.batch;  // cum[lo] <= slot < cum[hi]
    while (hi - lo > 1) {
        const int64_t mid = (lo + hi) / 2;
        if (__ldg(cum + mid) <= slot) lo = mid; else hi = mid;
    }
    t->b = lo;
    t->seq = load_sequence(p, lo);
    if (t->seq.n <= 0) return false;  // the plan gave it no tiles; kept as a guard
    const int32_t first = __ldg(cum + lo), tiles = __ldg(cum + lo + 1) - first;
    t->i0 = (tiles - 1 - (int32_t)(slot - first)) * kBM;
    t->rows = t->seq.n - t->i0 < kBM ? t->seq.n - t->i0 : kBM;
    t->offset = t->seq.L - t->seq.n;
    t->kvh = t->h / (int)(p.q_heads / p.kv_heads);
    return true;
}

// Q tile: rows i0 .. i0 + 127 of the sequence (zeros past n), rounded to bf16, at shared address s_q (generic address
// q_generic): bf16 q by cp.async (the caller commits), f32 q converted on the way.
template <int D, int kThreads>
__device__ __forceinline__ void load_q_tile(const dsk_paged_attention_params& p, const QueryTile& t, uint32_t s_q,
                                            uint8_t* q_generic, int tid) {
    constexpr int kChunks = D / 8;
    const bool q_f32 = p.q_dtype == DSK_DTYPE_F32;
#pragma unroll
    for (int it = 0; it < kBM * kChunks / kThreads; ++it) {
        const int idx = tid + it * kThreads, r = idx / kChunks, c = idx % kChunks;
        const bool valid = r < t.rows;
        const int64_t elem = ((int64_t)(t.seq.q0 + t.i0 + (valid ? r : 0)) * p.q_heads + t.h) * D + c * 8;
        const uint32_t off = tile_off(kBM, r, c);
        if (!q_f32) {
            mma::cp_async16(s_q + off, static_cast<const __nv_bfloat16*>(p.q) + elem, valid);
        } else {
            uint4 v = make_uint4(0, 0, 0, 0);
            if (valid) {
                float f[8];
                load_ro_widen<float, 8>(static_cast<const float*>(p.q) + elem, f);
                v = pack16<__nv_bfloat16>(f);
            }
            *reinterpret_cast<uint4*>(q_generic + off) = v;
        }
    }
}

// K/V tile kt (keys kt * kBN ..) into the tiles at shared addresses sk and sv with cp.async (the caller commits):
// chunk (r, c) of key j = kt * kBN + r through its page: block_table[b, j / page_size] (the plan checked the entries;
// checked again here) and row j % page_size of that page; keys past L (or behind a bad entry) are zero-filled, never
// read, so a tile may span several pages or part of one.
template <int D, int kBN, int kThreads>
__device__ __forceinline__ void load_kv_tile(const dsk_paged_attention_params& p, const QueryTile& t, int kt, uint32_t sk,
                                             uint32_t sv, int tid) {
    constexpr int kChunks = D / 8;
    const __nv_bfloat16* kpages = static_cast<const __nv_bfloat16*>(p.key_pages);
    const __nv_bfloat16* vpages = static_cast<const __nv_bfloat16*>(p.value_pages);
    const int64_t row_elems = p.kv_heads * (int64_t)D;
    const int32_t* table = p.block_table + t.b * p.max_pages;
    const uint32_t page_size = (uint32_t)p.page_size;  // pages * page_size < 2^31: 32-bit division
#pragma unroll
    for (int it = 0; it < kBN * kChunks / kThreads; ++it) {
        const int idx = tid + it * kThreads, r = idx / kChunks, c = idx % kChunks;
        const int32_t j = kt * kBN + r;
        int64_t slot_index = -1;
        if (j < t.seq.L) {
            const uint32_t pg = (uint32_t)j / page_size;
            const int32_t page = __ldg(table + pg);
            if (page >= 0 && (int64_t)page < p.pages) slot_index = (int64_t)page * page_size + ((uint32_t)j - pg * page_size);
        }
        const bool valid = slot_index >= 0;
        const int64_t elem = valid ? slot_index * row_elems + t.kvh * D + c * 8 : 0;
        const uint32_t off = tile_off(kBN, r, c);
        mma::cp_async16(sk + off, kpages + elem, valid);
        mma::cp_async16(sv + off, vpages + elem, valid);
    }
}

// Epilogue of both variants: this thread's accumulators o (D / 2 floats: o[4 c + 2 h + e] is tile row row0 + 8 h, column
// 8 c + 2 (lane % 4) + e, the fragment of mma.sync's n8 tiles and of wgmma's D alike) divided by the row sums (l: this
// thread's parts, added over the quad here) and rounded once to out_dtype; rows past the sequence's n are not written.
template <int D>
__device__ __forceinline__ void store_rows(const dsk_paged_attention_params& p, const QueryTile& t, int32_t row0, int lane,
                                           const float* o, float (&l)[2]) {
    const bool out_f32 = p.out_dtype == DSK_DTYPE_F32;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
        const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
        const int32_t i = row0 + 8 * h;
        if (i >= t.seq.n) continue;
        const int64_t base = ((int64_t)(t.seq.q0 + i) * p.q_heads + t.h) * D + 2 * (lane & 3);
#pragma unroll
        for (int c = 0; c < D / 8; ++c) {
            const float v0 = o[4 * c + 2 * h] * inv, v1 = o[4 * c + 2 * h + 1] * inv;
            if (out_f32) {
                *reinterpret_cast<float2*>(static_cast<float*>(p.out) + base + c * 8) = make_float2(v0, v1);
            } else {
                *reinterpret_cast<uint32_t*>(static_cast<__nv_bfloat16*>(p.out) + base + c * 8) = float_to_bf16x2(v0, v1);
            }
        }
    }
}

// ---- The Hopper variant (paged_attention_wgmma.cu). --------------------------------------------------------------------
// Shared memory it needs for head_dim d (64 or 128), 1024 bytes of alignment slack included.
int wgmma_smem_bytes(int d);
// Whether it can run here: the library holds sm_90a code, the device is cc 9.0 with that much shared memory per block.
bool wgmma_runs_here(int d);
// Enqueues the forward kernel over `blocks` blocks (the plan kernel ran before it on the stream).
dsk_status wgmma_launch(const char* op, const dsk_paged_attention_params& p, const int32_t* cum, int64_t blocks,
                        cudaStream_t stream);

}  // namespace gqa
}  // namespace dsk
