// linear_fp8_w8a8_wgmma.cu: the Hopper family (DSK_W8A8_PATH_WGMMA) of dsk_linear_fp8_w8a8 and
// dsk_grouped_linear_fp8_w8a8: warpgroup FP8 tensor cores, DeepGEMM's scaling (1 x 128 activation blocks, 128 x 128
// weight blocks, promotion to fp32 after every 128-wide k block), the formula and tiles of linear_fp8_w8a8.cu/.cuh.
//
// Why a second family: Hopper has no FP8 mma.sync of its own. ptxas lowers mma.sync m16n8k32 e4m3 for sm_90 to an
// e4m3 -> f16 unpack and f16 HMMA (the SASS of a CUDA 12.4 sm_90 build: F2FP.F16.E4M3.UNPACK + HMMA.16816.F32, no
// FP8 MMA instruction), so the mma.sync family runs at the bf16 rate at best; only wgmma reaches the FP8 rate (twice
// bf16's dense peak).
//
// Block: 128 rows x 128 features (one weight scale block row) x 128 k (one scale block) per k tile, as the mma.sync
// family, on two warpgroups: warpgroup g owns rows 64 g .. 64 g + 63 and all 128 features, one
// wgmma.m64n128k32.e4m3 per k32 slice (4 per k tile) reading both operands straight from shared memory through
// 128-byte-swizzle descriptors (the tiles' swz layout is that swizzle on 1024-byte-aligned tiles). A 4-stage cp.async
// pipeline (all 256 threads load; zero fill outside [m, in] x [out, in]); after each tile's cp.async wait, each
// thread fences its writes into the async proxy (fence.proxy.async) before the block barrier. Each k tile's wgmmas
// start from zero (scale-d = 0 on the first) into `part`, which is then scaled by xs[row, kt] * ws[n0 / 128, kt] and
// added to the fp32 accumulators `acc`, as the mma.sync family does. This is DeepGEMM's math loop (its sm_90 FP8 GEMM:
// descriptor starts tile + warpgroup * 64 rows * 128 bytes + k * 32 in the 128-byte swizzle, wgmma, wait, promote) with
// cp.async loads instead of its TMA producer warpgroup, which is why this kernel needs the proxy fence and it does not.
//
// Not done: TMA loads with a producer warpgroup and setmaxnreg (DeepGEMM's structure), overlapping a tile's promotion
// with the next tile's wgmma (two `part` sets), 256-wide feature tiles, persistent scheduling.
#include "common.cuh"
#include "linear_fp8_w8a8.cuh"
#include "mma_common.cuh"

// The kernel body exists only in device code for sm_90a (DSK_WGMMA_DEVICE_CODE, mma_ptx.cuh; and in the host
// emulation, kernels/tests/emu); elsewhere it is empty and never launched (the entry point checks wgmma_built() and the
// device).

namespace dsk {
namespace {

using namespace w8a8;
constexpr int kStages = 4;
constexpr int kThreads = 256;                                 // two warpgroups
constexpr int kSmemBytes = kStages * 2 * kTileBytes + 1024;  // + room to start the tiles on a 1024-byte boundary

template <typename TOut>
__global__ void __launch_bounds__(kThreads, 1) linear_fp8_w8a8_wgmma_kernel(const Args a) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    extern __shared__ __align__(128) uint8_t smem[];
    const uint32_t base = (mma::smem_addr(smem) + 1023u) & ~1023u;
    const uint32_t s_x = base;
    const uint32_t s_w = base + kStages * kTileBytes;

    BlockRows b;
    if (!block_rows(a, b)) return;  // the same answer in every thread: before any barrier
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wg = warp >> 2;
    const int n0 = blockIdx.y * kBN;
    const int k_tiles = a.kb;

    auto load_stage = [&](int kt) {
        const int stage = kt % kStages;
        load_tiles<kThreads>(a, b, s_x + stage * kTileBytes, s_w + stage * kTileBytes, n0, kt, tid);
    };

    float acc[64], part[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) {
        acc[i] = 0.0f;
        part[i] = 0.0f;
    }

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < k_tiles) load_stage(s);
        mma::cp_async_commit();
    }

    // This thread's rows of the warpgroup's 64: r_lo and r_lo + 8.
    const int64_t r_lo = b.row0 + wg * 64 + (warp & 3) * 16 + (lane >> 2);
    for (int kt = 0; kt < k_tiles; ++kt) {
        mma::cp_async_wait<kStages - 2>();
        mma::fence_proxy_async();
        __syncthreads();
        if (kt + kStages - 1 < k_tiles) load_stage(kt + kStages - 1);
        mma::cp_async_commit();

        const int stage = kt % kStages;
        const uint32_t sx = s_x + stage * kTileBytes + wg * 64 * kBK;  // this warpgroup's 64 rows (8 KiB, 1024-aligned)
        const uint32_t sw = s_w + stage * kTileBytes;
        mma::wgmma_fence_operand(part);
        mma::wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < kBK / 32; ++ks)
            mma::wgmma_m64n128k32_e4m3(part, mma::wgmma_desc_sw128(sx + 32 * ks), mma::wgmma_desc_sw128(sw + 32 * ks),
                                       ks > 0);
        mma::wgmma_commit();
        mma::wgmma_wait<0>();
        mma::wgmma_fence_operand(part);

        // Promotion: acc += (xs[row, kt] * ws[n0 / 128, kt]) * part.
        const float ws = __ldg(b.ws + (int64_t)blockIdx.y * a.kb + kt);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = r_lo + 8 * h;
            const float s = row < b.row_end ? __ldg(a.xs + row * a.kb + kt) * ws : 0.0f;
#pragma unroll
            for (int c = 0; c < 16; ++c) {
                acc[4 * c + 2 * h] += s * part[4 * c + 2 * h];
                acc[4 * c + 2 * h + 1] += s * part[4 * c + 2 * h + 1];
            }
        }
    }
    mma::cp_async_wait<0>();

    TOut* y = static_cast<TOut*>(a.y);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int64_t row = r_lo + 8 * h;
        if (row >= b.row_end) continue;
        TOut* y_row = y + row * a.y_stride;
#pragma unroll
        for (int c = 0; c < 16; ++c) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int n = n0 + 8 * c + 2 * (lane & 3) + e;
                if (n >= a.out) continue;
                float v = acc[4 * c + 2 * h + e];
                if (a.bias != nullptr) v += __ldg(a.bias + n);
                y_row[n] = from_float<TOut>(v);
            }
        }
    }
#endif  // DSK_WGMMA_DEVICE_CODE
}

}  // namespace

namespace w8a8 {

bool wgmma_built() {
#if defined(DSK_SM90A_BUILT)
    return true;
#else
    return false;
#endif
}

int wgmma_smem_bytes() { return kSmemBytes; }

cudaError_t launch_wgmma(const Args& a, bool bf16_out, cudaStream_t stream) {
    const dim3 grid((unsigned)row_tiles(a), (unsigned)((a.out + kBN - 1) / kBN));
    cudaError_t err;
    if (bf16_out) {
        err = cudaFuncSetAttribute(linear_fp8_w8a8_wgmma_kernel<__nv_bfloat16>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
        if (err == cudaSuccess) linear_fp8_w8a8_wgmma_kernel<__nv_bfloat16><<<grid, kThreads, kSmemBytes, stream>>>(a);
    } else {
        err = cudaFuncSetAttribute(linear_fp8_w8a8_wgmma_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   kSmemBytes);
        if (err == cudaSuccess) linear_fp8_w8a8_wgmma_kernel<float><<<grid, kThreads, kSmemBytes, stream>>>(a);
    }
    return err;
}

}  // namespace w8a8
}  // namespace dsk
