// linear_fp8_w8a8.cuh: what dsk_linear_fp8_w8a8's two kernel families share (linear_fp8_w8a8.cu: mma.sync, any sm_80+;
// linear_fp8_w8a8_wgmma.cu: Hopper's wgmma): the arguments, the block tile (128 rows x 128 features = one weight scale
// block row x 128 k = one scale block), and the FP8 tile loads.
//
// Shared-memory tiles: 128 rows x 128 bytes (128 e4m3 of k), 16-byte chunk c of row r at chunk c ^ (r & 7)
// (mma_common.cuh's swz). That is exactly the hardware's 128-byte swizzle (address bits 4-6 XOR bits 7-9) when a tile
// starts on a 1024-byte boundary, so the wgmma family reads the same tiles through its matrix descriptors.
#pragma once

#include <cstdint>

#include "common.cuh"
#include "mma_common.cuh"

namespace dsk {
namespace w8a8 {

constexpr const char* kOp = "dsk_linear_fp8_w8a8";
constexpr int kBM = 128;
constexpr int kBN = 128;              // one weight scale block of features
constexpr int kBK = 128;              // one scale block of k; 128 bytes per tile row
constexpr int kTileBytes = kBM * kBK;  // 16 KiB per FP8 tile (x and w tiles alike: kBM == kBN)

struct Args {
    const uint8_t* qx;      // [m, in]
    const float* xs;        // [m, kb]
    const uint8_t* qw;      // [out, in]
    const float* ws;        // [ceil(out / 128), kb]
    const float* bias;      // [out] or NULL
    void* y;                // [m, out], rows y_stride apart
    int64_t m;
    int64_t y_stride;
    int in, out, kb;        // kb = ceil(in / 128)
};

// cp.async of k tile `kt` of the block's x rows [m0, m0 + 128) and w rows [n0, n0 + 128) into the swizzled tiles at
// s_x and s_w (shared addresses), zero fill outside [m, in] x [out, in]. `threads` threads (a multiple of 128) take
// part, thread `tid` copying chunk tid % 8 of rows tid / 8 + (threads / 8) i.
template <int kThreads>
__device__ __forceinline__ void load_tiles(const Args& a, uint32_t s_x, uint32_t s_w, int64_t m0, int n0, int kt,
                                          int tid) {
    static_assert(kThreads % 128 == 0 && kThreads <= 1024, "tile loads need a multiple of 128 threads");
    const int chunk = tid & 7;
    const int k = kt * kBK + chunk * 16;
#pragma unroll
    for (int i = 0; i < kBM / (kThreads / 8); ++i) {
        const int r = (tid >> 3) + (kThreads / 8) * i;
        const int64_t row = m0 + r;
        const bool ok_x = row < a.m && k < a.in;
        mma::cp_async16(s_x + mma::swz(r, chunk), ok_x ? a.qx + row * a.in + k : a.qx, ok_x);
        const int n = n0 + r;
        const bool ok_w = n < a.out && k < a.in;
        mma::cp_async16(s_w + mma::swz(r, chunk), ok_w ? a.qw + (int64_t)n * a.in + k : a.qw, ok_w);
    }
}

// The wgmma family (linear_fp8_w8a8_wgmma.cu). Whether this build holds it: the library was compiled for sm_90a
// (DSK_SM90A_BUILT, set by CMake when CMAKE_CUDA_ARCHITECTURES names 90a); it runs on cc 9.0 devices only.
bool wgmma_built();
int wgmma_smem_bytes();
cudaError_t launch_wgmma(const Args& a, bool bf16_out, cudaStream_t stream);

}  // namespace w8a8
}  // namespace dsk
