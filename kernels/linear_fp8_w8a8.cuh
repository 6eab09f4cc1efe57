// linear_fp8_w8a8.cuh: what dsk_linear_fp8_w8a8's and dsk_grouped_linear_fp8_w8a8's two kernel families share
// (linear_fp8_w8a8.cu: mma.sync, any sm_80+; linear_fp8_w8a8_wgmma.cu: Hopper's wgmma): the arguments, the block tile
// (128 rows x 128 features = one weight scale block row x 128 k = one scale block), where a block's rows and matrix
// come from (block_rows), and the FP8 tile loads.
//
// Grouped (the MoE experts, DeepGEMM's "contiguous" grouped GEMM): x's rows are grouped by expert (expert_offsets, device
// data), the weight is a stack of w.count matrices, and each block's 128-row tile lies inside one expert's rows
// (linear.cuh's row_tile: expert e owns ceil(rows_e / 128) consecutive tiles, found by a warp prefix sum over the
// offsets, which every block checks). So no padding of the rows is needed, and one launch covers every expert.
//
// Shared-memory tiles: 128 rows x 128 bytes (128 e4m3 of k), 16-byte chunk c of row r at chunk c ^ (r & 7)
// (mma_common.cuh's swz). That is exactly the hardware's 128-byte swizzle (address bits 4-6 XOR bits 7-9) when a tile
// starts on a 1024-byte boundary, so the wgmma family reads the same tiles through its matrix descriptors.
#pragma once

#include <cstdint>

#include "common.cuh"
#include "linear.cuh"
#include "mma_common.cuh"

namespace dsk {
namespace w8a8 {

constexpr const char* kOp = "dsk_linear_fp8_w8a8";
constexpr const char* kGroupedOp = "dsk_grouped_linear_fp8_w8a8";
constexpr int kBM = 128;
constexpr int kBN = 128;              // one weight scale block of features
constexpr int kBK = 128;              // one scale block of k; 128 bytes per tile row
constexpr int kTileBytes = kBM * kBK;  // 16 KiB per FP8 tile (x and w tiles alike: kBM == kBN)

struct Args {
    const uint8_t* qx;      // [m, in]
    const float* xs;        // [m, kb]
    const uint8_t* qw;      // [count, out, in]
    const float* ws;        // [count, ceil(out / 128), kb]
    const float* bias;      // [out] or NULL
    void* y;                // [m, out], rows y_stride apart
    int64_t m;
    int64_t y_stride;
    int in, out, kb;        // kb = ceil(in / 128)
    RowTiles rt;            // grouped: the expert offsets (rt.offsets NULL: one matrix, rows [0, m))
};

// The rows of the block's tile and its matrix: rows [row0, row0 + 128) below row_end, of matrix `mat`, whose FP8 values
// and scales start at qw and ws. False: nothing to do (past the last grouped tile, or bad offsets): the block exits.
// Every thread of the block calls it and gets the same answer.
struct BlockRows {
    int64_t row0, row_end;
    const uint8_t* qw;
    const float* ws;
};

__device__ __forceinline__ bool block_rows(const Args& a, BlockRows& b) {
    int64_t mat = 0;
    if (!row_tile<kBM>(a.rt, a.m, (int64_t)blockIdx.x, 0, mat, b.row0, b.row_end)) return false;
    b.qw = a.qw + mat * (int64_t)a.out * a.in;
    b.ws = a.ws + mat * (int64_t)((a.out + kBN - 1) / kBN) * a.kb;
    return true;
}

// Row tiles of a launch (grid x): ceil(m / 128), or the grouped bound from host sizes (linear.cuh).
inline int64_t row_tiles(const Args& a) {
    return a.rt.offsets == nullptr ? (a.m + kBM - 1) / kBM : grouped_row_tiles(a.m, a.rt.count, kBM);
}

// cp.async of k tile `kt` of the block's x rows [b.row0, b.row0 + 128) and w rows [n0, n0 + 128) of its matrix into
// the swizzled tiles at s_x and s_w (shared addresses), zero fill outside [row0, row_end) x [0, in) and [0, out) x
// [0, in). `threads` threads (a multiple of 128) take part, thread `tid` copying chunk tid % 8 of rows
// tid / 8 + (threads / 8) i.
template <int kThreads>
__device__ __forceinline__ void load_tiles(const Args& a, const BlockRows& b, uint32_t s_x, uint32_t s_w, int n0, int kt,
                                          int tid) {
    static_assert(kThreads % 128 == 0 && kThreads <= 1024, "tile loads need a multiple of 128 threads");
    const int chunk = tid & 7;
    const int k = kt * kBK + chunk * 16;
#pragma unroll
    for (int i = 0; i < kBM / (kThreads / 8); ++i) {
        const int r = (tid >> 3) + (kThreads / 8) * i;
        const int64_t row = b.row0 + r;
        const bool ok_x = row < b.row_end && k < a.in;
        mma::cp_async16(s_x + mma::swz(r, chunk), ok_x ? a.qx + row * a.in + k : a.qx, ok_x);
        const int n = n0 + r;
        const bool ok_w = n < a.out && k < a.in;
        mma::cp_async16(s_w + mma::swz(r, chunk), ok_w ? b.qw + (int64_t)n * a.in + k : b.qw, ok_w);
    }
}

// The wgmma family (linear_fp8_w8a8_wgmma.cu). Whether this build holds it: the library was compiled for sm_90a
// (DSK_SM90A_BUILT, set by CMake when CMAKE_CUDA_ARCHITECTURES names 90a); it runs on cc 9.0 devices only.
bool wgmma_built();
int wgmma_smem_bytes();
cudaError_t launch_wgmma(const Args& a, bool bf16_out, cudaStream_t stream);

}  // namespace w8a8
}  // namespace dsk
