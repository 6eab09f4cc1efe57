// linear_mma.cu: dsk_linear's tensor-core family (prefill): bf16 activations x {dense BF16, FP8_BLOCK, INT4_GROUP}
// weights on mma.sync m16n8k16 bf16 tensor cores with fp32 accumulators (sm_80+).
//
// Math, per batch entry b (w matrix b' = b when w.count == batch, else 0), row i < m, feature n < out:
//   acc[b, i, n] = sum_k x[b, i, k] * w[b', n, k]   (+ bias[n])     fp32 accumulation, order unspecified
//   y = epilogue(acc) rounded once to y_dtype, bf16 or f32 (NONE; SILU_MUL: silu(acc[:, j]) * acc[:, half + j]; ADD: acc + residual)
// w[b', n, k] is the weight's exact dequantised value (deepseek_kernels.h, dsk_weight): a bf16 for every scheme
// (FP8: bf16(fp8 * scale) with the fp32 product; INT4: bf16((q - zero) * scale) in fp32), so the tensor-core
// products x * w are exact and the result differs from the reference only by the order of the fp32 sums.
//
// Cost: 2 * m * out * in FLOPs over (m * in + out * in) * bytes + m * out * 2 bytes: at m in the hundreds and
// more the kernel is compute-bound; its goal is a share of cuBLAS's bf16 rate (dense) and more for FP8 and INT4,
// whose weight tiles are half / a quarter of the bytes.
//
// One kernel, templated on the weight scheme:
//   block tile 128 (rows of x) x 128 (features) x 64 (k), 8 warps as 2 (m) x 4 (n), warp tile 64 x 32 (4 x 4 mma
//   tiles, 64 fp32 accumulators per thread); a 3-stage cp.async pipeline brings the x tile and the weight tile in
//   its stored form (bf16, FP8 bytes or packed INT4 codes) into shared memory, zero-filling whatever lies outside
//   [m, in] x [out, in]. Dense bf16 tiles go straight to ldmatrix; FP8 and INT4 tiles are first dequantised by a
//   shared-to-shared pass into one bf16 tile (weight_decode.cuh's dequantisation, the SIMT path's; scale / zero
//   point looked up per 8-element run), then read the same
//   way. Features of the SILU_MUL epilogue are interleaved in groups of 8 (tile columns 16q..16q+7 = gate features,
//   16q+8..16q+15 = the matching up features) so the thread that holds a gate value also holds its up value.
// dsk_grouped_linear runs the same kernel: blockIdx.x is then a row tile of the grouped op (linear.cuh, row_tile: an
// expert's 128-row tiles are neighbours in the grid, so its weight tiles come from HBM once and then from L2), the
// weight offset by the expert's matrix, rows bounded by the expert's end.
// On Hopper (a library built for sm_90a, cc 9.0) the same kernel multiplies on warpgroup tensor cores instead (kWg):
// two warpgroups, each 64 rows x all 128 tile columns, one wgmma.mma_async m64n128k16 bf16 per k16 step reading the x
// tile and the (dequantised) weight tile from shared memory through 128-byte-swizzle descriptors (the swz tiles are that
// swizzle on 1024-byte-aligned tiles); each thread fences its shared-memory writes (cp.async and the dequantisation
// pass) into the async proxy before the barrier that publishes them. Same loads, dequantisation, epilogues and grid;
// only the accumulator layout differs (64 fp32 per thread either way). DSK_LINEAR_PATH_MMA picks it where it can run;
// DSK_LINEAR_PATH_MMA_SYNC keeps mma.sync.
// Not done: TMA and a producer warpgroup; split-K for small m * out.
#include <climits>

#include "linear.cuh"
#include "mma_common.cuh"
#include "weight_decode.cuh"

namespace dsk {
namespace {

constexpr int kBM = 128;      // rows of x per block
constexpr int kBN = 128;      // features (tile columns) per block
constexpr int kBK = 64;       // k per stage: 128 bytes of bf16 per tile row
constexpr int kStages = 3;    // cp.async pipeline depth
constexpr int kThreads = 256; // 8 warps
constexpr int kTileBytes = kBM * kBK * 2;  // one swizzled bf16 tile: 16 KiB (the x tile and the weight tile alike)

enum Scheme { kDenseBf16 = 0, kFp8 = 1, kInt4 = 2 };

// Bytes of one stage of the raw weight tile: bf16 rows of 128 bytes (swizzled), FP8 rows of 64 bytes, INT4 rows of 32.
__host__ __device__ constexpr int raw_b_bytes(int scheme) { return scheme == kDenseBf16 ? kTileBytes : kBN * kBK / (scheme == kFp8 ? 1 : 2); }
// Dynamic shared memory of the kernel: x stages, raw weight stages, and the dequantised bf16 tile (FP8, INT4); wgmma
// (wg) also room to start the tiles on a 1024-byte boundary.
__host__ __device__ constexpr int smem_bytes(int scheme, bool wg = false) {
    return kStages * (kTileBytes + raw_b_bytes(scheme)) + (scheme == kDenseBf16 ? 0 : kTileBytes) + (wg ? 1024 : 0);
}

struct MmaArgs {
    const __nv_bfloat16* x;  // [batch, m, in]
    const uint8_t* w;        // weight data of matrix 0
    const float* fp8_scale;  // FP8: [count, ceil(out / br), ceil(in / bc)]
    const __nv_bfloat16* i4_scale;  // INT4: [count, out, in / group]
    const __nv_bfloat16* i4_zero;
    const float* bias;       // [out] or NULL
    const void* residual;    // ADD: [batch, m, out], y's type
    void* y;                 // [batch, m, y_cols], bf16 or (y_f32) f32
    int64_t x_row_stride, x_batch_stride;
    int64_t y_row_stride, y_batch_stride;
    int64_t res_row_stride, res_batch_stride;
    int64_t w_matrix_bytes;  // bytes between matrices (0 when every entry uses matrix 0)
    int64_t w_row_bytes;
    int64_t scale_matrix_elems;  // scale (and zero) elements between matrices (0 likewise)
    int64_t m;
    int in, out, half;  // half = out / 2 (SILU_MUL)
    int epilogue;
    bool y_f32;              // y (and residual) are f32 (a bf16 layer writing f32, e.g. logits), else bf16
    bool y_pairs;            // y, its strides allow stores of two elements at once (4 bytes bf16, 8 bytes f32)
    int br, bc, scale_cols;  // FP8 block rows / cols, scale columns (ceil(in / bc))
    int group, groups;       // INT4 group size, groups per row (in / group)
    RowTiles rt;             // the grouped op's row source (offsets NULL for dsk_linear; linear.cuh, row_tile)
};

// Element `at` of y's type (bf16, or f32 when y_f32) at `base`, as fp32 (the ADD epilogue's residual, which may be y).
__device__ __forceinline__ float load_out(const void* base, bool y_f32, int64_t at) {
    return y_f32 ? static_cast<const float*>(base)[at] : __bfloat162float(static_cast<const __nv_bfloat16*>(base)[at]);
}

// The weight row (feature) that tile column t of feature tile `tile_n` holds, or -1 when outside the matrix.
// NONE / ADD: features tile_n * 128 + t. SILU_MUL: the tile covers y columns j of [tile_n * 64, tile_n * 64 + 64);
// column groups of 8 alternate gate (j) and up (half + j).
__device__ __forceinline__ int tile_feature(const MmaArgs& a, int tile_n, int t) {
    if (a.epilogue != DSK_EPILOGUE_SILU_MUL) {
        const int n = tile_n * kBN + t;
        return n < a.out ? n : -1;
    }
    const int g = t >> 3;
    const int j = tile_n * (kBN / 2) + (g >> 1) * 8 + (t & 7);
    if (j >= a.half) return -1;
    return (g & 1) ? a.half + j : j;
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

template <int kScheme, bool kWg>
__global__ void __launch_bounds__(kThreads, 1) linear_mma_kernel(const MmaArgs a) {
#if !defined(DSK_WGMMA_DEVICE_CODE)
    if constexpr (kWg) return;  // no wgmma here: never launched (linear_mma checks the device and the build)
#endif
    extern __shared__ __align__(128) uint8_t smem_raw[];
    // wgmma's 128-byte swizzle is on addresses: the tiles start on a 1024-byte boundary (every tile size is a multiple).
    uint8_t* const smem = kWg ? smem_raw + ((1024u - (mma::smem_addr(smem_raw) & 1023u)) & 1023u) : smem_raw;
    const uint32_t s_x = mma::smem_addr(smem);                         // kStages x tiles
    const uint32_t s_raw = s_x + kStages * kTileBytes;                 // kStages raw weight tiles
    uint8_t* const raw_ptr = smem + kStages * kTileBytes;
    const uint32_t s_deq = s_raw + kStages * raw_b_bytes(kScheme);     // dequantised weight tile (FP8, INT4)
    uint8_t* const deq_ptr = raw_ptr + kStages * raw_b_bytes(kScheme);

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int warp_m = warp >> 2;  // 0..1: rows warp_m * 64 ..
    const int warp_n = warp & 3;   // 0..3: tile columns warp_n * 32 ..
    const int tile_n = blockIdx.y;
    // Batch entry or expert b (the grouped op's x / y batch strides are 0), its rows m0 .. m0 + 127 below row_end.
    int64_t b, m0, row_end;
    if (!row_tile<kBM>(a.rt, a.m, blockIdx.x, blockIdx.z, b, m0, row_end)) return;  // uniform over the block

    const __nv_bfloat16* x = a.x + b * a.x_batch_stride;
    const uint8_t* w = a.w + b * a.w_matrix_bytes;
    const int64_t scale_off = b * a.scale_matrix_elems;

    // Rows handled by this thread in the 16-byte-chunk loops over a 128 x 64 bf16 tile (x loads, dense weight
    // loads, the dequantisation pass): row (tid >> 3) + 32 i, chunk tid & 7.
    const int chunk8 = tid & 7;
    int feat8[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) feat8[i] = tile_feature(a, tile_n, (tid >> 3) + 32 * i);

    // Raw quantised tile loads: FP8 rows of 4 chunks (row (tid >> 2) + 64 i, chunk tid & 3), INT4 rows of 2 chunks
    // (row tid >> 1, chunk tid & 1).
    constexpr int kRawLoads = kScheme == kFp8 ? 2 : 1;
    int feat_raw[kRawLoads];
#pragma unroll
    for (int i = 0; i < kRawLoads; ++i)
        feat_raw[i] = kScheme == kFp8 ? tile_feature(a, tile_n, (tid >> 2) + 64 * i) : tile_feature(a, tile_n, tid >> 1);

    // Scale row offsets for the dequantisation pass.
    int64_t scale_row[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int f = feat8[i] < 0 ? 0 : feat8[i];
        if constexpr (kScheme == kFp8) scale_row[i] = scale_off + (int64_t)(f / a.br) * a.scale_cols;
        else scale_row[i] = scale_off + (int64_t)f * a.groups;
    }

    const int k_tiles = (a.in + kBK - 1) / kBK;

    auto load_stage = [&](int kt) {
        const int stage = kt % kStages;
        const int k0 = kt * kBK;
        const uint32_t sx = s_x + stage * kTileBytes;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int r = (tid >> 3) + 32 * i;
            const int64_t row = m0 + r;
            const int k = k0 + chunk8 * 8;
            const bool ok = row < row_end && k < a.in;
            mma::cp_async16(sx + mma::swz(r, chunk8), ok ? x + row * a.x_row_stride + k : a.x, ok);
        }
        const uint32_t sw = s_raw + stage * raw_b_bytes(kScheme);
        if constexpr (kScheme == kDenseBf16) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int r = (tid >> 3) + 32 * i;
                const int k = k0 + chunk8 * 8;
                const bool ok = feat8[i] >= 0 && k < a.in;
                mma::cp_async16(sw + mma::swz(r, chunk8), ok ? w + feat8[i] * a.w_row_bytes + (int64_t)k * 2 : a.w, ok);
            }
        } else if constexpr (kScheme == kFp8) {
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int r = (tid >> 2) + 64 * i;
                const int c = tid & 3;
                const int k = k0 + c * 16;
                const bool ok = feat_raw[i] >= 0 && k < a.in;
                mma::cp_async16(sw + r * 64 + c * 16, ok ? w + feat_raw[0 + i] * a.w_row_bytes + k : a.w, ok);
            }
        } else {
            const int r = tid >> 1;
            const int c = tid & 1;
            const int k = k0 + c * 32;
            const bool ok = feat_raw[0] >= 0 && k < a.in;
            mma::cp_async16(sw + r * 32 + c * 16, ok ? w + feat_raw[0] * a.w_row_bytes + k / 2 : a.w, ok);
        }
    };

    // FP8 / INT4: raw stage -> the bf16 tile, each element w = bf16(exact dequantisation); zero outside the matrix.
    auto dequantise_stage = [&](int kt) {
        const int stage = kt % kStages;
        const uint8_t* raw = raw_ptr + stage * raw_b_bytes(kScheme);
        const int k = kt * kBK + chunk8 * 8;  // first of this thread's 8 elements
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int r = (tid >> 3) + 32 * i;
            float v[8];
            if (feat8[i] >= 0 && k < a.in) {
                if constexpr (kScheme == kFp8) {
                    const uint2 q = *reinterpret_cast<const uint2*>(raw + r * 64 + chunk8 * 8);
                    if (a.bc % 8 == 0) {  // the 8 elements share one scale block
                        const float s = __ldg(a.fp8_scale + scale_row[i] + k / a.bc);
                        float lo[4], hi[4];
                        dequant_fp8x4(q.x, s, lo);
                        dequant_fp8x4(q.y, s, hi);
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            v[e] = lo[e];
                            v[4 + e] = hi[e];
                        }
                    } else {
#pragma unroll
                        for (int e = 0; e < 8; ++e)
                            v[e] = dequant_fp8((e < 4 ? q.x : q.y) >> (8 * (e & 3)),
                                               __ldg(a.fp8_scale + scale_row[i] + (k + e) / a.bc));
                    }
                } else {
                    const uint32_t q = *reinterpret_cast<const uint32_t*>(raw + r * 32 + chunk8 * 4);
                    const int64_t gi = scale_row[i] + k / a.group;  // a group is a multiple of 32: one per 8 elements
                    dequant_int4x8(q, __bfloat162float(load_ro(a.i4_scale + gi)), __bfloat162float(load_ro(a.i4_zero + gi)), v);
                }
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e) v[e] = 0.0f;
            }
            *reinterpret_cast<uint4*>(deq_ptr + mma::swz(r, chunk8)) = pack16<__nv_bfloat16>(v);
        }
    };

    // Accumulators: mma.sync, 4 x 4 m16n8 tiles of the warp's 64 x 32; wgmma, one m16 slab (the warp's 16 rows of its
    // warpgroup's 64) x 16 n8 tiles (all 128 columns), which is the m64n128 D fragment in its own order (d[4 c + 2 h + e]).
    constexpr int MI = kWg ? 1 : 4;
    constexpr int NI = kWg ? 16 : 4;
    float acc[MI][NI][4];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < k_tiles) load_stage(s);
        mma::cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
        mma::cp_async_wait<kStages - 2>();
        if constexpr (kWg) mma::fence_proxy_async();  // this thread's copies, visible to wgmma's (async) proxy
        __syncthreads();  // stage kt landed for every thread; everyone is done with stage kt - 1 and the bf16 tile
        // Refill stage kt - 1 (its x tile was multiplied and its raw weight tile dequantised in step kt - 1).
        if (kt + kStages - 1 < k_tiles) load_stage(kt + kStages - 1);
        mma::cp_async_commit();
        uint32_t sw;
        if constexpr (kScheme == kDenseBf16) {
            sw = s_raw + (kt % kStages) * kTileBytes;
        } else {
            dequantise_stage(kt);
            if constexpr (kWg) mma::fence_proxy_async();
            __syncthreads();
            sw = s_deq;
        }

        const uint32_t sx = s_x + (kt % kStages) * kTileBytes;
        if constexpr (kWg) {
            // One k16 step = 32 bytes of each tile row; this warpgroup's 64 rows of x start 8 KiB apart (1024-aligned).
            float (&d)[64] = *reinterpret_cast<float (*)[64]>(&acc[0][0][0]);
            const uint32_t sx_wg = sx + (warp >> 2) * 64 * (kBK * 2);
            mma::wgmma_fence_operand(d);
            mma::wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < kBK / 16; ++ks)
                mma::wgmma_m64n128k16_bf16(d, mma::wgmma_desc_sw128(sx_wg + 32 * ks), mma::wgmma_desc_sw128(sw + 32 * ks),
                                           true);
            mma::wgmma_commit();
            mma::wgmma_wait<0>();
            mma::wgmma_fence_operand(d);
        } else {
#pragma unroll
            for (int ks = 0; ks < kBK / 16; ++ks) {
                uint32_t af[4][4];
                uint32_t bf[4][2];
#pragma unroll
                for (int mi = 0; mi < 4; ++mi) mma::ldmatrix_x4(af[mi], mma::a_frag_addr(sx, warp_m * 64 + mi * 16, 2 * ks, lane));
                mma::ldmatrix_b_n32(bf, sw, warp_n * 32, 2 * ks, lane);
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int ni = 0; ni < 4; ++ni) mma::mma_bf16_16816(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
            }
        }
    }
    mma::cp_async_wait<0>();  // nothing is pending (the tail groups are empty), but leave no copy in flight

    // Epilogue. Accumulator e of tile (mi, ni): row row0 + mi * 16 + (lane >> 2) + 8 * (e >> 1), tile column
    // col0 + ni * 8 + 2 * (lane & 3) + (e & 1).
    const int row0 = kWg ? (warp >> 2) * 64 + (warp & 3) * 16 : warp_m * 64;
    const int col0 = kWg ? 0 : warp_n * 32;
    // y and residual: element offsets from their bases; the element type is bf16 or, with y_f32, f32.
    const int64_t y_base = b * a.y_batch_stride;
    const int64_t res_base = b * a.res_batch_stride;
    const int64_t y_cols = a.epilogue == DSK_EPILOGUE_SILU_MUL ? a.half : a.out;
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = m0 + row0 + mi * 16 + (lane >> 2) + 8 * h;
            if (row >= row_end) continue;
            const int64_t y_row = y_base + row * a.y_row_stride;
#pragma unroll
            for (int ni = 0; ni < NI; ++ni) {
                const int t = col0 + ni * 8 + 2 * (lane & 3);
                float v[2];
                int64_t col;
                if (a.epilogue == DSK_EPILOGUE_SILU_MUL) {
                    if (ni & 1) continue;  // up tiles are consumed with their gate tile
                    const int gate = tile_feature(a, tile_n, t);  // even; gate + 1 < half whenever gate + 1 is valid
                    col = gate;
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        float g = acc[mi][ni][2 * h + e];
                        float u = acc[mi][ni + 1][2 * h + e];
                        if (a.bias != nullptr && gate >= 0 && gate + e < a.half) {
                            g += __ldg(a.bias + gate + e);
                            u += __ldg(a.bias + a.half + gate + e);
                        }
                        v[e] = silu(g) * u;
                    }
                } else {
                    col = tile_n * kBN + t;
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        v[e] = acc[mi][ni][2 * h + e];
                        if (a.bias != nullptr && col + e < a.out) v[e] += __ldg(a.bias + col + e);
                    }
                    if (a.epilogue == DSK_EPILOGUE_ADD) {
                        const int64_t r_row = res_base + row * a.res_row_stride;
                        if (col < a.out) v[0] += load_out(a.residual, a.y_f32, r_row + col);
                        if (col + 1 < a.out) v[1] += load_out(a.residual, a.y_f32, r_row + col + 1);
                    }
                }
                if (col < 0 || col >= y_cols) continue;
                if (a.y_f32) {
                    float* y32 = static_cast<float*>(a.y) + y_row + col;
                    if (col + 1 < y_cols && a.y_pairs) {
                        *reinterpret_cast<float2*>(y32) = make_float2(v[0], v[1]);
                    } else {
                        y32[0] = v[0];
                        if (col + 1 < y_cols) y32[1] = v[1];
                    }
                } else {
                    __nv_bfloat16* y16 = static_cast<__nv_bfloat16*>(a.y) + y_row + col;
                    if (col + 1 < y_cols && a.y_pairs) {
                        *reinterpret_cast<uint32_t*>(y16) = float_to_bf16x2(v[0], v[1]);
                    } else {
                        y16[0] = __float2bfloat16_rn(v[0]);
                        if (col + 1 < y_cols) y16[1] = __float2bfloat16_rn(v[1]);
                    }
                }
            }
        }
    }
}

}  // namespace

bool linear_mma_supports(const dsk_linear_params& p, const char** why) {
    const char* reason = nullptr;
    const int64_t in = linear_in(p);
    const int64_t out = linear_out(p);
    const dsk_weight& w = p.w;
    int device = 0, major = 0, optin = 0;
    if (p.x_dtype != DSK_DTYPE_BF16) {
        reason = "x_dtype is not BF16";
    } else if (p.transpose_w) {
        reason = "transpose_w is set";
    } else if (!((w.scheme == DSK_WEIGHT_DENSE && w.dtype == DSK_DTYPE_BF16) || w.scheme == DSK_WEIGHT_FP8_BLOCK ||
                 w.scheme == DSK_WEIGHT_INT4_GROUP)) {
        reason = "weight is dense F32 (MMA takes dense BF16, FP8_BLOCK, INT4_GROUP)";
    } else if (in % 8 != 0) {
        reason = "in is not a multiple of 8";
    } else if (w.scheme == DSK_WEIGHT_FP8_BLOCK && in % 16 != 0) {
        reason = "FP8 weight rows are not a multiple of 16 bytes (in % 16 != 0)";
    } else if (w.scheme == DSK_WEIGHT_FP8_BLOCK && (w.block_rows < 1 || w.block_cols < 1)) {
        reason = "FP8 scale blocks are empty";  // the entry point refuses these first; kept as the kernel's guard
    } else if (w.scheme == DSK_WEIGHT_INT4_GROUP && (w.group_size < 32 || w.group_size % 32 != 0 || in % w.group_size != 0)) {
        reason = "INT4 group size is not a multiple of 32 dividing in";  // likewise
    } else if (in > INT_MAX / 2 || out > INT_MAX / 2 || p.batch > 65535 || (out + kBN - 1) / kBN > 65535) {
        reason = "shape beyond the kernel's index range";
    } else if (!is_aligned_16(p.x) || p.x_row_stride % 8 != 0 || (p.batch > 1 && p.x_batch_stride % 8 != 0)) {
        reason = "x rows are not 16-byte aligned";
    } else if (!is_aligned_16(w.data)) {
        reason = "weight data is not 16-byte aligned";
    } else if (cudaGetDevice(&device) != cudaSuccess ||
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
               cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        (void)cudaGetLastError();
        reason = "no CUDA device";
    } else if (major < 8) {
        reason = "needs sm_80+";
    } else if (optin < smem_bytes(kDenseBf16)) {
        reason = "the device has too little shared memory per block";
    }
    if (why != nullptr) *why = reason;
    return reason == nullptr;
}

namespace {

template <int kScheme, bool kWg> dsk_status launch(const char* op, const MmaArgs& a, dim3 grid, cudaStream_t stream) {
    const cudaError_t err = cudaFuncSetAttribute(linear_mma_kernel<kScheme, kWg>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 smem_bytes(kScheme, kWg));
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) setting the MMA kernel's shared memory", cudaGetErrorName(err),
                  cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    linear_mma_kernel<kScheme, kWg><<<grid, kThreads, smem_bytes(kScheme, kWg), stream>>>(a);
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

// Whether the warpgroup family runs here (common.cuh's wgmma_preferred) with the shared memory the largest variant needs.
bool wgmma_runs_here() {
    return wgmma_preferred(smem_bytes(kFp8, true) > smem_bytes(kInt4, true) ? smem_bytes(kFp8, true) : smem_bytes(kInt4, true));
}

}  // namespace

dsk_status linear_mma(const char* op, const dsk_linear_params& p, const RowTiles* rt, bool allow_wgmma) {
    const dsk_weight& w = p.w;
    MmaArgs a{};
    a.x = static_cast<const __nv_bfloat16*>(p.x);
    a.w = static_cast<const uint8_t*>(w.data);
    a.bias = p.bias;
    a.residual = p.epilogue == DSK_EPILOGUE_ADD ? p.residual : nullptr;
    a.y = p.y;
    a.y_f32 = p.y_dtype == DSK_DTYPE_F32;
    a.x_row_stride = p.x_row_stride;
    a.x_batch_stride = rt != nullptr ? 0 : p.x_batch_stride;
    a.y_row_stride = p.y_row_stride;
    a.y_batch_stride = rt != nullptr ? 0 : p.y_batch_stride;
    a.res_row_stride = p.residual_row_stride;
    a.res_batch_stride = p.residual_batch_stride;
    a.m = p.m;
    a.in = (int)w.cols;
    a.out = (int)w.rows;
    a.half = a.out / 2;
    a.epilogue = p.epilogue;
    a.y_pairs = (reinterpret_cast<uintptr_t>(p.y) & (a.y_f32 ? 7u : 3u)) == 0 && p.y_row_stride % 2 == 0 &&
                (p.batch == 1 || p.y_batch_stride % 2 == 0);
    const bool per_entry = rt != nullptr || (w.count == p.batch && p.batch > 1);  // grouped: one matrix per expert
    if (rt != nullptr) a.rt = *rt;
    int scheme = kDenseBf16;
    if (w.scheme == DSK_WEIGHT_DENSE) {
        a.w_row_bytes = w.cols * 2;
    } else if (w.scheme == DSK_WEIGHT_FP8_BLOCK) {
        scheme = kFp8;
        a.w_row_bytes = w.cols;
        a.fp8_scale = static_cast<const float*>(w.scale);
        a.br = w.block_rows;
        a.bc = w.block_cols;
        a.scale_cols = (int)((w.cols + w.block_cols - 1) / w.block_cols);
        a.scale_matrix_elems = per_entry ? ((w.rows + w.block_rows - 1) / w.block_rows) * a.scale_cols : 0;
    } else {
        scheme = kInt4;
        a.w_row_bytes = w.cols / 2;
        a.i4_scale = static_cast<const __nv_bfloat16*>(w.scale);
        a.i4_zero = static_cast<const __nv_bfloat16*>(w.zero);
        a.group = w.group_size;
        a.groups = (int)(w.cols / w.group_size);
        a.scale_matrix_elems = per_entry ? w.rows * a.groups : 0;
    }
    a.w_matrix_bytes = per_entry ? w.rows * a.w_row_bytes : 0;

    const int64_t n_tiles = p.epilogue == DSK_EPILOGUE_SILU_MUL ? (a.half + kBN / 2 - 1) / (kBN / 2)
                                                                : (a.out + kBN - 1) / kBN;
    // x over row tiles (the grouped op's bound from host sizes: an expert's tiles are neighbours, so its weight tiles
    // are read once from HBM and then from L2), y over feature tiles, z over the batch.
    const int64_t m_tiles = rt != nullptr ? grouped_row_tiles(p.m, rt->count, kBM) : (p.m + kBM - 1) / kBM;
    const dim3 grid((unsigned)m_tiles, (unsigned)n_tiles, (unsigned)p.batch);
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    const bool wg = allow_wgmma && wgmma_runs_here();
    switch (scheme) {
        case kFp8: return wg ? launch<kFp8, true>(op, a, grid, stream) : launch<kFp8, false>(op, a, grid, stream);
        case kInt4: return wg ? launch<kInt4, true>(op, a, grid, stream) : launch<kInt4, false>(op, a, grid, stream);
        default: return wg ? launch<kDenseBf16, true>(op, a, grid, stream) : launch<kDenseBf16, false>(op, a, grid, stream);
    }
}

}  // namespace dsk
