// linear_fp8_w8a8.cu: W8A8 FP8 linear for prefill (dsk_linear_fp8_w8a8), DeepGEMM's 1 x 128 activation and
// 128 x 128 weight scaling with per-block promotion.
//
// Math, per row i < m and feature n < out (j runs over the 128-wide k blocks, the last one may be narrower):
//   p[i, n, j] = sum_{k in block j} qx[i, k] * qw[n, k]                   fp32 (each product of two e4m3 is exact)
//   y[i, n]    = round_act( sum_j (xs[i, j] * ws[n / 128, j]) * p[i, n, j]  + bias[n] )   in fp32, j in order
// qx, xs come from dsk_quantize_fp8_act; qw, ws are an FP8_BLOCK weight with 128 x 128 blocks.
//
// Cost: 2 * m * out * in FLOPs over m * in + out * in bytes (FP8) + m * out * sizeof(y): compute-bound at prefill m.
//
// Grouped (dsk_grouped_linear_fp8_w8a8, the MoE experts): the same kernels over a stack of expert matrices, each
// block's row tile inside one expert's rows (linear_fp8_w8a8.cuh's block_rows); the offsets are device data, checked by
// every block before it loads anything, and reported through the error word as dsk_grouped_linear reports them.
//
// This file: the mma.sync family (DSK_W8A8_PATH_MMA_SYNC) and the two entry points, which share their checks and pick a family; the wgmma family
// (Hopper's FP8 rate) is linear_fp8_w8a8_wgmma.cu. Block tile 128 (rows) x 128 (features, = one weight scale block row)
// x 128 (k, = one scale block) in both (linear_fp8_w8a8.cuh). Here:
// 8 warps as 2 (m) x 4 (n), warp tile 64 x 32; a 3-stage cp.async pipeline brings both FP8 tiles into swizzled
// shared memory (zero fill outside [m, in] x [out, in]); ldmatrix reads them in the e4m3 m16n8k32 fragment layout.
// Each k tile's products accumulate into fresh fp32 registers, which are then scaled by xs * ws and added to
// the fp32 accumulators (the promotion). Two instruction paths for the k tile:
//   (b) sm_89+ and a toolkit with PTX ISA 8.4+ (CUDA 12.4+), CMake option DSK_FP8_MMA (default ON):
//       mma.sync m16n8k32 e4m3 x e4m3 -> f32.
//   (a) otherwise (sm_80/86, or CUDA 11.8): each e4m3 fragment is widened to bf16 in registers (exact) and fed to
//       two bf16 m16n8k16 mma.sync. The ldmatrix fragment holds k = 4c..4c+3 (and 16 + 4c..) for lane group c;
//       the bf16 mma expects k = 2c, 2c+1 (and 8 + 2c..): we feed it the first two bytes as its "2c, 2c+1" and the
//       last two as its "8 + 2c, 9 + 2c", for A and B alike. That is a permutation of k inside the k-16 step,
//       applied identically to both operands, so the dot products are unchanged.
// On Hopper both mma.sync paths run at the bf16 rate at best: ptxas lowers (b) to an f16 unpack and HMMA there.
// Not done: a fused quantise-and-multiply.
#include <climits>

#include "common.cuh"
#include "linear_fp8_w8a8.cuh"
#include "mma_common.cuh"
#include "weight_check.cuh"

#if defined(DSK_FP8_MMA) && (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 4))
#define DSK_W8A8_FP8_MMA_COMPILED 1  // the toolkit knows mma.sync ... e4m3 (PTX ISA 8.4)
#endif

namespace dsk {
namespace {

using namespace w8a8;
constexpr int kStages = 3;
constexpr int kThreads = 256;
constexpr int kSmemBytes = kStages * 2 * kTileBytes;

#if defined(DSK_W8A8_FP8_MMA_COMPILED) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
// Path (b): one k-32 step of e4m3 products into `d` for A fragment `a` (rows) and B fragment b0, b1 (one n8 tile).
// Only called from code compiled for sm_89+.
__device__ __forceinline__ void mma_e4m3_k32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

template <typename TOut>
__global__ void __launch_bounds__(kThreads, 1) linear_fp8_w8a8_kernel(const Args a) {
    extern __shared__ __align__(128) uint8_t smem[];
    const uint32_t s_x = mma::smem_addr(smem);
    const uint32_t s_w = s_x + kStages * kTileBytes;

    BlockRows b;
    if (!block_rows(a, b)) return;  // the same answer in every thread: before any barrier
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int warp_m = warp >> 2;
    const int warp_n = warp & 3;
    const int n0 = blockIdx.y * kBN;
    const int k_tiles = a.kb;

    auto load_stage = [&](int kt) {
        const int stage = kt % kStages;
        load_tiles<kThreads>(a, b, s_x + stage * kTileBytes, s_w + stage * kTileBytes, n0, kt, tid);
    };

    float acc[4][4][4];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < k_tiles) load_stage(s);
        mma::cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
        mma::cp_async_wait<kStages - 2>();
        __syncthreads();
        if (kt + kStages - 1 < k_tiles) load_stage(kt + kStages - 1);
        mma::cp_async_commit();

        const uint32_t sx = s_x + (kt % kStages) * kTileBytes;
        const uint32_t sw = s_w + (kt % kStages) * kTileBytes;
        float part[4][4][4];
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                for (int e = 0; e < 4; ++e) part[mi][ni][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < kBK / 32; ++ks) {
            // B fragments of the warp's four n8 tiles first, then one m16 A fragment at a time (fewer live registers).
            uint32_t bf[4][2];
            mma::ldmatrix_b_n32(bf, sw, warp_n * 32, 2 * ks, lane);
#if defined(DSK_W8A8_FP8_MMA_COMPILED) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                uint32_t af[4];
                mma::ldmatrix_x4(af, mma::a_frag_addr(sx, warp_m * 64 + mi * 16, 2 * ks, lane));
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_e4m3_k32(part[mi][ni], af, bf[ni][0], bf[ni][1]);
            }
#else
            // Path (a): widen once per fragment, then two bf16 k16 mma per k32 step (see the header for the k order).
            uint32_t bw[4][4];  // [ni]: k 0..15 (b0, b1 of the bf16 mma), then k 16..31
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                bw[ni][0] = mma::e4m3x2_to_bf16x2(bf[ni][0]);
                bw[ni][1] = mma::e4m3x2_to_bf16x2(bf[ni][0] >> 16);
                bw[ni][2] = mma::e4m3x2_to_bf16x2(bf[ni][1]);
                bw[ni][3] = mma::e4m3x2_to_bf16x2(bf[ni][1] >> 16);
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                uint32_t af[4];
                mma::ldmatrix_x4(af, mma::a_frag_addr(sx, warp_m * 64 + mi * 16, 2 * ks, lane));
                const uint32_t lo[4] = {mma::e4m3x2_to_bf16x2(af[0]), mma::e4m3x2_to_bf16x2(af[1]),
                                        mma::e4m3x2_to_bf16x2(af[0] >> 16), mma::e4m3x2_to_bf16x2(af[1] >> 16)};
                const uint32_t hi[4] = {mma::e4m3x2_to_bf16x2(af[2]), mma::e4m3x2_to_bf16x2(af[3]),
                                        mma::e4m3x2_to_bf16x2(af[2] >> 16), mma::e4m3x2_to_bf16x2(af[3] >> 16)};
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    mma::mma_bf16_16816(part[mi][ni], lo, bw[ni][0], bw[ni][1]);
                    mma::mma_bf16_16816(part[mi][ni], hi, bw[ni][2], bw[ni][3]);
                }
            }
#endif
        }

        // Promotion: acc += (xs[row, kt] * ws[n0 / 128, kt]) * part.
        const float ws = __ldg(b.ws + (int64_t)blockIdx.y * a.kb + kt);
#pragma unroll
        for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int64_t row = b.row0 + warp_m * 64 + mi * 16 + (lane >> 2) + 8 * h;
                const float s = row < b.row_end ? __ldg(a.xs + row * a.kb + kt) * ws : 0.0f;
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    acc[mi][ni][2 * h] += s * part[mi][ni][2 * h];
                    acc[mi][ni][2 * h + 1] += s * part[mi][ni][2 * h + 1];
                }
            }
        }
    }
    mma::cp_async_wait<0>();

    TOut* y = static_cast<TOut*>(a.y);
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = b.row0 + warp_m * 64 + mi * 16 + (lane >> 2) + 8 * h;
            if (row >= b.row_end) continue;
            TOut* y_row = y + row * a.y_stride;
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int n = n0 + warp_n * 32 + ni * 8 + 2 * (lane & 3) + e;
                    if (n >= a.out) continue;
                    float v = acc[mi][ni][2 * h + e];
                    if (a.bias != nullptr) v += __ldg(a.bias + n);
                    y_row[n] = from_float<TOut>(v);
                }
            }
        }
    }
}

// What both entry points hand the shared checks and launch: the request, in dsk_linear_fp8_w8a8's terms.
struct Request {
    const void* qx;
    const float* x_scale;
    const dsk_weight* w;
    const float* bias;
    void* y;
    int64_t m;
    int64_t y_row_stride;
    int32_t act_dtype;
    int32_t path;
    cudaStream_t stream;
};

// The checks both entry points share (in the header's order; `op` names the entry point), then the family's choice and
// the launch with `rt` as the row source (rt.offsets NULL: dsk_linear_fp8_w8a8).
dsk_status check_and_launch(const char* op, const Request& r, const RowTiles& rt) {
    DSK_CHECK_NOT_NULL(op, r.qx, "qx");
    DSK_CHECK_NOT_NULL(op, r.x_scale, "x_scale");
    DSK_CHECK_NOT_NULL(op, r.w->data, "w.data");
    DSK_CHECK_NOT_NULL(op, r.w->scale, "w.scale");
    DSK_CHECK_NOT_NULL(op, r.y, "y");
    const dsk_weight& w = *r.w;
    DSK_CHECK_ARG(op, w.scheme == DSK_WEIGHT_FP8_BLOCK && w.dtype == DSK_DTYPE_FP8_E4M3,
                  "w must be an FP8_BLOCK weight of FP8_E4M3 (got scheme %d, dtype %s)", (int)w.scheme,
                  dtype_name(w.dtype));
    DSK_CHECK_ARG(op, w.block_rows == 128 && w.block_cols == 128, "w must have 128 x 128 scale blocks (got %d x %d)",
                  (int)w.block_rows, (int)w.block_cols);
    if (rt.offsets == nullptr) {
        DSK_CHECK_ARG(op, w.count == 1, "w.count must be 1 (got %lld)", (long long)w.count);
    } else {
        DSK_CHECK_MIN(op, w.count, 1, "w.count");
        DSK_CHECK_ARG(op, w.count < INT32_MAX, "w.count must be < 2^31 - 1 (got %lld)", (long long)w.count);
    }
    DSK_CHECK_MIN(op, w.rows, 1, "w.rows");
    DSK_CHECK_MIN(op, w.cols, 1, "w.cols");
    DSK_CHECK_ARG(op, w.cols % 16 == 0, "in = w.cols must be a multiple of 16 (got %lld)", (long long)w.cols);
    DSK_CHECK_MIN(op, r.m, 1, "m");
    DSK_CHECK_MIN(op, r.y_row_stride, w.rows, "y_row_stride");
    DSK_CHECK_ARG(op, r.act_dtype == DSK_DTYPE_F32 || r.act_dtype == DSK_DTYPE_BF16,
                  "act_dtype must be F32 or BF16 (got %s)", dtype_name(r.act_dtype));
    DSK_CHECK_ARG(op, r.path >= DSK_W8A8_PATH_AUTO && r.path <= DSK_W8A8_PATH_WGMMA,
                  "path must be AUTO (0), MMA_SYNC (1) or WGMMA (2) (got %d)", (int)r.path);
    if (rt.offsets != nullptr) {
        // y [m, out] against the offsets the kernels read (the other operands are read only)
        const int64_t esz = r.act_dtype == DSK_DTYPE_F32 ? 4 : 2;
        const ByteRange y_range = view_bytes(r.y, 1, r.m, w.rows, 0, r.y_row_stride, esz);
        DSK_CHECK_ARG(op, !overlaps(y_range, bytes_of(rt.offsets, (w.count + 1) * 4)), "y must not overlap expert_offsets");
        DSK_CHECK_ARG(op, !overlaps(y_range, bytes_of(rt.error_word, 8 * 4)), "y must not overlap error_word");
    }
    if (w.cols > INT_MAX / 2 || w.rows > INT_MAX / 2 || (w.rows + kBN - 1) / kBN > 65535 ||
        (r.m + kBM - 1) / kBM > INT_MAX)
        DSK_UNSUPPORTED(op, "shape too large (m %lld, out %lld, in %lld)", (long long)r.m, (long long)w.rows,
                        (long long)w.cols);
    if (!is_aligned_16(r.qx) || !is_aligned_16(w.data))
        DSK_UNSUPPORTED(op, "qx and w.data must be 16-byte aligned");
    // every matrix of a stack must start 16-byte aligned too (out * in bytes apart; in is a multiple of 16)

    int device = 0, major = 0, minor = 0, optin = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) querying the device", cudaGetErrorName(err), cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    if (major < 8) DSK_UNSUPPORTED(op, "needs an sm_80+ GPU (device %d is sm_%d%d)", device, major, minor);
    // wgmma code is sm_90a: it runs on cc 9.0 only, and exists only where the library was built for 90a.
    const bool wgmma_here = wgmma_device_ok(wgmma_smem_bytes());
    if (r.path == DSK_W8A8_PATH_WGMMA && !wgmma_here) {
        if (!wgmma_built())
            DSK_UNSUPPORTED(op, "path WGMMA: this library was not built for sm_90a (CMAKE_CUDA_ARCHITECTURES without 90a, "
                                "or a toolkit older than CUDA 12)");
        DSK_UNSUPPORTED(op, "path WGMMA needs a cc 9.0 GPU (Hopper) with %d bytes of shared memory per block (device %d "
                            "is sm_%d%d with %d)", wgmma_smem_bytes(), device, major, minor, optin);
    }
    const bool use_wgmma = r.path == DSK_W8A8_PATH_WGMMA || (r.path == DSK_W8A8_PATH_AUTO && wgmma_preferred(wgmma_smem_bytes()));
    if (!use_wgmma && optin < kSmemBytes)
        DSK_UNSUPPORTED(op, "needs %d bytes of shared memory per block (device has %d)", kSmemBytes, optin);

    Args a{};
    a.qx = static_cast<const uint8_t*>(r.qx);
    a.xs = r.x_scale;
    a.qw = static_cast<const uint8_t*>(w.data);
    a.ws = static_cast<const float*>(w.scale);
    a.bias = r.bias;
    a.y = r.y;
    a.m = r.m;
    a.y_stride = r.y_row_stride;
    a.in = (int)w.cols;
    a.out = (int)w.rows;
    a.kb = (int)((w.cols + kBK - 1) / kBK);
    a.rt = rt;
    if (use_wgmma) {
        err = launch_wgmma(a, r.act_dtype == DSK_DTYPE_BF16, r.stream);
    } else {
        const dim3 grid((unsigned)row_tiles(a), (unsigned)((w.rows + kBN - 1) / kBN));
        if (r.act_dtype == DSK_DTYPE_F32) {
            err = cudaFuncSetAttribute(linear_fp8_w8a8_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kSmemBytes);
            if (err == cudaSuccess) linear_fp8_w8a8_kernel<float><<<grid, kThreads, kSmemBytes, r.stream>>>(a);
        } else {
            err = cudaFuncSetAttribute(linear_fp8_w8a8_kernel<__nv_bfloat16>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
            if (err == cudaSuccess) linear_fp8_w8a8_kernel<__nv_bfloat16><<<grid, kThreads, kSmemBytes, r.stream>>>(a);
        }
    }
    if (err != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) setting the kernel's shared memory", cudaGetErrorName(err),
                  cudaGetErrorString(err));
        return DSK_ERROR_CUDA;
    }
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_linear_fp8_w8a8(const dsk_linear_fp8_w8a8_params* p) {
    using namespace dsk;
    DSK_CHECK_NOT_NULL(kOp, p, "params");
    const Request r{p->qx, p->x_scale, &p->w, p->bias, p->y, p->m, p->y_row_stride, p->act_dtype, p->path,
                    static_cast<cudaStream_t>(p->stream)};
    return check_and_launch(kOp, r, RowTiles{});
}

extern "C" DSK_API dsk_status dsk_grouped_linear_fp8_w8a8(const dsk_grouped_linear_fp8_w8a8_params* p) {
    using namespace dsk;
    DSK_CHECK_NOT_NULL(kGroupedOp, p, "params");
    DSK_CHECK_NOT_NULL(kGroupedOp, p->expert_offsets, "expert_offsets");
    DSK_CHECK_NOT_NULL(kGroupedOp, p->error_word, "error_word");
    DSK_CHECK_ARG(kGroupedOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);
    DSK_CHECK_ARG(kGroupedOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    DSK_CHECK_ARG(kGroupedOp, p->m < INT32_MAX, "m must be < 2^31 - 1 (got %lld)", (long long)p->m);
    RowTiles rt{};
    rt.offsets = p->expert_offsets;
    rt.error_word = p->error_word;
    rt.count = (int32_t)(p->w.count < INT32_MAX ? p->w.count : INT32_MAX);  // checked against 2^31 - 1 next
    rt.error_site = p->error_site;
    const Request r{p->qx, p->x_scale, &p->w, nullptr, p->y, p->m, p->y_row_stride, p->act_dtype, p->path,
                    static_cast<cudaStream_t>(p->stream)};
    return check_and_launch(kGroupedOp, r, rt);
}
